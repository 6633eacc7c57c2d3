// The network lock with nftables (`--network-lock nftables`, criu-ts's default; see index.ts for
// what the lock is for). One nftables table, `inet criu_ts`, with a chain on the input hook
// (loopback traffic passes it too) dropping what matches two sets of locked 4-tuples (IPv4, IPv6);
// a connection is locked by adding both of its directions to the set, and unlocked by deleting
// them once it is back. Needs `nft` (Debian's nftables package). iptables.ts does the same with
// iptables rules.
import { execFileSync } from 'node:child_process';
import { DumpError } from '../dump/errors.js';
import type { Connection } from './index.js';
import { LOCK_BYPASS_MARK } from './mark.js';

export const LOCK_TABLE = 'criu_ts';
const setOf = (c: Connection) => (c.family === 'ip' ? 'lock4' : 'lock6');

function nft(script: string): void {
  execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

/** The table, its sets and its two rules, made again as they are (flushing the chain keeps the sets). */
const SETUP = [
  `add table inet ${LOCK_TABLE}`,
  `add chain inet ${LOCK_TABLE} input { type filter hook input priority -300; policy accept; }`,
  `add set inet ${LOCK_TABLE} lock4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }`,
  `add set inet ${LOCK_TABLE} lock6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }`,
  `flush chain inet ${LOCK_TABLE} input`,
  `add rule inet ${LOCK_TABLE} input meta mark 0x${LOCK_BYPASS_MARK.toString(16)} accept`,
  `add rule inet ${LOCK_TABLE} input ip saddr . tcp sport . ip daddr . tcp dport @lock4 drop`,
  `add rule inet ${LOCK_TABLE} input ip6 saddr . tcp sport . ip6 daddr . tcp dport @lock6 drop`,
];

/** Both directions of a connection, as set elements. */
const elements = (c: Connection) =>
  `{ ${c.local} . ${c.localPort} . ${c.remote} . ${c.remotePort}, ${c.remote} . ${c.remotePort} . ${c.local} . ${c.localPort} }`;

/**
 * Lock connections, all in one nft transaction: each one costs the kernel a netlink commit of about
 * 0.3 s on this kind of machine, so a tree's thousand connections must not be a thousand calls.
 */
export function lockConnections(cs: readonly Connection[]): void {
  if (cs.length === 0) return;
  try {
    nft([...SETUP, ...cs.map((c) => `add element inet ${LOCK_TABLE} ${setOf(c)} ${elements(c)}`)].join('\n'));
  } catch (e) {
    const why = (e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message;
    throw new DumpError(`network lock of ${cs.length} TCP connections: nft failed: ${why}`);
  }
}

/** Unlock connections, in one transaction; one that is not locked is skipped (never an error). */
export function unlockConnections(cs: readonly Connection[]): void {
  if (cs.length === 0) return;
  try {
    nft(cs.map((c) => `delete element inet ${LOCK_TABLE} ${setOf(c)} ${elements(c)}`).join('\n'));
  } catch {
    // some were not locked (--network-lock skip at dump, or already unlocked): one by one
    for (const c of cs) {
      try {
        nft(`delete element inet ${LOCK_TABLE} ${setOf(c)} ${elements(c)}`);
      } catch {
        // not locked
      }
    }
  }
}
