// File locks, taken again before any restored task runs: flock() and OFD locks on criu-ts's copy of the
// open file description (they belong to the description, which the task shares), POSIX locks by the
// owning task itself (they belong to the process), through an injected fcntl(F_SETLK). Never waiting:
// a lock someone else holds now is a clear error.
import type { FileLockEntry, ImageDir } from '@criu-ts/images';
import { F_SETLK, fcntl, flock, SYS } from '@criu-ts/sys';
import { RestoreError } from '../restore/errors.js';
import type { Call } from '../restore/inject.js';
import { FL_FLOCK, FL_OFD, FL_POSIX } from './dump.js';

const LOCK_NB = 4;
const F_OFD_SETLK = 37;
const SEEK_SET = 0;

/** filelocks.img, by the pid that takes each lock again. */
export function locksByTask(dir: ImageDir): Map<number, FileLockEntry[]> {
  const out = new Map<number, FileLockEntry[]>();
  if (!dir.has('filelocks')) return out;
  for (const l of dir.messages<FileLockEntry>('filelocks')) {
    const list = out.get(l.pid) ?? [];
    list.push(l);
    out.set(l.pid, list);
  }
  return out;
}

/** struct flock for fcntl: l_type, l_whence, l_start, l_len, l_pid (0). */
function flockStruct(l: FileLockEntry): Buffer {
  const b = Buffer.alloc(32);
  b.writeInt16LE(l.type, 0);
  b.writeInt16LE(SEEK_SET, 2);
  b.writeBigInt64LE(l.start, 8);
  b.writeBigInt64LE(l.len, 16);
  return b;
}

/**
 * Take the task's locks: flock/OFD ones here on `nodeFd(fd)` (criu-ts's copy of the task's fd);
 * returns the injected calls for its POSIX ones (`put` copies the struct flock into the task).
 */
export function retakeLocks(
  pid: number,
  locks: FileLockEntry[],
  nodeFd: (fd: number) => number,
  put: (b: Buffer) => bigint,
): Call[] {
  const calls: Call[] = [];
  for (const l of locks) {
    const what = `filelocks.img: the ${l.flag === FL_FLOCK ? 'flock' : l.flag === FL_OFD ? 'OFD' : 'POSIX'} lock of pid ${pid} fd ${l.fd}`;
    try {
      if (l.flag === FL_FLOCK) flock(nodeFd(l.fd), l.type | LOCK_NB);
      else if (l.flag === FL_OFD) fcntl(nodeFd(l.fd), F_OFD_SETLK, flockStruct(l));
      else if (l.flag === FL_POSIX) calls.push([SYS.fcntl, l.fd, F_SETLK, put(flockStruct(l))]);
      else throw new RestoreError(`${what}: unknown kind ${l.flag}`);
    } catch (e) {
      if (e instanceof RestoreError) throw e;
      throw new RestoreError(`${what}: cannot take it again: ${(e as Error).message}`);
    }
  }
  return calls;
}
