// Which address family a task's socket is of, for its kind (files/kinds.ts): asked with SO_DOMAIN of a
// short-lived copy of the socket (classification has no FileTable to keep it in).
import { copyFd } from '@criu-ts/compel';
import { close, getsockoptInt, SO_DOMAIN, SOL_SOCKET } from '@criu-ts/sys';
import type { OpenFile } from '../table.js';

/** AF_INET, AF_NETLINK...; undefined when the fd is not a socket or is gone. */
export function socketDomain(file: OpenFile): number | undefined {
  if (!file.link.startsWith('socket:[')) return undefined;
  let fd: number;
  try {
    fd = copyFd(file.pid, file.fd);
  } catch {
    return undefined;
  }
  try {
    return getsockoptInt(fd, SOL_SOCKET, SO_DOMAIN);
  } finally {
    close(fd);
  }
}
