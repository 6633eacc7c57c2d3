// Process-level calls: prctl, kcmp, memfd_create, ioctl, signals, ids, rlimits, namespaces.
import { TCGETS } from './constants/fs.js';
import { PR_SET_CHILD_SUBREAPER } from './constants/process.js';
import { SYS } from './constants/syscalls.js';
import { type Arg, checked, checkedRetry, cString, syscall } from './native.js';

/** prctl(2) of the calling process. Returns the syscall's result (many PR_GET_* return the value). */
export function prctl(option: number, arg2: Arg = 0, arg3: Arg = 0, arg4: Arg = 0, arg5: Arg = 0): number {
  return checked('prctl', () => `option ${option}`, syscall(SYS.prctl, option, arg2, arg3, arg4, arg5));
}

/**
 * Make this process a child subreaper: orphans among its descendants are re-parented to it. criu-ts
 * starts traced tasks through a double fork under a subreaper so that libuv (which reaps and waits on
 * its own child_process children) never sees them.
 */
export function setChildSubreaper(on = true): void {
  prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0);
}

/**
 * kcmp(2): compare kernel objects of two processes. Returns 0 (same object), 1 / 2 (ordered less /
 * greater, for sorting) or 3 (different, unordered).
 */
export function kcmp(pid1: number, pid2: number, type: number, idx1: Arg = 0, idx2: Arg = 0): number {
  return checked(
    'kcmp',
    () => `pid ${pid1} vs ${pid2}, type ${type}`,
    syscall(SYS.kcmp, pid1, pid2, type, idx1, idx2),
  );
}

/**
 * `n` random bytes from the kernel's pool (getrandom(2), blocking only until the pool is first
 * initialised, which is long past on a running system). Cheaper than loading node:crypto for a name.
 */
export function getRandomBytes(n: number): Buffer {
  const buf = Buffer.alloc(n);
  for (let got = 0; got < n; ) {
    got += checkedRetry(
      'getrandom',
      () => `${n} bytes`,
      () => syscall(SYS.getrandom, buf.subarray(got), n - got, 0),
    );
  }
  return buf;
}

/** memfd_create(2). flags: MFD_CLOEXEC, MFD_ALLOW_SEALING, ... */
export function memfdCreate(name: string, flags = 0): number {
  const n = cString(name);
  return checked('memfd_create', () => name, syscall(SYS.memfd_create, n, flags));
}

/** ioctl(2) with an integer argument, an address, or a Buffer (passed by pointer). */
export function ioctl(fd: number, request: number, arg: number | bigint | Buffer = 0): number {
  return checkedRetry(
    'ioctl',
    () => `fd ${fd}, request 0x${request.toString(16)}`,
    () => syscall(SYS.ioctl, fd, request, arg),
  );
}

/**
 * Whether `fd` is a terminal (isatty(3): TCGETS succeeds). Unlike node:tty's, it loads nothing, and
 * node:tty brings net and the streams with it.
 */
export function isTerminal(fd: number): boolean {
  return syscall(SYS.ioctl, fd, TCGETS, Buffer.alloc(60)) === 0;
}

/** ioctl with an int out-argument (FIONREAD, SIOCOUTQ, TIOCGPGRP...): returns the int. */
export function ioctlGetInt(fd: number, request: number): number {
  const b = Buffer.alloc(4);
  ioctl(fd, request, b);
  return b.readInt32LE(0);
}

/** kill(2). */
export function kill(pid: number, signal: number): void {
  checked('kill', () => `pid ${pid}, signal ${signal}`, syscall(SYS.kill, pid, signal));
}

/** tgkill(2): signal one thread. */
export function tgkill(tgid: number, tid: number, signal: number): void {
  checked('tgkill', () => `tid ${tid}, signal ${signal}`, syscall(SYS.tgkill, tgid, tid, signal));
}

/** getpid(2). */
export function getpid(): number {
  return syscall(SYS.getpid);
}

/**
 * getresuid(2) of the calling thread: [real, effective, saved].
 */
export function getresuid(): [number, number, number] {
  const b = Buffer.alloc(12);
  checked('getresuid', () => '', syscall(SYS.getresuid, b, b.subarray(4), b.subarray(8)));
  return [b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8)];
}

/**
 * setresuid(2) of the calling thread only: the raw system call, not glibc's wrapper, which changes
 * every thread of the process (Node's other threads keep their ids). -1 leaves an id as it is. Changing
 * the effective uid also clears the process's dumpable flag (see PR_SET_DUMPABLE).
 */
export function setresuidThread(ruid: number, euid: number, suid: number): void {
  checked('setresuid', () => `${ruid} ${euid} ${suid}`, syscall(SYS.setresuid, ruid, euid, suid));
}

/** gettid(2): the id of the calling thread. */
export function gettid(): number {
  return syscall(SYS.gettid);
}

/** A resource limit; RLIM_INFINITY is 0xffff_ffff_ffff_ffffn. */
export interface Rlimit {
  cur: bigint;
  max: bigint;
}

/** prlimit64(2): read (and optionally set) a resource limit of `pid` (0 = this process). */
export function prlimit(pid: number, resource: number, newLimit?: Rlimit): Rlimit {
  const oldBuf = Buffer.alloc(16);
  let newBuf: Buffer | null = null;
  if (newLimit) {
    newBuf = Buffer.alloc(16);
    newBuf.writeBigUInt64LE(newLimit.cur, 0);
    newBuf.writeBigUInt64LE(newLimit.max, 8);
  }
  checked(
    'prlimit64',
    () => `pid ${pid}, resource ${resource}`,
    syscall(SYS.prlimit64, pid, resource, newBuf, oldBuf),
  );
  return { cur: oldBuf.readBigUInt64LE(0), max: oldBuf.readBigUInt64LE(8) };
}

/** setns(2): move this thread into the namespace of `fd` (nstype: CLONE_NEW* or 0). */
export function setns(fd: number, nstype = 0): void {
  checked('setns', () => `fd ${fd}`, syscall(SYS.setns, fd, nstype));
}

/** unshare(2) with CLONE_NEW* / CLONE_FILES / CLONE_FS flags. */
export function unshare(flags: number | bigint): void {
  checked('unshare', () => `flags 0x${flags.toString(16)}`, syscall(SYS.unshare, flags));
}
