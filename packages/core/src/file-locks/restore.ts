// File locks, taken again before any restored task runs. POSIX locks belong to a process: the owning
// task takes them itself, through an injected fcntl(F_SETLK) on the fd it took them through. flock()
// and OFD locks belong to the open file description: an OFD lock is taken here, on criu-ts's copy of
// the description the task shares (its owner shows as -1 anyway); a flock is taken by the task that
// took it before (an injected flock()), so that /proc/locks and fdinfo name the same pid as before.
// Never waiting: a lock someone else holds now is a clear error. Restore takes every lock the images hold, with or
// without --file-locks (a dump without it holds none).
//
// A lease is set by its task (F_SETLEASE makes the caller the description's owner, the one told when the
// lease breaks). A lease that was being broken is set with the type its description's access allows, then
// broken again as CRIU does: criu-ts opens the file through /proc/PID/fd/N without waiting, in the mode
// that breaks it to the type it was being broken to (refused with EWOULDBLOCK; the break timer starts
// again). The signal that break sends the task (blocked while it is restored) is taken away again: the
// task had already been told.
import { procPath } from '@criu-ts/bfd';
import type { FileLockEntry, ImageDir } from '@criu-ts/images';
import {
  close,
  F_GETFL,
  F_GETSIG,
  F_OFD_SETLK,
  F_RDLCK,
  F_SETLEASE,
  F_SETLK,
  F_UNLCK,
  F_WRLCK,
  fcntl,
  isSysError,
  LOCK_EX,
  LOCK_NB,
  LOCK_SH,
  O_ACCMODE,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_WRONLY,
  open,
  SEEK_SET,
  SIGIO,
  SYS,
  sigmaskBit,
} from '@criu-ts/sys';
import { RestoreError } from '../restore/errors.js';
import type { Call } from '../restore/inject.js';
import { FL_FLOCK, FL_LEASE, FL_OFD, FL_POSIX, LEASE_BREAKING } from './dump.js';

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

const KIND: Record<number, string> = {
  [FL_POSIX]: 'POSIX',
  [FL_FLOCK]: 'flock',
  [FL_OFD]: 'OFD',
  [FL_LEASE]: 'lease',
};

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
    if (!KIND[l.flag]) throw new RestoreError(`${what}: unknown kind of lock`);
    if (l.flag === FL_LEASE) {
      calls.push({
        call: [SYS.fcntl, l.fd, F_SETLEASE, leaseToSet(l, nodeFd, what)],
        what: `lease on fd ${l.fd}`,
      });
      continue;
    }
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

/** The type F_SETLEASE takes: the lease's own, or for one being broken the one its access mode allows. */
function leaseToSet(l: FileLockEntry, nodeFd: (fd: number) => number, what: string): number {
  if (!(l.type & LEASE_BREAKING)) {
    if (l.type !== F_RDLCK && l.type !== F_WRLCK) throw new RestoreError(`${what}: unknown type ${l.type}`);
    return l.type;
  }
  breakFlags(l, what);
  return (fcntl(nodeFd(l.fd), F_GETFL) & O_ACCMODE) === O_RDONLY ? F_RDLCK : F_WRLCK;
}

/** The open mode that breaks a lease to the type it was being broken to (CRIU's choice). */
function breakFlags(l: FileLockEntry, what: string): number {
  const target = l.type & ~LEASE_BREAKING;
  if (target === F_UNLCK) return O_WRONLY;
  if (target === F_RDLCK) return O_RDONLY;
  throw new RestoreError(`${what}: a lease being broken to type ${target}`);
}

/** What breaking leases needs from the task: one injected syscall (it holds its signals blocked). */
export interface LeaseTask {
  syscall(nr: number, ...args: Array<number | bigint>): bigint;
  put(b: Buffer): bigint;
  resetData(): void;
}

/**
 * Once the task's leases are set: break again those that were being broken, and take the signal each
 * break sends the task away (F_GETSIG of the description, SIGIO by default).
 */
export function breakLeases(
  pid: number,
  locks: FileLockEntry[],
  nodeFd: (fd: number) => number,
  task: LeaseTask,
): void {
  for (const l of locks) {
    if (l.flag !== FL_LEASE || !(l.type & LEASE_BREAKING)) continue;
    const what = `filelocks.img: the lease of pid ${pid} fd ${l.fd}`;
    let fd = -1;
    try {
      fd = open(procPath(pid, 'fd', l.fd), breakFlags(l, what) | O_NONBLOCK | O_CLOEXEC);
    } catch (e) {
      if (!isSysError(e, 'EAGAIN'))
        throw new RestoreError(`${what}: cannot break it again: ${(e as Error).message}`);
    }
    if (fd >= 0) {
      close(fd);
      throw new RestoreError(`${what}: Conflicting lease wasn't found`);
    }
    const sig = fcntl(nodeFd(l.fd), F_GETSIG) || SIGIO;
    const set = Buffer.alloc(8);
    set.writeBigUInt64LE(sigmaskBit(sig));
    const r = task.syscall(SYS.rt_sigtimedwait, task.put(set), 0, task.put(Buffer.alloc(16)), 8);
    task.resetData();
    if (r !== BigInt(sig) && r !== -11n)
      throw new RestoreError(`${what}: taking back the signal of its break (${sig}): ${r}`);
  }
}
