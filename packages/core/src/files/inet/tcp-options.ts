// The TCP-level options CRIU keeps (tcp_opts_entry): Nagle off, cork, and the keepalive timing.
import { readSysctlInt } from '@criu-ts/bfd';
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

/**
 * What a new socket reads for the keepalive timing: the network namespace's sysctls, which a socket
 * follows until it sets its own values (getsockopt reports them, so a dump records them either way).
 */
export interface KeepaliveDefaults {
  keepcnt: number;
  keepidle: number;
  keepintvl: number;
}

/** The keepalive sysctls of criu-ts's network namespace, where it makes the sockets; undefined if unreadable. */
export function keepaliveDefaults(): KeepaliveDefaults | undefined {
  try {
    return {
      keepcnt: readSysctlInt('net/ipv4/tcp_keepalive_probes'),
      keepidle: readSysctlInt('net/ipv4/tcp_keepalive_time'),
      keepintvl: readSysctlInt('net/ipv4/tcp_keepalive_intvl'),
    };
  } catch {
    return undefined;
  }
}

/**
 * Set them on a new socket (cork last: it holds back what the restore sends). A keepalive value equal
 * to `defaults` (the namespace's, which the new socket has already) is not set: the socket keeps
 * following the sysctl, as it most likely did, and a restore of many connections saves 3 syscalls each.
 */
export function applyTcpOptions(fd: number, o: TcpOptsEntry, defaults?: KeepaliveDefaults): void {
  if (o.nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  if (o.keepcnt && o.keepcnt !== defaults?.keepcnt) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, o.keepcnt);
  if (o.keepidle && o.keepidle !== defaults?.keepidle) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, o.keepidle);
  if (o.keepintvl && o.keepintvl !== defaults?.keepintvl)
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, o.keepintvl);
  if (o.cork) setsockopt(fd, IPPROTO_TCP, TCP_CORK, 1);
}
