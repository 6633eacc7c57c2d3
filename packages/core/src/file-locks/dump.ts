// File locks held by the tree: flock() and OFD locks belong to an open file description, POSIX
// (fcntl) locks to a process. fdinfo shows, for each fd, the locks held through it ("lock:" lines,
// the /proc/locks format). Each lock is written once to filelocks.img with the task and fd it is
// taken again through: a flock shared by a parent and its child through one inherited description
// is one lock, not two.
import type { FdLock } from '@criu-ts/bfd';
import type { FileLockEntry } from '@criu-ts/images';
import { DumpError } from '../dump/errors.js';
import type { FileTable, OpenFile } from '../files/table.js';

export const FL_POSIX = 1;
export const FL_FLOCK = 2;
export const FL_OFD = 4;
const F_RDLCK = 0;
const F_WRLCK = 1;
const LOCK_SH = 1;
const LOCK_EX = 2;

const lenOf = (l: FdLock) => (l.end === undefined ? 0n : l.end - l.start + 1n); // 0: to the end of file

function entryOf(file: OpenFile, l: FdLock): { key: string; entry: FileLockEntry } | undefined {
  const write = l.access === 'WRITE';
  const where = `pid ${file.pid} fd ${file.fd} (${file.link})`;
  if (l.mode !== 'ADVISORY') throw new DumpError(`${where}: a ${l.mode.toLowerCase()} lock cannot be dumped`);
  const base = { pid: file.pid, fd: file.fd, start: l.start, len: lenOf(l) };
  switch (l.type) {
    case 'FLOCK':
      return {
        key: `flock:${l.id}`,
        entry: { ...base, flag: FL_FLOCK, type: write ? LOCK_EX : LOCK_SH, start: 0n, len: 0n },
      };
    case 'OFDLCK':
      return { key: `ofd:${l.id}`, entry: { ...base, flag: FL_OFD, type: write ? F_WRLCK : F_RDLCK } };
    case 'POSIX':
      // Shown on every fd of that file in the owner: keep one, taken by the owner (l.pid).
      if (l.pid !== file.pid) return undefined;
      return { key: `posix:${l.id}`, entry: { ...base, flag: FL_POSIX, type: write ? F_WRLCK : F_RDLCK } };
    default:
      throw new DumpError(`${where}: a ${l.type} lock (lease or delegation) cannot be dumped`);
  }
}

/** Record the locks held through `file` (waiters blocked on a lock are not locks held: skipped). */
export function dumpFileLocks(file: OpenFile, files: FileTable): void {
  for (const l of file.info.locks ?? []) {
    if (l.blocked) continue;
    const found = entryOf(file, l);
    if (found && files.firstTime(`lock:${found.key}`)) files.addImageEntry('filelocks', found.entry);
  }
}
