// inotify: made by criu-ts, every watch added again on its inode with the same watch descriptor. The
// program knows its watches by wd, and the kernel hands wds out in increasing order from the last one
// given: a watch is added and removed until the counter stands just below the wanted wd. The
// IN_IGNORED events those removals queue are read away before any task can see them.
import type { InotifyWdEntry } from '@criu-ts/images';
import {
  close,
  IN_CLOEXEC,
  IN_NONBLOCK,
  inotifyAddWatch,
  inotifyInit1,
  inotifyRmWatch,
  isSysError,
  read,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import { type FoundInode, openWatchedInode, procFdPath } from '../fhandle.js';
import type { FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

/** The watched inode, by its handle or else by its path at the dump (if that is still the same inode). */
function watchedInode(w: InotifyWdEntry, ctx: FdRestoreContext): FoundInode {
  try {
    // A watch on a file unlinked at the dump: its ghost is that file now.
    const ghost = ctx.ghostInode(w.s_dev, w.i_ino);
    if (ghost) return ghost;
    return openWatchedInode(w.s_dev, w.i_ino, w.f_handle);
  } catch (e) {
    const was = w.f_handle.path ? ` (${w.f_handle.path} at the dump)` : '';
    throw new RestoreError(
      `inotify watch ${w.wd}: cannot find inode ${w.i_ino}${was}: ${(e as Error).message}`,
    );
  }
}

/** Add `w` so that it gets exactly its dumped wd. */
function watchAgain(fd: number, w: InotifyWdEntry, ctx: FdRestoreContext): void {
  const inode = watchedInode(w, ctx);
  try {
    // Through /proc/self/fd/N: the very inode, whatever its name is now.
    const target = procFdPath(inode.fd);
    for (let tries = 0; tries < 1_000_000; tries++) {
      const wd = inotifyAddWatch(fd, target, w.mask);
      if (wd === w.wd) return;
      if (wd > w.wd)
        throw new RestoreError(`inotify watch ${w.wd} on ${inode.path}: the kernel gave ${wd} already`);
      inotifyRmWatch(fd, wd);
    }
    throw new RestoreError(`inotify watch ${w.wd} on ${inode.path}: could not reach that number`);
  } finally {
    close(inode.fd);
  }
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
  open(entry, ctx) {
    const fd = inotifyInit1(IN_CLOEXEC | IN_NONBLOCK);
    try {
      const sorted = [...(entry.ify!.wd ?? [])].sort((a, b) => a.wd - b.wd);
      for (const w of sorted) watchAgain(fd, w, ctx);
      drain(fd);
      return withFlags(fd, entry.ify!.flags);
    } catch (e) {
      close(fd);
      throw e instanceof RestoreError ? e : new RestoreError(`inotify ${entry.id}: ${(e as Error).message}`);
    }
  },
};
