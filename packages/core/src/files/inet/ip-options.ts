// The IP-level options CRIU keeps (ip_opts_entry): binding to an address not (yet) configured, packet
// info with each datagram, the type of service (traffic class on IPv6) and the TTL (unicast hop
// limit). IPv4 and IPv6 name them differently; the image has one field for each.
import type { IpOptsEntry, IpOptsRawEntry } from '@criu-ts/images';
import {
  AF_INET,
  getsockopt,
  getsockoptInt,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
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

export function readIpOptions(fd: number, family: number, raw?: { proto: number }): IpOptsEntry {
  const n = namesOf(family);
  const int = ([level, name]: readonly [number, number]) => getsockoptInt(fd, level, name);
  return {
    freebind: int(n.freebind) !== 0,
    pktinfo: int(n.pktinfo) !== 0,
    tos: int(n.tos),
    ttl: int(n.ttl),
    ...(raw ? { raw: readRawOptions(fd, family, raw.proto) } : {}),
  };
}

// Options of raw sockets, as CRIU keeps them (ip_opts_raw_entry): the socket writes its own IP header,
// IPv4 fragments are not reassembled for it, and the ICMP types it does not want.
const IP_HDRINCL = 3;
const IP_NODEFRAG = 22;
const IPV6_HDRINCL = 36;
const SOL_RAW = 255;
const SOL_ICMPV6 = 58;
const ICMP_FILTER = 1;
const ICMPV6_FILTER = 1;

/** The ICMP filter of a raw ICMP socket: [level, name, size in u32 words], or undefined. */
function icmpFilterOf(family: number, proto: number): [number, number, number] | undefined {
  if (family === AF_INET && proto === IPPROTO_ICMP) return [SOL_RAW, ICMP_FILTER, 1];
  if (family !== AF_INET && proto === IPPROTO_ICMPV6) return [SOL_ICMPV6, ICMPV6_FILTER, 8];
  return undefined;
}

function readRawOptions(fd: number, family: number, proto: number): IpOptsRawEntry {
  const v4 = family === AF_INET;
  const out: IpOptsRawEntry = {};
  if (getsockoptInt(fd, v4 ? SOL_IP : SOL_IPV6, v4 ? IP_HDRINCL : IPV6_HDRINCL)) out.hdrincl = true;
  if (v4 && getsockoptInt(fd, SOL_IP, IP_NODEFRAG)) out.nodefrag = true;
  const filter = icmpFilterOf(family, proto);
  if (filter) {
    const [level, name, words] = filter;
    const b = getsockopt(fd, level, name, words * 4);
    out.icmpv_filter = Array.from({ length: words }, (_, i) =>
      b.length >= i * 4 + 4 ? b.readUInt32LE(i * 4) : 0,
    );
  }
  return out;
}

function applyRawOptions(fd: number, family: number, proto: number, r: IpOptsRawEntry): void {
  const v4 = family === AF_INET;
  const filter = icmpFilterOf(family, proto);
  if (filter && r.icmpv_filter?.length) {
    const b = Buffer.alloc(filter[2] * 4);
    r.icmpv_filter.slice(0, filter[2]).forEach((w, i) => {
      b.writeUInt32LE(w >>> 0, i * 4);
    });
    setsockopt(fd, filter[0], filter[1], b);
  }
  if (v4 && r.nodefrag !== undefined) setsockopt(fd, SOL_IP, IP_NODEFRAG, r.nodefrag ? 1 : 0);
  if (r.hdrincl !== undefined)
    setsockopt(fd, v4 ? SOL_IP : SOL_IPV6, v4 ? IP_HDRINCL : IPV6_HDRINCL, r.hdrincl ? 1 : 0);
}

/**
 * Set on a new socket what differs from its defaults: a TTL equal to the system's default stays
 * unset, so it follows that default as the task's did.
 */
export function applyIpOptions(fd: number, family: number, o: IpOptsEntry, proto = 0): void {
  const n = namesOf(family);
  if (o.raw) applyRawOptions(fd, family, proto, o.raw);
  const set = ([level, name]: readonly [number, number], v: number) => setsockopt(fd, level, name, v);
  const int = ([level, name]: readonly [number, number]) => getsockoptInt(fd, level, name);
  if (o.freebind) set(n.freebind, 1);
  if (o.pktinfo) set(n.pktinfo, 1);
  if (o.tos) set(n.tos, o.tos);
  if (o.ttl !== undefined && o.ttl !== int(n.ttl)) set(n.ttl, o.ttl);
}
