// The SOL_SOCKET options CRIU keeps for every socket (sk_opts_entry), read from criu-ts's copy of the
// socket and set again on the new one: unix, inet and netlink sockets all go through here.
import type { SkOptsEntry } from '@criu-ts/images';
import {
  attachSocketFilter,
  getSocketFilter,
  getsockopt,
  getsockoptInt,
  isSysError,
  SO_BINDTODEVICE,
  SO_BROADCAST,
  SO_BUF_LOCK,
  SO_DONTROUTE,
  SO_KEEPALIVE,
  SO_LINGER,
  SO_MARK,
  SO_NO_CHECK,
  SO_OOBINLINE,
  SO_PASSCRED,
  SO_PASSSEC,
  SO_PRIORITY,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_RCVLOWAT,
  SO_RCVTIMEO_OLD,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SO_SNDTIMEO_OLD,
  SOL_SOCKET,
  setsockopt,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';

function timeout(fd: number, name: number): [bigint, bigint] {
  const tv = getsockopt(fd, SOL_SOCKET, name, 16);
  return [tv.readBigInt64LE(0), tv.readBigInt64LE(8)];
}

/**
 * The options of criu-ts's copy of a socket. `where` names the socket ("pid 12 fd 3") in the DumpError
 * of an option that cannot be carried over.
 */
export function readSocketOptions(fd: number, where: string): SkOptsEntry {
  const int = (name: number) => getsockoptInt(fd, SOL_SOCKET, name);
  // Options a socket family or kernel does not have (SO_PASSCRED on TCP: EOPNOTSUPP) are left out.
  const opt = (name: number): number | undefined => {
    try {
      return int(name);
    } catch {
      return undefined;
    }
  };
  const bool = (name: number) => {
    const v = opt(name);
    return v === undefined ? undefined : v !== 0;
  };
  const [sndSec, sndUsec] = timeout(fd, SO_SNDTIMEO_OLD);
  const [rcvSec, rcvUsec] = timeout(fd, SO_RCVTIMEO_OLD);
  return {
    so_sndbuf: int(SO_SNDBUF),
    so_rcvbuf: int(SO_RCVBUF),
    so_snd_tmo_sec: sndSec,
    so_snd_tmo_usec: sndUsec,
    so_rcv_tmo_sec: rcvSec,
    so_rcv_tmo_usec: rcvUsec,
    ...defined({
      reuseaddr: bool(SO_REUSEADDR),
      so_priority: opt(SO_PRIORITY),
      so_rcvlowat: opt(SO_RCVLOWAT),
      // As CRIU writes it: only a mark that is set (restoring one needs CAP_NET_ADMIN).
      so_mark: opt(SO_MARK) || undefined,
      so_passcred: bool(SO_PASSCRED),
      so_passsec: bool(SO_PASSSEC),
      so_dontroute: bool(SO_DONTROUTE),
      so_no_check: bool(SO_NO_CHECK),
      so_bound_dev: boundDevice(fd),
      so_filter: socketFilter(fd, where),
      so_reuseport: bool(SO_REUSEPORT),
      so_broadcast: bool(SO_BROADCAST),
      so_keepalive: bool(SO_KEEPALIVE),
      so_oobinline: opt(SO_OOBINLINE),
      so_linger: lingerTimeout(fd),
      so_buf_lock: opt(SO_BUF_LOCK),
    }),
  };
}

/** The fields whose value is known (optional proto2 fields are left out, not set to undefined). */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The interface the socket is bound to (SO_BINDTODEVICE), if any. */
function boundDevice(fd: number): string | undefined {
  const name = getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, 16).toString('latin1').replace(/\0.*$/s, '');
  return name || undefined;
}

/** l_linger of an SO_LINGER that is on; nothing when lingering is off (the default). */
function lingerTimeout(fd: number): number | undefined {
  const l = getsockopt(fd, SOL_SOCKET, SO_LINGER, 8);
  return l.readInt32LE(0) !== 0 ? l.readInt32LE(4) : undefined;
}

/**
 * The classic BPF filter, if one is attached. An eBPF program cannot be read back, and a socket that
 * came back without its filter would let through what the task meant to drop: refused.
 */
