// The IP-level options CRIU keeps (ip_opts_entry): binding to an address not (yet) configured, packet
// info with each datagram, the type of service (traffic class on IPv6) and the TTL (unicast hop
// limit); for raw sockets (ip_opts_raw_entry) whether the task writes the IP header itself, whether
// fragments are reassembled, and the ICMP type filter. IPv4 and IPv6 name them differently; the image
// has one field for each, present (as CRIU writes them) only when set.
import type { IpOptsEntry, IpOptsRawEntry } from '@criu-ts/images';
import {
  AF_INET,
  getsockopt,
  getsockoptInt,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  SOCK_RAW,
  SOL_IP,
  SOL_IPV6,
  setsockopt,
} from '@criu-ts/sys';

/** [level, name] of each option, by family. */
const NAMES = {
  [AF_INET]: { freebind: [SOL_IP, 15], pktinfo: [SOL_IP, 8], tos: [SOL_IP, 1], ttl: [SOL_IP, 2] },
  v6: { freebind: [SOL_IPV6, 78], pktinfo: [SOL_IPV6, 49], tos: [SOL_IPV6, 67], ttl: [SOL_IPV6, 16] },
} as const;

const namesOf = (family: number) => (family === AF_INET ? NAMES[AF_INET] : NAMES.v6);

const IP_FREEBIND: readonly [number, number] = [SOL_IP, 15];
const IP_HDRINCL: readonly [number, number] = [SOL_IP, 3];
const IPV6_HDRINCL: readonly [number, number] = [SOL_IPV6, 36];
const IP_NODEFRAG: readonly [number, number] = [SOL_IP, 22];
/** ICMP_FILTER (SOL_RAW) on an IPv4 ICMP socket: one word; ICMPV6_FILTER (SOL_ICMPV6): eight. */
const ICMP_FILTER = { level: 255, name: 1, words: 1 };
const ICMPV6_FILTER = { level: 58, name: 1, words: 8 };

const icmpFilterOf = (family: number, proto: number) =>
  family === AF_INET
    ? proto === IPPROTO_ICMP
      ? ICMP_FILTER
      : undefined
    : proto === IPPROTO_ICMPV6
      ? ICMPV6_FILTER
      : undefined;

export function readIpOptions(fd: number, family: number, type: number, proto: number): IpOptsEntry {
  const n = namesOf(family);
  const int = ([level, name]: readonly [number, number]) => getsockoptInt(fd, level, name);
  const out: IpOptsEntry = {};
  if (int(n.freebind)) out.freebind = true;
  if (int(n.pktinfo)) out.pktinfo = true;
  const tos = int(n.tos);
  if (tos) out.tos = tos;
  const ttl = int(n.ttl);
  if (ttl) out.ttl = ttl;
  if (type === SOCK_RAW) out.raw = readRawOptions(fd, family, proto);
  return out;
}

function readRawOptions(fd: number, family: number, proto: number): IpOptsRawEntry {
  const int = ([level, name]: readonly [number, number]) => getsockoptInt(fd, level, name);
  const raw: IpOptsRawEntry = {};
  if (int(family === AF_INET ? IP_HDRINCL : IPV6_HDRINCL)) raw.hdrincl = true;
  if (family === AF_INET && int(IP_NODEFRAG)) raw.nodefrag = true;
  const f = icmpFilterOf(family, proto);
  if (f) {
    const b = getsockopt(fd, f.level, f.name, f.words * 4);
    raw.icmpv_filter = Array.from({ length: f.words }, (_, i) => b.readUInt32LE(i * 4));
  }
  return raw;
}

/**
 * Set on a new socket what differs from its defaults: a TTL equal to the system's default stays
 * unset, so it follows that default as the task's did.
 */
export function applyIpOptions(fd: number, family: number, proto: number, o: IpOptsEntry): void {
  const n = namesOf(family);
  const set = ([level, name]: readonly [number, number], v: number) => setsockopt(fd, level, name, v);
  const int = ([level, name]: readonly [number, number]) => getsockoptInt(fd, level, name);
  if (o.freebind) set(n.freebind, 1);
  if (o.pktinfo) set(n.pktinfo, 1);
  if (o.tos) set(n.tos, o.tos);
  if (o.ttl !== undefined && o.ttl !== int(n.ttl)) set(n.ttl, o.ttl);
  const raw = o.raw;
  if (!raw) return;
  const f = icmpFilterOf(family, proto);
  if (f && raw.icmpv_filter?.length === f.words) {
    const b = Buffer.alloc(f.words * 4);
    for (const [i, w] of raw.icmpv_filter.entries()) b.writeUInt32LE(w >>> 0, i * 4);
    setsockopt(fd, f.level, f.name, b);
  }
  if (raw.nodefrag && family === AF_INET) set(IP_NODEFRAG, 1);
  if (raw.hdrincl) set(family === AF_INET ? IP_HDRINCL : IPV6_HDRINCL, 1);
}

/**
 * An IPv6 address may still be "tentative" (duplicate address detection) when the socket is bound
 * again, or not configured at all (the task bound it with IP_FREEBIND, then turned that off): the bind
 * is made with IP_FREEBIND, as CRIU makes it, and the dumped value comes back after. Returns what to
 * run after the bind.
 */
export function freeBindWhileBinding(fd: number, family: number, type: number, o?: IpOptsEntry): () => void {
  if (family === AF_INET || type === SOCK_RAW || o?.freebind) return () => {};
  setsockopt(fd, IP_FREEBIND[0], IP_FREEBIND[1], 1);
  return () => setsockopt(fd, IP_FREEBIND[0], IP_FREEBIND[1], 0);
}
