// Inet sockets, made by criu-ts: socket(), options, bind to the dumped address and port, listen with
// the backlog, connect a UDP socket to its peer. SO_REUSEADDR is on while binding (the dumped task's
// port may still be in TIME_WAIT), then set back to what the task had.
import type { InetSkEntry } from '@criu-ts/images';
import {
  bind,
  close,
  connect,
  listen,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOL_SOCKET,
  setsockopt,
  socket,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { applySocketOptions } from '../socket/options.js';
import { FD_TYPE } from '../table.js';
import { fromWords, toSockaddr } from './address.js';

const TCP_LISTEN = 10;
const SOCK_DGRAM = 2;
const SOL_IPV6 = 41;
const IPV6_V6ONLY = 26;
const AF_INET6 = 10;

function makeSocket(s: InetSkEntry): number {
  const fd = socket(s.family, s.type | SOCK_CLOEXEC, s.proto);
  try {
    applySocketOptions(fd, s.opts);
    if (s.family === AF_INET6 && s.v6only !== undefined)
      setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, s.v6only ? 1 : 0);
    const local = fromWords(s.family, s.src_addr ?? []);
    if (s.src_port !== 0 || local.some((b) => b !== 0)) {
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
      bind(fd, toSockaddr(s.family, local, s.src_port));
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, s.opts.reuseaddr ? 1 : 0);
    }
    if (s.state === TCP_LISTEN) listen(fd, s.backlog || 128);
    if (s.type === SOCK_DGRAM && s.dst_port !== 0)
      connect(fd, toSockaddr(s.family, fromWords(s.family, s.dst_addr ?? []), s.dst_port));
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}

export const inetSocketRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.INETSK,
  kind: 'inet socket',
  check(entry) {
    const s = entry.isk;
    if (!s) throw new RestoreError(`files.img: entry ${entry.id} is an inet socket without its isk field`);
    if (s.type !== SOCK_DGRAM && s.state !== TCP_LISTEN && s.state !== 7)
      throw new RestoreError(`files.img: inet socket ${s.ino} is a connected TCP socket: not supported yet`);
  },
  open(entry) {
    const s = entry.isk!;
    try {
      return withFlags(makeSocket(s), s.flags);
    } catch (e) {
      throw new RestoreError(`inet socket ${s.ino} (port ${s.src_port}): ${(e as Error).message}`);
    }
  },
};