function socketFilter(fd: number, where: string): bigint[] | undefined {
  try {
    const insns = getSocketFilter(fd);
    return insns.length > 0 ? insns : undefined;
  } catch (e) {
    if (isSysError(e, 'EACCES'))
      throw new DumpError(
        `${where}: the socket has an eBPF filter, which cannot be read back: not supported`,
      );
    throw e;
  }
}

/**
 * Set the options on a new socket, buffer sizes first (see applyBufferSizes); `buffers: false` leaves
 * them to the caller (a TCP connection gets the largest buffers while its queues go in, then the dumped
 * ones). Timeouts of 0 (none, what a new socket has) are not set.
 */
export function applySocketOptions(fd: number, o: SkOptsEntry, opts: { buffers?: boolean } = {}): void {
  if (opts.buffers !== false) applyBufferSizes(fd, o);
  const tv = (sec: bigint, usec: bigint) => {
    const b = Buffer.alloc(16);
    b.writeBigInt64LE(sec, 0);
    b.writeBigInt64LE(usec, 8);
    return b;
  };
  if (o.so_snd_tmo_sec !== 0n || o.so_snd_tmo_usec !== 0n)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO_OLD, tv(o.so_snd_tmo_sec, o.so_snd_tmo_usec));
  if (o.so_rcv_tmo_sec !== 0n || o.so_rcv_tmo_usec !== 0n)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO_OLD, tv(o.so_rcv_tmo_sec, o.so_rcv_tmo_usec));
  const flag = (name: number, v: boolean | number | undefined) => {
    if (v !== undefined && v !== false && v !== 0) setsockopt(fd, SOL_SOCKET, name, Number(v));
  };
  flag(SO_REUSEADDR, o.reuseaddr);
  flag(SO_PRIORITY, o.so_priority);
  if (o.so_rcvlowat !== undefined && o.so_rcvlowat > 1)
    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, o.so_rcvlowat);
  flag(SO_MARK, o.so_mark);
  flag(SO_PASSCRED, o.so_passcred);
  flag(SO_PASSSEC, o.so_passsec);
  flag(SO_DONTROUTE, o.so_dontroute);
  flag(SO_NO_CHECK, o.so_no_check);
  flag(SO_REUSEPORT, o.so_reuseport);
  flag(SO_BROADCAST, o.so_broadcast);
  flag(SO_KEEPALIVE, o.so_keepalive);
  flag(SO_OOBINLINE, o.so_oobinline);
  if (o.so_bound_dev) setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, Buffer.from(`${o.so_bound_dev}\0`));
  if (o.so_linger !== undefined) setsockopt(fd, SOL_SOCKET, SO_LINGER, linger(o.so_linger));
  if (o.so_filter?.length) attachSocketFilter(fd, o.so_filter);
}

/**
 * The buffer sizes as dumped. The kernel doubles a size it is given and reports the doubled value:
 * halve it back. The FORCE variants go past net.core.[rw]mem_max, as the dumped size may have.
 */
export function applyBufferSizes(fd: number, o: SkOptsEntry): void {
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, Math.max(1, o.so_sndbuf >>> 1));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, Math.max(1, o.so_rcvbuf >>> 1));
  // Setting a size marks it as the user's (the kernel stops tuning it): only the dumped marks stay.
  if (o.so_buf_lock !== undefined) setsockopt(fd, SOL_SOCKET, SO_BUF_LOCK, o.so_buf_lock);
}

/** The largest buffers the kernel takes (it doubles the value, which must stay an int). */
const MAX_BUFFER = 0x3fff_ffff;

/**
 * Buffers as large as the kernel allows, while queued data is put back: a queue holds more than its
 * buffer size says (each packet costs its bookkeeping too), so the dumped sizes would not take it all.
 * applyBufferSizes sets the dumped ones once it is in.
 */
export function roomForQueues(fd: number): void {
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, MAX_BUFFER);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, MAX_BUFFER);
}

/** struct linger, on, with its timeout in seconds. */
function linger(seconds: number): Buffer {
  const l = Buffer.alloc(8);
  l.writeInt32LE(1, 0);
  l.writeInt32LE(seconds, 4);
  return l;
}
