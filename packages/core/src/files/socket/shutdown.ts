import { isSysError, shutdown } from '@criu-ts/sys';

/**
 * shutdown(2) as the image records it (sk_shutdown: 1 read, 2 write, 3 both, which is SHUT_RD + 1 ...),
 * on a socket that may not be connected: an inet socket is marked shut down all the same and answers
 * ENOTCONN (a unix socket never does).
 */
export function shutdownAsDumped(fd: number, how: number | undefined): void {
  if (!how) return;
  try {
    shutdown(fd, how - 1);
  } catch (e) {
    if (!isSysError(e, 'ENOTCONN')) throw e;
  }
}
