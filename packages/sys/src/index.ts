// @criu-ts/sys: typed Linux x86_64 system calls for criu-ts, via koffi.
// Addresses and u64 values are bigint; every failure throws SysError (call, errno, code).
import { koffi, lastErrno, libc, syscall } from './native.js';

export * from './aio.js';
export * from './anonfds.js';
export * from './clone3.js';
export * from './constants/clone.js';
export * from './constants/fs.js';
export * from './constants/mm.js';
export * from './constants/process.js';
export * from './constants/ptrace.js';
export * from './constants/signals.js';
export * from './constants/socket.js';
export * from './constants/syscalls.js';
export * from './cpuid.js';
export * from './errno.js';
export * from './files.js';
export * from './fsnotify.js';
export * from './memory.js';
export * from './mount.js';
export { type Arg, addressOf, withPinned } from './native.js';
export * from './nftables.js';
export * from './paths.js';
export * from './pidfd.js';
export * from './process.js';
export * from './ptrace.js';
export * from './regs.js';
export * from './siginfo.js';
export * from './sockdiag.js';
export * from './socket.js';
export * from './sysv.js';
export * from './wait.js';

/**
 * The underlying bindings, for packages that need something unusual. `syscall(nr, ...args)` returns
 * the kernel's result or -1 with `lastErrno()` set; arguments may be numbers, bigints, Buffers (passed
 * by address and kept alive for the call) or null. `koffi` and `libc` allow declaring other functions.
 */
export const raw = { syscall, lastErrno, koffi, libc } as const;
export * from './sibling.js';
