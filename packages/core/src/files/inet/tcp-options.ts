// The TCP-level options CRIU keeps (tcp_opts_entry): Nagle off, cork, and the keepalive timing.
import type { TcpOptsEntry } from '@criu-ts/images';
import {
  getsockoptInt,
  IPPROTO_TCP,
  setsockopt,
  TCP_CORK,
  TCP_KEEPCNT,
  TCP_KEEPIDLE,
  TCP_KEEPINTVL,
  TCP_NODELAY,
} from '@criu-ts/sys';

export function readTcpOptions(fd: number): TcpOptsEntry {
  const int = (name: number) => getsockoptInt(fd, IPPROTO_TCP, name);
  return {
    nodelay: int(TCP_NODELAY) !== 0,
    cork: int(TCP_CORK) !== 0,
    keepcnt: int(TCP_KEEPCNT),
    keepidle: int(TCP_KEEPIDLE),
    keepintvl: int(TCP_KEEPINTVL),
  };
}

/** Set them on a new socket (cork last: it holds back what the restore sends). */
export function applyTcpOptions(fd: number, o: TcpOptsEntry): void {
  if (o.nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  if (o.keepcnt) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, o.keepcnt);
  if (o.keepidle) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, o.keepidle);
  if (o.keepintvl) setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, o.keepintvl);
  if (o.cork) setsockopt(fd, IPPROTO_TCP, TCP_CORK, 1);
}
