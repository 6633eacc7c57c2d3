// Copying a task's file descriptors into this process with pidfd_getfd(2) (Linux 5.6), so that they can
// be inspected here (fstat, fdinfo, sock_diag, reading a pipe's buffer with tee...). The copy shares the
// open file description with the task's fd (same offset, same flags); it is close-on-exec.
import { close, pidfdGetfd, pidfdOpen } from '@criu-ts/sys';

/** A duplicate of fd `fd` of process `pid`, in this process. Close it with @criu-ts/sys close(). */
export function copyFd(pid: number, fd: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    return pidfdGetfd(pidfd, fd);
  } finally {
    close(pidfd);
  }
}

/** Copies of several fds of one process (one pidfd for all of them). */
export function copyFds(pid: number, fds: readonly number[]): number[] {
  const pidfd = pidfdOpen(pid);
  const out: number[] = [];
  try {
    for (const fd of fds) out.push(pidfdGetfd(pidfd, fd));
    return out;
  } catch (e) {
    for (const fd of out) close(fd);
    throw e;
  } finally {
    close(pidfd);
  }
}
