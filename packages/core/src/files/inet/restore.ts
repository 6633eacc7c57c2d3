// Inet sockets, made by criu-ts: socket(), options, bind to the dumped address and port, listen with
// the backlog, connect a UDP socket to its peer, shut down what the task had shut down. SO_REUSEADDR is
// on while binding (the dumped task's port may still be in TIME_WAIT), then set back to what the task
// had; so is SO_REUSEPORT when another socket of the images shares the port with it (two listeners on
// one port, one of which dropped the option after binding). A TCP connection comes back through TCP
// repair (tcp.ts), or closed with --tcp-close.
import type { InetSkEntry, TcpQueues, TcpStreamEntry } from '@criu-ts/images';
import {
  AF_INET6,
  bind,
  close,
  connect,
  getsockoptInt,
  IPPROTO_TCP,
  IPV6_V6ONLY,
  isSysError,
  listen,
  SHUT_RDWR,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_RAW,
  SOCK_STREAM,
  SOL_IPV6,
  SOL_SOCKET,
  setsockopt,
  socket,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import type { FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { applyBufferSizes, applySocketOptions, roomForQueues } from '../socket/options.js';
import { shutdownAsDumped } from '../socket/shutdown.js';
import { FD_TYPE } from '../table.js';
import { connectionOf, fromWords, type InetAddress, toSockaddr } from './address.js';
import { applyIpOptions, freeBindWhileBinding } from './ip-options.js';
import { connectAgain, finishTcpStream, isRepairableState, repairOn, setSequences, TCP } from './tcp.js';
import { applyTcpOptions, keepaliveDefaults } from './tcp-options.js';

type TcpStream = ReturnType<typeof tcpStreamOf>;

/** A TCP connection in the images, as CRIU tells one: a TCP socket with a peer. */
const isTcpConnection = (s: InetSkEntry) =>
  s.type === SOCK_STREAM && s.proto === IPPROTO_TCP && s.dst_port !== 0 && s.state !== TCP.LISTEN;

/** tcp-stream-INO.img of a connection: the entry and its two queues. */
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

const endsOf = (s: InetSkEntry): { local: InetAddress; remote: InetAddress } => ({
  local: { family: s.family, addr: fromWords(s.family, s.src_addr ?? []), port: s.src_port },
  remote: { family: s.family, addr: fromWords(s.family, s.dst_addr ?? []), port: s.dst_port },
});

/** The dump locked this connection: its lock is lifted with the others once the tree runs. */
function unlockOnceRunning(ctx: FdRestoreContext, s: InetSkEntry): void {
  const { local, remote } = endsOf(s);
  ctx.locked(connectionOf(s.family, local, remote));
}

/**
 * The connection comes back: connect in repair mode (no handshake), options, queues and window, repair
 * off; or, if it was still being set up, a new SYN. Its network lock is lifted once the tree runs.
 */
function connectRepaired(fd: number, s: InetSkEntry, t: TcpStream, ctx: FdRestoreContext): void {
  const { local, remote } = endsOf(s);
  if (s.state === TCP.SYN_SENT) connectAgain(fd, toSockaddr(s.family, remote.addr, remote.port));
  else {
    connect(fd, toSockaddr(s.family, remote.addr, remote.port));
    finishTcpStream(fd, t.entry, t.inq, t.outq, { state: s.state, local, remote }, () =>
      applyBufferSizes(fd, s.opts),
    );
  }
  unlockOnceRunning(ctx, s);
}

/**
 * Whether another socket of the images is bound to this one's port with SO_REUSEPORT: then this one
 * binds (and listens) with it too, as it must have when it was bound, and drops it afterwards.
 */
function sharesPortByReuse(ctx: FdRestoreContext, s: InetSkEntry): boolean {
  const byPort = ctx.shared('inet-reuseport-ports', () => {
    const ports = new Map<string, number>();
    for (const f of ctx.files.values()) {
      const o = f.isk;
      if (o?.opts.so_reuseport && o.src_port !== 0) {
        const key = `${o.proto}:${o.src_port}`;
        ports.set(key, (ports.get(key) ?? 0) + 1);
      }
    }
    return ports;
  });
  const n = byPort.get(`${s.proto}:${s.src_port}`) ?? 0;
  return n > (s.opts.so_reuseport ? 1 : 0);
}

/** IPV6_V6ONLY as dumped, where it differs from a new socket's (the system's bindv6only). */
function applyV6Only(fd: number, s: InetSkEntry): void {
  if (s.family !== AF_INET6 || s.v6only === undefined || s.type === SOCK_RAW) return;
  const want = s.v6only ? 1 : 0;
  if (getsockoptInt(fd, SOL_IPV6, IPV6_V6ONLY) !== want) setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, want);
}

/**
 * --tcp-close: a connection comes back closed, as CRIU makes it: a new socket with the options, not
 * bound, shut down both ways (reads see the end, writes fail with EPIPE).
 */
function closedConnection(s: InetSkEntry, ctx: FdRestoreContext): number {
  const fd = socket(s.family, s.type | SOCK_CLOEXEC, s.proto);
  try {
    applySocketOptions(fd, s.opts);
    if (s.ip_opts) applyIpOptions(fd, s.family, s.proto, s.ip_opts);
    applyV6Only(fd, s);
    if (s.tcp_opts) applyTcpOptions(fd, s.tcp_opts);
    shutdownAsDumped(fd, SHUT_RDWR + 1);
  } catch (e) {
    close(fd);
    throw e;
  }
  // Dumped through repair (without --tcp-close), it was locked then: the lock goes.
  if (ctx.dir.has('tcp-stream-%x', s.ino)) unlockOnceRunning(ctx, s);
  return fd;
}

/**
 * A TCP socket whose connection ended (closed, its read side shut down) no longer holds its port unless
 * it was bound by hand, and the port may be taken again (by the connection's TIME_WAIT): then it stays
 * unbound, as closed as it was.
 */
function bindAsDumped(fd: number, s: InetSkEntry, local: Buffer): void {
  try {
    bind(fd, toSockaddr(s.family, local, s.src_port));
  } catch (e) {
    const ended = s.type === SOCK_STREAM && s.state === TCP.CLOSE && ((s.shutdown ?? 0) & 1) !== 0;
    if (!ended || !isSysError(e, 'EADDRINUSE')) throw e;
  }
}

function makeSocket(s: InetSkEntry, ctx: FdRestoreContext): number {
  const connection = isTcpConnection(s);
  if (connection && ctx.tcpClose) return closedConnection(s, ctx);
  // connect() of a connection being set up must not wait for the handshake.
  const nonblock = connection && s.state === TCP.SYN_SENT ? SOCK_NONBLOCK : 0;
  const fd = socket(s.family, s.type | SOCK_CLOEXEC | nonblock, s.proto);
  // Read once: its sequence numbers are needed before bind, the rest after connect.
  const stream = connection ? tcpStreamOf(ctx, s) : undefined;
  try {
    if (stream) {
      // First: in repair mode no SYN goes out, the sequence numbers are ours to set, and the kernel
      // lets the socket share its port with the listener it was accepted from (forced reuse, which
      // setting SO_REUSEADDR would undo: that option comes back when repair mode ends).
      repairOn(fd);
      setSequences(fd, stream.entry, s.state);
    }
    // A connection's buffers are the largest while its queues go in; the dumped sizes come back after.
    if (stream) applySocketOptions(fd, { ...s.opts, reuseaddr: false }, { buffers: false });
    else applySocketOptions(fd, connection ? { ...s.opts, reuseaddr: false } : s.opts);
    // Room for the queued data while it goes in; a connection with empty queues keeps the sizes it has
    // until the dumped ones are set (finishTcpStream).
    if (stream && (stream.inq.length > 0 || stream.outq.length > 0)) roomForQueues(fd);
    if (s.ip_opts) applyIpOptions(fd, s.family, s.proto, s.ip_opts); // before bind: IP_FREEBIND
    applyV6Only(fd, s);
    const local = fromWords(s.family, s.src_addr ?? []);
    if (s.src_port !== 0 || local.some((b) => b !== 0)) {
      const reuse = !connection;
      const reusePort = reuse && sharesPortByReuse(ctx, s);
      if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
      if (reusePort) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
      const afterBind = freeBindWhileBinding(fd, s.family, s.type, s.ip_opts);
      bindAsDumped(fd, s, local);
      afterBind();
      if (s.state === TCP.LISTEN && s.type === SOCK_STREAM) listen(fd, s.backlog || 128);
      if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, s.opts.reuseaddr ? 1 : 0);
      if (reusePort) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, s.opts.so_reuseport ? 1 : 0);
    } else if (s.state === TCP.LISTEN && s.type === SOCK_STREAM) listen(fd, s.backlog || 128);
    const keepalive = () => ctx.shared('tcp-keepalive-defaults', keepaliveDefaults);
    if (s.tcp_opts && !connection) applyTcpOptions(fd, s.tcp_opts, keepalive());
    if (stream) {
      connectRepaired(fd, s, stream, ctx);
      if (s.tcp_opts) applyTcpOptions(fd, s.tcp_opts, keepalive());
      if (s.opts.reuseaddr) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    }
    if (s.type === SOCK_DGRAM && s.dst_port !== 0)
      connect(fd, toSockaddr(s.family, fromWords(s.family, s.dst_addr ?? []), s.dst_port));
    // A listener shut down for reading stops listening, and one being set up disconnects: neither is
    // recorded shut down by a dump.
    if (s.state !== TCP.LISTEN && s.state !== TCP.SYN_SENT) shutdownAsDumped(fd, s.shutdown);
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
    const tcp = s.type === SOCK_STREAM;
    if (tcp && s.state !== TCP.LISTEN && s.state !== TCP.CLOSE && !isRepairableState(s.state))
      throw new RestoreError(
        `files.img: inet socket ${s.ino} is a TCP socket in state ${s.state}: not supported`,
      );
  },
  open(entry, ctx) {
    const s = entry.isk!;
    try {
      const fd = withFlags(makeSocket(s, ctx), s.flags);
      // A connection restored out of repair mode goes back in it if the restore fails, before it closes:
      // so it goes without a FIN (which the lock would hold, keeping its address pair busy, and let
      // through later), and the images restore again.
      if (isTcpConnection(s) && !ctx.tcpClose && s.state !== TCP.SYN_SENT)
        ctx.ifRestoreFails(() => repairOn(fd));
      return fd;
    } catch (e) {
      throw new RestoreError(`inet socket ${s.ino} (port ${s.src_port}): ${(e as Error).message}`);
    }
  },
};
