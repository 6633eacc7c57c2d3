import { statSync } from 'node:fs';
import { ProcDir, procPath } from '@criu-ts/bfd';
import type { FdinfoEntry } from '@criu-ts/images';
import { FD_CLOEXEC, O_CLOEXEC } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import { dumpFileLocks } from '../file-locks/dump.js';
import { FD_DRIVERS } from './drivers.js';
import { type FdKind, fdKindOf } from './kinds.js';
import type { FdDumpContext, FileTable, OpenFile } from './table.js';

/**
 * Every fd of a task: its files.img entry (shared with other fds and tasks holding the same
 * open file) and its fdinfo entry. An fd no driver handles stops the dump with its name.
 */
export function dumpFds(pid: number, proc: ProcDir, files: FileTable, ctx: FdDumpContext): FdinfoEntry[] {
  files.ownFdDumper ??= (fd) => dumpOwnFd(fd, files, ctx);
  const out: FdinfoEntry[] = [];
  for (const fd of proc.fds()) {
    const file = openFile(pid, proc, fd);
    const { id, type, kind } = dumpFile(file, files, ctx);
    dumpFileLocks(file, files);
    out.push({ id, flags: file.flags & O_CLOEXEC ? FD_CLOEXEC : 0, type, fd });
    ctx.onFd?.(kind);
  }
  return out;
}

function dumpFile(
  file: OpenFile,
  files: FileTable,
  ctx: FdDumpContext,
): { id: number; type: number; kind: FdKind } {
  const kind = fdKindOf(file);
  if (kind === undefined) {
    throw new DumpError(
      `pid ${file.pid} fd ${file.fd} (${file.link}) is a kind of file criu-ts cannot dump yet`,
    );
  }
  return { ...FD_DRIVERS[kind].dump.dump({ ...file, flags: file.flags & ~O_CLOEXEC }, files, ctx), kind };
}

/**
 * A file criu-ts holds itself (received in flight from a socket queue): dumped by the same drivers,
 * as an fd of criu-ts's own process. Its files.img id.
 */
function dumpOwnFd(fd: number, files: FileTable, ctx: FdDumpContext): number {
  return dumpFile(openFile(process.pid, ProcDir.self(), fd), files, ctx).id;
}

function openFile(pid: number, proc: ProcDir, fd: number): OpenFile {
  const link = proc.readlink(`fd/${fd}`);
  const info = proc.fdinfo(fd);
  const stat = statSync(procPath(pid, 'fd', fd), { bigint: true });
  return { pid, fd, link, pos: info.pos, flags: info.flags, mntId: info.mntId, stat, info };
}
