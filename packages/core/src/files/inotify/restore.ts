// inotify: made by criu-ts, every watch added again on its path with the same watch descriptor. The
// program knows its watches by wd, and the kernel hands wds out in increasing order from the last one
// given: a watch is added and removed until the counter stands just below the wanted wd. The
// IN_IGNORED events those removals queue are read away before any task can see them.
import type { InotifyWdEntry } from '@criu-ts/images';
import { close, isSysError, raw, read, SYS } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { orThrow, withFlags } from '../fd-flags.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';
import { handleBytes, pathOfHandle } from './handle.js';

const IN_CLOEXEC = 0o2000000;
const IN_NONBLOCK = 0o4000;

function pathOf(w: InotifyWdEntry): string {
  const h = w.f_handle;
  const path = h.path ?? pathOfHandle(w.s_dev, h.type, handleBytes(h.handle ?? [], h.bytes));
  if (path === undefined) throw new RestoreError(`inotify watch ${w.wd}: cannot find inode ${w.i_ino}`);
  return path;
}

function addWatch(fd: number, path: string, mask: number): number {
  return Number(raw.syscall(SYS.inotify_add_watch, fd, Buffer.from(`${path}\0`), mask >>> 0));
}

/** Add `w` so that it gets exactly its dumped wd. */
function watchAgain(fd: number, w: InotifyWdEntry): void {
  const path = pathOf(w);
  for (let tries = 0; tries < 1_000_000; tries++) {
    const wd = orThrow(`inotify_add_watch ${path}`, addWatch(fd, path, w.mask));
    if (wd === w.wd) return;
    if (wd > w.wd) throw new RestoreError(`inotify watch ${w.wd} on ${path}: the kernel gave ${wd} already`);
    orThrow('inotify_rm_watch', Number(raw.syscall(SYS.inotify_rm_watch, fd, wd)));
  }
  throw new RestoreError(`inotify watch ${w.wd} on ${path}: could not reach that number`);
}

/** Read away the events our own adds and removes queued. */
function drain(fd: number): void {
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    try {
      if (read(fd, buf) <= 0) return;
    } catch (e) {
      if (isSysError(e, 'EAGAIN')) return;
      throw e;
    }
  }
}

export const inotifyRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.INOTIFY,
  kind: 'inotify',
  check(entry) {
    if (!entry.ify)
      throw new RestoreError(`files.img: entry ${entry.id} is an inotify without its ify field`);
  },
  open(entry) {
    const fd = orThrow('inotify_init1', Number(raw.syscall(SYS.inotify_init1, IN_CLOEXEC | IN_NONBLOCK)));
    try {
      const sorted = [...(entry.ify!.wd ?? [])].sort((a, b) => a.wd - b.wd);
      for (const w of sorted) watchAgain(fd, w);
      drain(fd);
      return withFlags(fd, entry.ify!.flags);
    } catch (e) {
      close(fd);
      throw e instanceof RestoreError ? e : new RestoreError(`inotify ${entry.id}: ${(e as Error).message}`);
    }
  },
};
