// The network lock with nftables (`--network-lock nftables`, criu-ts's default), made as CRIU 4.2 makes it
// (see index.ts for what the lock is for), so that either tool's restore lifts the other's lock: one
// table per dump, `inet CRIU-<run id>` (the id inventory.img keeps as dump_criu_run_id), with a chain on
// the input hook and one on the output hook (filter priority) that let SOCCR_MARK through and drop what
// matches the sets conns4 / conns6 of locked 4-tuples. A connection is locked by adding both of its
// directions to a set; restore deletes the whole table once the tree runs (CRIU's network_unlock).
//
// criu-ts's images from before this kept every dump's connections in one table, `inet criu_ts` (sets
// lock4 / lock6, one input chain at priority -300): restore deletes their elements from it.
// Needs `nft` (Debian's nftables package).
import { createRequire } from 'node:module';
import { nftTableExists } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import type { Connection } from './index.js';
import { LOCK_BYPASS_MARK } from './mark.js';

// node:child_process (with net, stream and dgram beneath it) is loaded when first needed: most runs
// start no program.
const childProcess = () =>
  createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');

/** criu-ts's table before it locked as CRIU does (images without dump_criu_run_id). */
export const LEGACY_TABLE = 'criu_ts';

/**
 * The table CRIU 4.2 locks with for run id `id`: it prints "inet CRIU-<id>" into a 32-byte buffer, so
 * the name keeps what fits in 31 characters (21 of a 36-character UUID).
 */
export function criuTableName(id: string): string {
  return `inet CRIU-${id}`.slice(0, 31).slice('inet '.length);
}

function nft(script: string): void {
  childProcess().execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

const why = (e: unknown) => (e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message;

const MARK = `0x${LOCK_BYPASS_MARK.toString(16)}`;

/** The table, its sets and its rules, as CRIU makes them; made again as they are (flushing keeps the sets). */
function setup(table: string): string[] {
  const t = `inet ${table}`;
  const rules = (chain: string) => [
    `flush chain ${t} ${chain}`,
    `add rule ${t} ${chain} meta mark ${MARK} accept`,
    `add rule ${t} ${chain} ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop`,
    `add rule ${t} ${chain} ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop`,
  ];
  return [
    `add table ${t}`,
    `add chain ${t} output { type filter hook output priority 0; }`,
    `add chain ${t} input { type filter hook input priority 0; }`,
    `add set ${t} conns4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }`,
    `add set ${t} conns6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }`,
    ...rules('output'),
    ...rules('input'),
  ];
}

/** Both directions of a connection, as set elements. */
const elements = (c: Connection) =>
  `{ ${c.local} . ${c.localPort} . ${c.remote} . ${c.remotePort}, ${c.remote} . ${c.remotePort} . ${c.local} . ${c.localPort} }`;

/**
 * Lock connections in `table`, all in one nft transaction (the table made first if need be): each
 * transaction costs the kernel a netlink commit, so a tree's thousand connections are one call.
 */
export function lockConnections(table: string, cs: readonly Connection[]): void {
  if (cs.length === 0) return;
  const set = (c: Connection) => (c.family === 'ip' ? 'conns4' : 'conns6');
  try {
    nft([...setup(table), ...cs.map((c) => `add element inet ${table} ${set(c)} ${elements(c)}`)].join('\n'));
  } catch (e) {
    throw new DumpError(`network lock of ${cs.length} TCP connections: nft failed: ${why(e)}`);
  }
}

/**
 * Delete a lock table, if it is there (asked over netlink first: most restores have none to delete).
 * Returns what went wrong, or undefined.
 */
export function deleteTable(table: string): string | undefined {
  try {
    if (!nftTableExists('inet', table)) return undefined;
    nft(`delete table inet ${table}`);
    return undefined;
  } catch (e) {
    return `nft delete table inet ${table}: ${why(e)}`;
  }
}

/** Unlock connections of criu-ts's older images (elements of `inet criu_ts`); never an error. */
export function unlockLegacy(cs: readonly Connection[]): void {
  if (cs.length === 0) return;
  try {
    if (!nftTableExists('inet', LEGACY_TABLE)) return;
  } catch {
    return;
  }
  const set = (c: Connection) => (c.family === 'ip' ? 'lock4' : 'lock6');
  const del = (c: Connection) => `delete element inet ${LEGACY_TABLE} ${set(c)} ${elements(c)}`;
  try {
    nft(cs.map(del).join('\n'));
  } catch {
    // some were not locked (or unlocked already): one by one
    for (const c of cs) {
      try {
        nft(del(c));
      } catch {
        // not locked
      }
    }
  }
}
