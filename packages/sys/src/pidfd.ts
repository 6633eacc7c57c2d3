// pidfds: a stable handle on a process (no pid-reuse race) and the way to copy its fds (pidfd_getfd).
import { SYS } from './constants/syscalls.js';
import { close } from './files.js';
import { checked, checkedRetry, syscall } from './native.js';

/** pidfd_open(2). flags: PIDFD_NONBLOCK, PIDFD_THREAD. The fd is always close-on-exec. */
export function pidfdOpen(pid: number, flags = 0): number {
  return checked('pidfd_open', () => `pid ${pid}`, syscall(SYS.pidfd_open, pid, flags));
}

/**
 * pidfd_getfd(2): a duplicate, in this process, of fd `targetFd` of the process behind `pidfd`. Needs
 * ptrace access to it (PTRACE_MODE_ATTACH_REALCREDS). The new fd is close-on-exec.
 */
export function pidfdGetfd(pidfd: number, targetFd: number, flags = 0): number {
  return checkedRetry(
    'pidfd_getfd',
    () => `pidfd ${pidfd}, fd ${targetFd}`,
    () => syscall(SYS.pidfd_getfd, pidfd, targetFd, flags),
  );
}

/** pidfd_send_signal(2); `info` is an optional 128-byte siginfo (see encodeSiginfo). */
export function pidfdSendSignal(pidfd: number, signal: number, info: Buffer | null = null, flags = 0): void {
  checked(
    'pidfd_send_signal',
    () => `pidfd ${pidfd}, signal ${signal}`,
    syscall(SYS.pidfd_send_signal, pidfd, signal, info, flags),
  );
}

/** Copy fd `targetFd` of process `pid` into this process (pidfd_open + pidfd_getfd + close). */
export function getFdOfProcess(pid: number, targetFd: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    return pidfdGetfd(pidfd, targetFd);
  } finally {
    close(pidfd);
  }
}
