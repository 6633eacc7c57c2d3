// The SOL_SOCKET options CRIU keeps for every socket (sk_opts_entry), read from criu-ts's copy of the
// socket and set again on the new one.
import type { SkOptsEntry } from '@criu-ts/images';
import {
  getsockopt,
  getsockoptInt,
  SO_PASSCRED,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOL_SOCKET,
  setsockopt,
} from '@criu-ts/sys';

const SO_REUSEADDR = 2;
const SO_KEEPALIVE = 9;
const SO_BROADCAST = 6;
const SO_PRIORITY = 12;
const SO_RCVLOWAT = 18;
const SO_RCVTIMEO = 20;
const SO_SNDTIMEO = 21;
const SO_PASSSEC = 34;
const SO_MARK = 36;
const SO_REUSEPORT = 15;
const SO_OOBINLINE = 10;

function timeout(fd: number, name: number): [bigint, bigint] {
  const tv = getsockopt(fd, SOL_SOCKET, name, 16);
  return [tv.readBigInt64LE(0), tv.readBigInt64LE(8)];
}

export function readSocketOptions(fd: number): SkOptsEntry {
  const int = (name: number) => getsockoptInt(fd, SOL_SOCKET, name);
  // Options a socket family does not have (SO_PASSCRED on TCP: EOPNOTSUPP) are left out.
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
  const [sndSec, sndUsec] = timeout(fd, SO_SNDTIMEO);
  const [rcvSec, rcvUsec] = timeout(fd, SO_RCVTIMEO);
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
      so_mark: opt(SO_MARK),
      so_passcred: bool(SO_PASSCRED),
      so_passsec: bool(SO_PASSSEC),
      so_reuseport: bool(SO_REUSEPORT),
      so_broadcast: bool(SO_BROADCAST),
      so_keepalive: bool(SO_KEEPALIVE),
      so_oobinline: opt(SO_OOBINLINE),
    }),
  };
}

/** The fields whose value is known (optional proto2 fields are left out, not set to undefined). */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Set the options on a new socket, buffer sizes first (queued data is put back after this, and must
 * fit). The kernel doubles a buffer size it is given and reports the doubled value: halve it back.
 * The FORCE variants go past net.core.[rw]mem_max, as the dumped size may have.
 */
export function applySocketOptions(fd: number, o: SkOptsEntry): void {
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, Math.max(1, o.so_sndbuf >>> 1));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, Math.max(1, o.so_rcvbuf >>> 1));
  const tv = (sec: bigint, usec: bigint) => {
    const b = Buffer.alloc(16);
    b.writeBigInt64LE(sec, 0);
    b.writeBigInt64LE(usec, 8);
    return b;
  };
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv(o.so_snd_tmo_sec, o.so_snd_tmo_usec));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv(o.so_rcv_tmo_sec, o.so_rcv_tmo_usec));
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
  flag(SO_REUSEPORT, o.so_reuseport);
  flag(SO_BROADCAST, o.so_broadcast);
  flag(SO_KEEPALIVE, o.so_keepalive);
  flag(SO_OOBINLINE, o.so_oobinline);
}
