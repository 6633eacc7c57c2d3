// The IP-level options CRIU keeps (ip_opts_entry): binding to an address not (yet) configured, packet
// info with each datagram, the type of service (traffic class on IPv6) and the TTL (unicast hop
// limit). IPv4 and IPv6 name them differently; the image has one field for each.
import type { IpOptsEntry } from '@criu-ts/images';
import { AF_INET, getsockoptInt, SOL_IP, SOL_IPV6, setsockopt } from '@criu-ts/sys';

/** [level, name] of each option, by family. */
const NAMES = {
  [AF_INET]: { freebind: [SOL_IP, 15], pktinfo: [SOL_IP, 8], tos: [SOL_IP, 1], ttl: [SOL_IP, 2] },
  v6: { freebind: [SOL_IPV6, 78], pktinfo: [SOL_IPV6, 49], tos: [SOL_IPV6, 67], ttl: [SOL_IPV6, 16] },
} as const;

const namesOf = (family: number) => (family === AF_INET ? NAMES[AF_INET] : NAMES.v6);

export function readIpOptions(fd: number, family: number): IpOptsEntry {
  const n = namesOf(family);
  const int = ([level, name]: readonly [number, number]) => getsockoptInt(fd, level, name);
  return {
    freebind: int(n.freebind) !== 0,
    pktinfo: int(n.pktinfo) !== 0,
    tos: int(n.tos),
    ttl: int(n.ttl),
  };
}

/**
 * Set on a new socket what differs from its defaults: a TTL equal to the system's default stays
 * unset, so it follows that default as the task's did.
 */
export function applyIpOptions(fd: number, family: number, o: IpOptsEntry): void {
  const n = namesOf(family);
  const set = ([level, name]: readonly [number, number], v: number) => setsockopt(fd, level, name, v);
  const int = ([level, name]: readonly [number, number]) => getsockoptInt(fd, level, name);
  if (o.freebind) set(n.freebind, 1);
  if (o.pktinfo) set(n.pktinfo, 1);
  if (o.tos) set(n.tos, o.tos);
  if (o.ttl !== undefined && o.ttl !== int(n.ttl)) set(n.ttl, o.ttl);
}
