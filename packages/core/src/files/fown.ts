// The owner of an open file description (fcntl F_SETOWN / F_SETOWN_EX) and its signal (F_SETSIG): the
// task, thread or process group the kernel sends SIGIO to when an O_ASYNC file becomes ready, and SIGURG
// when a socket gets urgent data. Both belong to the description, not to the fd, so criu-ts reads them
// on its own copy at dump (pidfd_getfd) and sets them on its own copy at restore, once the tasks exist
// (F_SETOWN_EX refuses a pid nobody has). Every image entry with a `fown` (fown_entry) carries them,
// as CRIU writes it: signum always, the rest only when an owner is set.
import type { FileEntry } from '@criu-ts/images';
import {
  F_GETOWN_EX,
  F_GETOWNER_UIDS,
  F_GETSIG,
  F_SETFL,
  F_SETOWN_EX,
  F_SETSIG,
  fcntl,
  getresuid,
  isSysError,
  O_ASYNC,
  O_PATH,
  PR_GET_DUMPABLE,
  PR_SET_DUMPABLE,
  prctl,
  SYS,
  setresuidThread,
} from '@criu-ts/sys';

import type { Call } from '../restore/inject.js';

/** fown_entry (fown.proto). */
export interface Fown {
  uid: number;
  euid: number;
  signum: number;
  pid_type: number;
  pid: number;
}

/** fown_entry of a file with no owner and the default signal: what nearly every file has. */
export const noOwner = (): Fown => ({ uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 });

/**
 * The owner and signal of the description `fd` (a copy criu-ts holds) refers to; `flags` are the
 * description's status flags (an O_PATH file has neither). The owner's uid and euid are the ids of
 * whoever set it (the kernel checks them before sending it a signal).
 */
export function readOwner(fd: number, flags: number): Fown {
  const own = noOwner();
  if (flags & O_PATH) return own;
  own.signum = fcntl(fd, F_GETSIG);
  const ex = Buffer.alloc(8);
  fcntl(fd, F_GETOWN_EX, ex);
  const pid = ex.readInt32LE(4);
  if (pid === 0) return own;
  const uids = Buffer.alloc(8);
  fcntl(fd, F_GETOWNER_UIDS, uids);
  return { ...own, pid_type: ex.readInt32LE(0), pid, uid: uids.readUInt32LE(0), euid: uids.readUInt32LE(4) };
}

/** Whether `own` is anything but the default (no owner, SIGIO). */
export const hasOwner = (own: Fown | undefined): own is Fown =>
  own !== undefined && (own.signum !== 0 || own.pid !== 0);

/**
 * The fown of a files.img entry, wherever its kind keeps it (reg.fown, pipe.fown, usk.fown...); a FIFO's
 * is the one of its REG entry (regf_id), as CRIU writes it.
 */
export function ownerOfEntry(f: FileEntry, files: ReadonlyMap<number, FileEntry>): Fown | undefined {
  if (f.fifo) {
    const reg = f.fifo.regf_id === undefined ? undefined : files.get(f.fifo.regf_id);
    return reg ? ownerOfEntry(reg, files) : undefined;
  }
  for (const v of Object.values(f)) {
    if (v && typeof v === 'object' && 'fown' in v) return (v as { fown?: Fown }).fown;
  }
  return undefined;
}

/** The status flags of a files.img entry (a FIFO's are in its REG entry). */
function flagsOfEntry(f: FileEntry, files: ReadonlyMap<number, FileEntry>): number | undefined {
  if (f.fifo) {
    const reg = f.fifo.regf_id === undefined ? undefined : files.get(f.fifo.regf_id);
    return reg ? flagsOfEntry(reg, files) : undefined;
  }
  for (const v of Object.values(f)) {
    if (v && typeof v === 'object' && 'flags' in v) return (v as { flags?: number }).flags;
  }
  return undefined;
}

/**
 * For an O_ASYNC file: the task's own fcntl calls that register it again for SIGIO under the task's fd
 * number `fd` (O_ASYNC off, then on). criu-ts set O_ASYNC on its copy, under its own number, and the
 * kernel puts the number the flag was set through in the signal's si_fd.
 */
export function asyncFdCalls(
  f: FileEntry | undefined,
  files: ReadonlyMap<number, FileEntry>,
  fd: number,
): Call[] {
  const flags = f ? flagsOfEntry(f, files) : undefined;
  if (flags === undefined || !(flags & O_ASYNC)) return [];
  return [
    [SYS.fcntl, fd, F_SETFL, flags & ~O_ASYNC],
    [SYS.fcntl, fd, F_SETFL, flags],
  ];
}

/**
 * Give the description `fd` refers to its signal and owner, as the task had them. The owner is set
 * with the uid and euid that set it before the dump (the calling thread switches to them for the one
 * fcntl and back: criu-ts keeps its saved uid, 0, and its dumpable flag), so the kernel's permission
 * check for each signal gives what it gave. Returns a note when the owner is gone (a process outside
 * the tree that has exited since): then the file keeps no owner, as a signal to it would reach nobody.
 */
export function setOwner(fd: number, own: Fown): string | undefined {
  if (own.signum) fcntl(fd, F_SETSIG, own.signum);
  if (!own.pid) return undefined;
  const ex = Buffer.alloc(8);
  ex.writeInt32LE(own.pid_type, 0);
  ex.writeInt32LE(own.pid, 4);
  const [ruid, euid] = getresuid();
  const switchIds = ruid !== own.uid || euid !== own.euid;
  const dumpable = switchIds ? prctl(PR_GET_DUMPABLE) : 0;
  if (switchIds) setresuidThread(own.uid, own.euid, -1);
  try {
    fcntl(fd, F_SETOWN_EX, ex);
  } catch (e) {
    if (isSysError(e, 'ESRCH')) return `owner ${own.pid} (type ${own.pid_type}) is gone`;
    throw e;
  } finally {
    if (switchIds) {
      setresuidThread(ruid, euid, -1);
      if (prctl(PR_GET_DUMPABLE) !== dumpable) prctl(PR_SET_DUMPABLE, dumpable);
    }
  }
  return undefined;
}
