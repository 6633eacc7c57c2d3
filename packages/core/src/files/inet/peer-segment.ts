// A TCP segment as if the peer had sent it, written with a raw socket straight to a restored socket.
// TCP repair can set a socket's queues and sequence numbers, but not that the peer's FIN was received
// (CLOSE_WAIT, LAST_ACK, CLOSING) or that our FIN was acknowledged (FIN_WAIT2): those the socket must
// be told the TCP way, by a segment. The segment carries the network lock's mark, so the lock, which
// still drops everything else of the connection, lets it through (CRIU's libsoccr does the same, with
// the same mark).
import {
  AF_INET,
  AF_INET6,
  close,
  IPPROTO_RAW,
  IPPROTO_TCP,
  SO_MARK,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_SOCKET,
  sendmsg,
  setsockopt,
  socket,
} from '@criu-ts/sys';
import { LOCK_BYPASS_MARK } from '../../net-lock/mark.js';
import { type InetAddress, toSockaddr } from './address.js';

export const TH_FIN = 0x01;
export const TH_ACK = 0x10;

const TCP_HEADER = 20;

export interface PeerSegment {
  /** The peer: the segment's source. */
  from: InetAddress;
  /** The restored socket: the segment's destination. */
  to: InetAddress;
  seq: number;
  ack: number;
  flags: number;
  /** The window field, already scaled down as the peer would send it. */
  window: number;
}

/** ::ffff:a.b.c.d, an IPv4 address as an IPv6 socket talking IPv4 names it. */
const V4_MAPPED = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
const isV4Mapped = (a: InetAddress) => a.family === AF_INET6 && a.addr.subarray(0, 12).equals(V4_MAPPED);
const asV4 = (a: InetAddress): InetAddress => ({
  family: AF_INET,
  addr: a.addr.subarray(12, 16),
  port: a.port,
});

/**
 * Send `s` to the restored socket, through a raw socket that writes its own IP header. An IPv6 socket
 * talking IPv4 (both ends ::ffff:a.b.c.d) gets an IPv4 packet: on the wire its connection is IPv4, and
 * an IPv6 packet to a mapped address is not routed at all (ENETUNREACH).
 */
export function sendPeerSegment(seg: PeerSegment): void {
  const s =
    isV4Mapped(seg.from) && isV4Mapped(seg.to) ? { ...seg, from: asV4(seg.from), to: asV4(seg.to) } : seg;
  const fd = socket(s.from.family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  try {
    setsockopt(fd, SOL_SOCKET, SO_MARK, LOCK_BYPASS_MARK);
    const tcp = tcpHeader(s);
    const packet = s.from.family === AF_INET ? ipv4(s, tcp) : ipv6(s, tcp);
    sendmsg(fd, { iov: [packet], name: toSockaddr(s.to.family, s.to.addr, 0) });
  } finally {
    close(fd);
  }
}

function tcpHeader(s: PeerSegment): Buffer {
  const h = Buffer.alloc(TCP_HEADER);
  h.writeUInt16BE(s.from.port, 0);
  h.writeUInt16BE(s.to.port, 2);
  h.writeUInt32BE(s.seq >>> 0, 4);
  h.writeUInt32BE(s.ack >>> 0, 8);
  h.writeUInt8((TCP_HEADER / 4) << 4, 12);
  h.writeUInt8(s.flags, 13);
  h.writeUInt16BE(Math.min(s.window, 0xffff), 14);
  const pseudo =
    s.from.family === AF_INET
      ? Buffer.concat([s.from.addr, s.to.addr, Buffer.from([0, IPPROTO_TCP, 0, TCP_HEADER])])
      : Buffer.concat([s.from.addr, s.to.addr, u32be(TCP_HEADER), Buffer.from([0, 0, 0, IPPROTO_TCP])]);
  h.writeUInt16BE(checksum(Buffer.concat([pseudo, h])), 16);
  return h;
}

/** IPv4 header; the kernel fills in the id and the header checksum left 0. */
function ipv4(s: PeerSegment, tcp: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt8(0x45, 0);
  h.writeUInt16BE(20 + tcp.length, 2);
  h.writeUInt16BE(0x4000, 6); // don't fragment
  h.writeUInt8(64, 8);
  h.writeUInt8(IPPROTO_TCP, 9);
  s.from.addr.copy(h, 12);
  s.to.addr.copy(h, 16);
  return Buffer.concat([h, tcp]);
}

function ipv6(s: PeerSegment, tcp: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(tcp.length, 4);
  h.writeUInt8(IPPROTO_TCP, 6);
  h.writeUInt8(64, 7);
  s.from.addr.copy(h, 8);
  s.to.addr.copy(h, 24);
  return Buffer.concat([h, tcp]);
}

function u32be(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
}

/** The Internet checksum (RFC 1071) of an even number of bytes. */
function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
