// Inet sockets, made by criu-ts: socket(), options, bind to the dumped address and port, listen with
// the backlog, connect a UDP socket to its peer. SO_REUSEADDR is on while binding (the dumped task's
// port may still be in TIME_WAIT), then set back to what the task had.
import type { InetSkEntry, TcpQueues, TcpStreamEntry } from '@criu-ts/images';
import {
  AF_INET6,
  bind,
  close,
  connect,
  IPV6_V6ONLY,
  listen,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_IPV6,
  SOL_SOCKET,
  setsockopt,
  socket,
} from '@criu-ts/sys';
import { type Connection, networkLock } from '../../net-lock/index.js';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import type { FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { applyBufferSizes, applySocketOptions, roomForQueues } from '../socket/options.js';
import { FD_TYPE } from '../table.js';
import { connectionOf, fromWords, toSockaddr } from './address.js';
import { applyIpOptions } from './ip-options.js';
import { finishTcpStream, isRepairableState, repairOn, setSequences, TCP } from './tcp.js';
import { applyTcpOptions } from './tcp-options.js';

type TcpStream = ReturnType<typeof tcpStreamOf>;

/** tcp-stream-INO.img of an established socket: the entry and its two queues. */
function tcpStreamOf(ctx: FdRestoreContext, s: InetSkEntry) {
  const [e] = ctx.dir.read('tcp-stream-%x', s.ino);
  if (!e) throw new RestoreError(`tcp-stream-${s.ino.toString(16)}.img is empty`);
  const q = e.extra as TcpQueues | undefined;
  return {
    entry: e.message as unknown as TcpStreamEntry,
    inq: q?.inq ?? Buffer.alloc(0),
    outq: q?.outq ?? Buffer.alloc(0),
  };
}

/**
 * The established connection comes back: connect in repair mode (no handshake), options, queues and
 * window, repair off. Its network lock is lifted once the whole tree runs again.
 */
function connectRepaired(fd: number, s: InetSkEntry, t: TcpStream, ctx: FdRestoreContext): void {
  const remote = { family: s.family, addr: fromWords(s.family, s.dst_addr ?? []), port: s.dst_port };
  const local = { family: s.family, addr: fromWords(s.family, s.src_addr ?? []), port: s.src_port };
  connect(fd, toSockaddr(s.family, remote.addr, remote.port));
  finishTcpStream(fd, t.entry, t.inq, t.outq, { state: s.state, local, remote }, () =>
    applyBufferSizes(fd, s.opts),
  );
  const c = connectionOf(s.family, local, remote);
  // Unlocked together once the tree runs: one batch for all of them.
  const batch = ctx.shared('tcp-unlock', () => {
    const list: Connection[] = [];
    ctx.afterRestore(() => networkLock(ctx.networkLock).unlock(list));
    return list;
  });
  batch.push(c);
}

function makeSocket(s: InetSkEntry, ctx: FdRestoreContext): number {
  const fd = socket(s.family, s.type | SOCK_CLOEXEC, s.proto);
  const established = s.type !== SOCK_DGRAM && isRepairableState(s.state);
  // Read once: its sequence numbers are needed before bind, the rest after connect.
  const stream = established ? tcpStreamOf(ctx, s) : undefined;
  try {
    if (stream) {
      // First: in repair mode no SYN goes out, the sequence numbers are ours to set, and the kernel
      // lets the socket share its port with the listener it was accepted from (forced reuse, which
      // setting SO_REUSEADDR would undo: that option comes back when repair mode ends).
      repairOn(fd);
      setSequences(fd, stream.entry, s.state);
    }
    applySocketOptions(fd, established ? { ...s.opts, reuseaddr: false } : s.opts);
    if (stream) roomForQueues(fd); // the dumped sizes come back once the queues are in
    if (s.ip_opts) applyIpOptions(fd, s.family, s.ip_opts); // before bind: IP_FREEBIND
    if (s.family === AF_INET6 && s.v6only !== undefined)
      setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, s.v6only ? 1 : 0);
    const local = fromWords(s.family, s.src_addr ?? []);
    if (s.src_port !== 0 || local.some((b) => b !== 0)) {
      if (!established) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
      bind(fd, toSockaddr(s.family, local, s.src_port));
      if (!established) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, s.opts.reuseaddr ? 1 : 0);
    }
    if (s.state === TCP.LISTEN) listen(fd, s.backlog || 128);
    if (s.tcp_opts && !established) applyTcpOptions(fd, s.tcp_opts);
    if (stream) {
      connectRepaired(fd, s, stream, ctx);
      if (s.tcp_opts) applyTcpOptions(fd, s.tcp_opts);
      if (s.opts.reuseaddr) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    }
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
    if (
      s.type !== SOCK_DGRAM &&
      s.state !== TCP.LISTEN &&
      s.state !== TCP.CLOSE &&
      !isRepairableState(s.state)
    )
      throw new RestoreError(
        `files.img: inet socket ${s.ino} is a TCP socket in state ${s.state}: not supported`,
      );
  },
  open(entry, ctx) {
    const s = entry.isk!;
    try {
      return withFlags(makeSocket(s, ctx), s.flags);
    } catch (e) {
      throw new RestoreError(`inet socket ${s.ino} (port ${s.src_port}): ${(e as Error).message}`);
    }
  },
};
