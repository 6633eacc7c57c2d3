// Inet addresses as inet_sk_entry keeps them (the address bytes, in network order, as u32 words: one
// for IPv4, four for IPv6) and as sockaddr_in / sockaddr_in6 carry them.
import { AF_INET, AF_INET6, formatIPv4, formatIPv6 } from '@criu-ts/sys';
import type { Connection } from '../../net-lock/index.js';

export interface InetAddress {
  family: number;
  /** 4 or 16 bytes, network order */
  addr: Buffer;
  port: number;
}

/** From a raw sockaddr (getsockname/getpeername); undefined for anything else. */
export function fromSockaddr(sa: Buffer): InetAddress | undefined {
  const family = sa.length >= 2 ? sa.readUInt16LE(0) : 0;
  if (family === AF_INET && sa.length >= 8)
    return { family, addr: Buffer.from(sa.subarray(4, 8)), port: sa.readUInt16BE(2) };
  if (family === AF_INET6 && sa.length >= 24)
    return { family, addr: Buffer.from(sa.subarray(8, 24)), port: sa.readUInt16BE(2) };
  return undefined;
}

export function toSockaddr(family: number, addr: Buffer, port: number): Buffer {
  if (family === AF_INET) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(port, 2);
    addr.copy(b, 4, 0, 4);
    return b;
  }
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  addr.copy(b, 8, 0, 16);
  return b;
}

/** The image's words: the address bytes read as little-endian u32s (CRIU copies the bytes as they are). */
export const toWords = (addr: Buffer): number[] =>
  Array.from({ length: addr.length >> 2 }, (_, i) => addr.readUInt32LE(i * 4));

export function fromWords(family: number, words: readonly number[]): Buffer {
  const b = Buffer.alloc(family === AF_INET ? 4 : 16);
  for (const [i, w] of words.slice(0, b.length >> 2).entries()) b.writeUInt32LE(w >>> 0, i * 4);
  return b;
}

/** A connection's two ends as the network lock names them. */
export function connectionOf(family: number, local: InetAddress, remote: InetAddress): Connection {
  const text = (a: Buffer) => (family === AF_INET ? formatIPv4(a) : formatIPv6(a));
  return {
    family: family === AF_INET ? 'ip' : 'ip6',
    local: text(local.addr),
    localPort: local.port,
    remote: text(remote.addr),
    remotePort: remote.port,
  };
}
