// Small things the fd kinds share: recognising an anonymous inode, the status flags F_SETFL may set on
// criu-ts's copy of a file, and naming a failed raw syscall.
import { close, F_SETFL, fcntl, O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME, O_NONBLOCK, raw } from '@criu-ts/sys';

/** The link /proc/PID/fd/N shows for an anonymous inode of `kind`: "anon_inode:[eventfd]", but
 *  "anon_inode:inotify" (the kernel names that one without brackets). */
export const isAnon = (link: string, kind: string) =>
  link === `anon_inode:[${kind}]` || link === `anon_inode:${kind}`;

/** The flags F_SETFL can change (O_APPEND, O_NONBLOCK, O_ASYNC, O_DIRECT, O_NOATIME). */
export const SETFL_MASK = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;

/** A raw syscall's result, or an Error naming the call. */
export function orThrow(what: string, r: number): number {
  if (r < 0) throw new Error(`${what}: errno ${raw.lastErrno()}`);
  return r;
}

/** Apply the task's status flags to criu-ts's new fd (closing it if that fails). */
export function withFlags(fd: number, flags: number): number {
  try {
    fcntl(fd, F_SETFL, flags & SETFL_MASK);
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}
