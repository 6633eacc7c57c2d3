// File locks, taken again before any restored task runs. POSIX locks belong to a process: the owning
// task takes them itself, through an injected fcntl(F_SETLK) on the fd it took them through. flock()
// and OFD locks belong to the open file description: an OFD lock is taken here, on criu-ts's copy of
// the description the task shares (its owner shows as -1 anyway); a flock is taken by the task that
// took it before (an injected flock()), so that /proc/locks and fdinfo name the same pid as before.
// Never waiting: a lock someone else holds now is a clear error. Restore takes every lock the images hold, with or
// without --file-locks (a dump without it holds none).
import type { FileLockEntry, ImageDir } from '@criu-ts/images';
import {
  F_OFD_SETLK,
  F_RDLCK,
  F_SETLK,
  F_UNLCK,
  F_WRLCK,
  fcntl,
  LOCK_EX,
  LOCK_NB,
  LOCK_SH,
  SYS,
} from '@criu-ts/sys';
import { RestoreError } from '../restore/errors.js';
import type { Call } from '../restore/inject.js';
import { FL_FLOCK, FL_OFD, FL_POSIX } from './dump.js';

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

const KIND: Record<number, string> = { [FL_POSIX]: 'POSIX', [FL_FLOCK]: 'flock', [FL_OFD]: 'OFD' };

/**
 * Take the task's locks: OFD ones here on `nodeFd(fd)` (criu-ts's copy of the task's fd); returns the
 * injected calls for its POSIX and flock ones, each with what it does (`put` copies a struct flock into
 * the task).
 */
export function retakeLocks(
  pid: number,
  locks: FileLockEntry[],
  nodeFd: (fd: number) => number,
  put: (b: Buffer) => bigint,
): Array<{ call: Call; what: string }> {
  const calls: Array<{ call: Call; what: string }> = [];
  for (const l of locks) {
    const what = `filelocks.img: the ${KIND[l.flag] ?? `kind ${l.flag}`} lock of pid ${pid} fd ${l.fd}`;
    if (!KIND[l.flag]) throw new RestoreError(`${what}: unknown kind of lock (a lease?)`);
    // As CRIU: an unlocked entry takes nothing; flock's type is F_RDLCK / F_WRLCK like the others'.
    if (l.type === F_UNLCK) continue;
    if (l.type !== F_RDLCK && l.type !== F_WRLCK) throw new RestoreError(`${what}: unknown type ${l.type}`);
    try {
      const op = l.type === F_WRLCK ? LOCK_EX : LOCK_SH;
      if (l.flag === FL_FLOCK)
        calls.push({ call: [SYS.flock, l.fd, op | LOCK_NB], what: `flock on fd ${l.fd}` });
      else if (l.flag === FL_OFD) fcntl(nodeFd(l.fd), F_OFD_SETLK, flockStruct(l));
      else
        calls.push({
          call: [SYS.fcntl, l.fd, F_SETLK, put(flockStruct(l))],
          what: `POSIX lock on fd ${l.fd}`,
        });
    } catch (e) {
      if (e instanceof RestoreError) throw e;
      throw new RestoreError(`${what}: cannot take it again: ${(e as Error).message}`);
    }
  }
  return calls;
}
