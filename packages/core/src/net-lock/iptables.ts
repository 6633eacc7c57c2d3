// The network lock with iptables (`--network-lock iptables`, CRIU's default), made as CRIU 4.2 makes it
// (netfilter.c), so that either tool's restore lifts the other's lock: two DROP rules per connection put
// first in the filter table's built-in chains, one in INPUT for what the peer sends, one in OUTPUT for
// what this end sends, both skipping packets marked SOCCR_MARK (segments the restoring tool writes
// itself, a replayed FIN); loopback packets pass both hooks. A batch of connections is one
// `iptables-restore --noflush` script per family (ip6tables-restore for IPv6), which the kernel commits
// at once: a thousand connections are one call, not a thousand `iptables -I`.
//
// criu-ts's images from before this locked in a chain of its own, CRIU-TS, jumped to from INPUT and
// OUTPUT: lifting a lock also deletes their rules there, and the chain once only its bypass rule is left.
//
// Several dumps and restores may lock and unlock at the same time: each script is atomic, and an unlock
// deletes what a listing shows, listing again if someone else changed the table in between.
import { createRequire } from 'node:module';
import { DumpError } from '../dump/errors.js';
import type { Connection } from './index.js';
import { LOCK_BYPASS_MARK } from './mark.js';

// node:child_process (with net, stream and dgram beneath it) is loaded when first needed: most runs
// start no program.
const childProcess = () =>
  createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');

/** criu-ts's chain before it locked as CRIU does. */
export const LEGACY_CHAIN = 'CRIU-TS';
const MARK = `0x${LOCK_BYPASS_MARK.toString(16)}`;
/** The legacy chain's first rule: marked segments pass. */
const LEGACY_BYPASS = `-m mark --mark ${MARK} -j RETURN`;

type Family = Connection['family'];

const tool = (family: Family) => (family === 'ip' ? 'iptables' : 'ip6tables');

/** Run one script through iptables-restore: all of its lines are committed, or none. */
function commit(family: Family, lines: readonly string[]): void {
  const script = ['*filter', ...lines, 'COMMIT', ''].join('\n');
  childProcess().execFileSync(`${tool(family)}-restore`, ['--noflush'], {
    input: script,
    stdio: ['pipe', 'ignore', 'pipe'],
  });
}

/** What went wrong, in one line. */
function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
  if (err.code === 'ENOENT') return 'not found (Debian: apt-get install iptables)';
  const text = err.stderr?.toString().trim().replace(/\s+/g, ' ');
  return text || err.message;
}

/** A DROP rule for packets from src:sport to dst:dport, as `iptables -S` lists CRIU's. */
function dropRule(c: Connection, src: string, sport: number, dst: string, dport: number): string {
  const bits = c.family === 'ip' ? 32 : 128;
  return `-s ${src}/${bits} -d ${dst}/${bits} -p tcp -m mark ! --mark ${MARK} -m tcp --sport ${sport} --dport ${dport} -j DROP`;
}

/** The connection's two rules, as `-A CHAIN spec` (what `iptables -S` prints). */
function rulesOf(c: Connection): string[] {
  return [
    `-A INPUT ${dropRule(c, c.remote, c.remotePort, c.local, c.localPort)}`,
    `-A OUTPUT ${dropRule(c, c.local, c.localPort, c.remote, c.remotePort)}`,
  ];
}

/** The rules criu-ts's older images put in the CRIU-TS chain for the connection. */
function legacyRulesOf(c: Connection): string[] {
  const bits = c.family === 'ip' ? 32 : 128;
  const drop = (src: string, sport: number, dst: string, dport: number) =>
    `-A ${LEGACY_CHAIN} -s ${src}/${bits} -d ${dst}/${bits} -p tcp -m tcp --sport ${sport} --dport ${dport} -j DROP`;
  return [
    drop(c.local, c.localPort, c.remote, c.remotePort),
    drop(c.remote, c.remotePort, c.local, c.localPort),
  ];
}

/** The batch split by family: IPv4 and IPv6 rules live in separate tables. */
function byFamily(cs: readonly Connection[]): Array<[Family, Connection[]]> {
  const out: Array<[Family, Connection[]]> = [];
  for (const family of ['ip', 'ip6'] as const) {
    const group = cs.filter((c) => c.family === family);
    if (group.length) out.push([family, group]);
  }
  return out;
}

/**
 * Lock connections: one iptables-restore call per family for the whole batch, each rule inserted first
 * in its chain (CRIU's `iptables -I`). If the second family fails, the first is unlocked again before
 * the error is thrown.
 */
export function iptablesLock(cs: readonly Connection[]): void {
  const done: Connection[] = [];
  for (const [family, group] of byFamily(cs)) {
    try {
      commit(
        family,
        group.flatMap(rulesOf).map((r) => r.replace(/^-A /, '-I ')),
      );
    } catch (e) {
      iptablesUnlock(done);
      throw new DumpError(
        `network lock of ${cs.length} TCP connections: ${tool(family)}-restore failed: ${reason(e)}`,
      );
    }
    done.push(...group);
  }
}

/** The commands that delete the connection's rules again, one by one (for the lock's guard). */
export function iptablesUnlockCommands(c: Connection): string[][] {
  return rulesOf(c).map((r) => [tool(c.family), '-w', ...r.replace(/^-A /, '-D ').split(' ')]);
}

/** The filter table's rules as `iptables -S` lists them (-P, -N and -A lines). */
function listing(family: Family): string[] {
  return childProcess()
    .execFileSync(tool(family), ['-w', '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    .split('\n')
    .filter(Boolean);
}

/**
 * What deletes the connections' rules the listing shows: CRIU's in INPUT and OUTPUT, and those of
 * criu-ts's older images in CRIU-TS, with the chain and its jumps once nothing but its bypass is left.
 */
function deletions(have: readonly string[], cs: readonly Connection[]): string[] {
  const present = new Set(have);
  const ours = cs.flatMap((c) => [...rulesOf(c), ...legacyRulesOf(c)]).filter((r) => present.has(r));
  const out = [...new Set(ours)].map((r) => r.replace(/^-A /, '-D '));
  if (present.has(`-N ${LEGACY_CHAIN}`)) {
    const left = have.filter((l) => l.startsWith(`-A ${LEGACY_CHAIN} `) && !ours.includes(l));
    if (left.every((l) => l === `-A ${LEGACY_CHAIN} ${LEGACY_BYPASS}`)) {
      for (const l of left) out.push(l.replace(/^-A /, '-D '));
      for (const hook of ['INPUT', 'OUTPUT'])
        if (present.has(`-A ${hook} -j ${LEGACY_CHAIN}`)) out.push(`-D ${hook} -j ${LEGACY_CHAIN}`);
      out.push(`-X ${LEGACY_CHAIN}`);
    }
  }
  return out;
}

/**
 * Unlock connections, whichever lock holds them (CRIU's rules, criu-ts's older chain): per family, one
 * listing and one commit deleting what is there; a connection that is not locked is skipped. Returns
 * what went wrong, or undefined; never throws.
 */
export function iptablesUnlock(cs: readonly Connection[]): string | undefined {
  let failed: string | undefined;
  for (const [family, group] of byFamily(cs)) {
    for (let round = 0; ; round++) {
      try {
        const lines = deletions(listing(family), group);
        if (lines.length) commit(family, lines);
        break;
      } catch (e) {
        // someone else changed the table between the listing and the commit: list again
        if (round < 2) continue;
        failed = `${tool(family)}: ${reason(e)}`;
        break;
      }
    }
  }
  return failed;
}
