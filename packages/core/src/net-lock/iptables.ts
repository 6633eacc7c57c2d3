// The network lock with iptables (`--network-lock iptables`, CRIU's historical default). criu-ts's
// own chain CRIU-TS in the filter table, jumped to first thing from INPUT and from OUTPUT, holds two
// DROP rules per locked connection, one per direction; loopback packets pass both hooks, a remote
// peer's pass INPUT and ours OUTPUT, so every packet of the connection meets them. A batch of
// connections is one `iptables-restore --noflush` script per family (ip6tables-restore for IPv6),
// which the kernel commits at once: a thousand connections are one call, not a thousand. The chain
// is created with the first lock and removed, jumps included, once its last rule is gone.
//
// Several criu-ts may lock and unlock at the same time: each script is atomic, so creating the chain
// (which fails if it exists) and appending to it (which fails if it does not) are simply tried in
// turn, and removing it fails, changing nothing, while it still holds a rule.
import { execFileSync } from 'node:child_process';
import { DumpError } from '../dump/errors.js';
import type { Connection } from './index.js';
import { LOCK_BYPASS_MARK } from './mark.js';

export const LOCK_CHAIN = 'CRIU-TS';
/** The chain's first rule: segments criu-ts writes itself (a replayed FIN) are not held. */
const BYPASS = `-m mark --mark 0x${LOCK_BYPASS_MARK.toString(16)} -j RETURN`;

type Family = Connection['family'];

const tool = (family: Family) => (family === 'ip' ? 'iptables' : 'ip6tables');

/** Run one script through iptables-restore: all of its lines are committed, or none. */
function commit(family: Family, lines: readonly string[]): void {
  const script = ['*filter', ...lines, 'COMMIT', ''].join('\n');
  execFileSync(`${tool(family)}-restore`, ['--noflush'], {
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

/**
 * The connection's two DROP rules (one per direction), written as `iptables -S` lists them, so that
 * a listing can be compared with them.
 */
function rulesOf(c: Connection): string[] {
  const bits = c.family === 'ip' ? 32 : 128;
  const drop = (src: string, sport: number, dst: string, dport: number) =>
    `-s ${src}/${bits} -d ${dst}/${bits} -p tcp -m tcp --sport ${sport} --dport ${dport} -j DROP`;
  return [
    drop(c.local, c.localPort, c.remote, c.remotePort),
    drop(c.remote, c.remotePort, c.local, c.localPort),
  ];
}

const rulesOfAll = (cs: readonly Connection[]) => cs.flatMap(rulesOf);

/** The batch split by family: IPv4 and IPv6 rules live in separate tables. */
function byFamily(cs: readonly Connection[]): Array<[Family, Connection[]]> {
  const out: Array<[Family, Connection[]]> = [];
  for (const family of ['ip', 'ip6'] as const) {
    const group = cs.filter((c) => c.family === family);
    if (group.length) out.push([family, group]);
  }
  return out;
}

/** What another criu-ts, creating or removing the chain at the same time, makes an attempt fail with. */
const CHAIN_RACE = /Chain already exists|No chain\/target\/match by that name/;

/** The rules appended to the chain, made first if need be (tried both ways: see the file comment). */
function lockFamily(family: Family, cs: readonly Connection[]): void {
  const append = rulesOfAll(cs).map((r) => `-A ${LOCK_CHAIN} ${r}`);
  const create = [
    `-N ${LOCK_CHAIN}`,
    `-A ${LOCK_CHAIN} ${BYPASS}`,
    `-I INPUT -j ${LOCK_CHAIN}`,
    `-I OUTPUT -j ${LOCK_CHAIN}`,
  ];
  let why = '';
  for (let round = 0; round < 3; round++) {
    for (const script of [[...create, ...append], append]) {
      try {
        commit(family, script);
        return;
      } catch (e) {
        why = reason(e);
        if (!CHAIN_RACE.test(why)) throw new Error(why); // not a race: trying again would not help
      }
    }
  }
  throw new Error(why);
}

/**
 * Lock connections: one iptables-restore call per family for the whole batch. If the second family
 * fails, the first is unlocked again before the error is thrown.
 */
export function iptablesLock(cs: readonly Connection[]): void {
  const done: Connection[] = [];
  for (const [family, group] of byFamily(cs)) {
    try {
      lockFamily(family, group);
    } catch (e) {
      iptablesUnlock(done);
      throw new DumpError(
        `network lock of ${cs.length} TCP connections: ${tool(family)}-restore failed: ${(e as Error).message}`,
      );
    }
    done.push(...group);
  }
}

/** The chain's rules as `iptables -S` lists them; none when there is no chain. */
function chainRules(family: Family): string[] {
  let text: string;
  try {
    text = execFileSync(tool(family), ['-S', LOCK_CHAIN], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch {
    return [];
  }
  const prefix = `-A ${LOCK_CHAIN} `;
  return text
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length));
}

/**
 * Delete the connections' rules in one call. If some are missing (never locked, or unlocked already)
 * that call changes nothing: then the chain is read and only the rules it holds are deleted.
 */
function unlockFamily(family: Family, cs: readonly Connection[]): void {
  const ours = rulesOfAll(cs);
  const remove = (rules: readonly string[]) =>
    commit(
      family,
      rules.map((r) => `-D ${LOCK_CHAIN} ${r}`),
    );
  try {
    remove(ours);
  } catch {
    const present = chainRules(family);
    const held = ours.filter((r) => present.includes(r));
    try {
      if (held.length) remove(held);
    } catch {
      // unlocked meanwhile by someone else
    }
  }
  removeChainIfEmpty(family);
}

/**
 * The chain, its bypass rule and its two jumps go in one commit, which fails (changing nothing) if a
 * connection's rule is left.
 */
function removeChainIfEmpty(family: Family): void {
  try {
    commit(family, [
      `-D ${LOCK_CHAIN} ${BYPASS}`,
      `-D INPUT -j ${LOCK_CHAIN}`,
      `-D OUTPUT -j ${LOCK_CHAIN}`,
      `-X ${LOCK_CHAIN}`,
    ]);
  } catch {
    // other connections are still locked, or there is no chain
  }
}

/** Unlock connections: one call per family (plus one to remove the chain once empty); never throws. */
export function iptablesUnlock(cs: readonly Connection[]): void {
  for (const [family, group] of byFamily(cs)) unlockFamily(family, group);
}
