// The network lock, whichever way it is done (`--network-lock`): while a connection is between its
// dump and its restore, its packets are dropped both ways, so that neither end answers the other with
// a reset. Dump locks a tree's connections in one batch, restore lifts the lock once the tree runs;
// this file picks the method, nft.ts and iptables.ts do the work. Both lock exactly as CRIU 4.2 does
// (same nftables table, same iptables rules, the run id in inventory.img's dump_criu_run_id), so that
// CRIU's restore lifts criu-ts's lock and criu-ts's restore CRIU's; criu-ts's restore also lifts the
// lock of its own older images (nftables table `inet criu_ts`, iptables chain CRIU-TS).

import { DeathGuard } from '@criu-ts/compel';
import { getRandomBytes } from '@criu-ts/sys';
import { iptablesLock, iptablesUnlock, iptablesUnlockCommands } from './iptables.js';
import { criuTableName, deleteTable, lockConnections, unlockLegacy } from './nft.js';

/** One TCP connection, as its own end sees it (addresses as inet_ntop writes them). */
export interface Connection {
  family: 'ip' | 'ip6';
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
}

/** CRIU's methods; `skip` leaves locking to the caller. */
export type NetworkLockMethod = 'iptables' | 'nftables' | 'skip';

/**
 * In the order CRIU numbers them in inventory.img's network_lock_method (iptables 0, nftables 1,
 * skip 2; the RPC's criu_network_lock_method counts from 1 instead).
 */
export const NETWORK_LOCK_METHODS: readonly NetworkLockMethod[] = ['iptables', 'nftables', 'skip'];

/**
 * The lock of one dump: what it locked is lifted by restore, or by `release` if the tree goes on. From
 * its first connection until it is released or kept, a guard (compel's DeathGuard) lifts it if criu-ts
 * dies and leaves the tree running.
 */
export interface DumpNetworkLock {
  /** Drop every packet of these connections, both ways, until the restore. Throws a DumpError. */
  lock(cs: readonly Connection[]): void;
  /** Let every connection this dump locked through again (a failed dump, -R, -s); never throws. */
  release(): void;
  /** The tree was killed: the lock stays for the restore (the guard goes). */
  keep(): void;
}

/** A new run id (CRIU's criu_run_id): a random UUID, in the form uuid_unparse writes. */
export function newRunId(): string {
  const b = getRandomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4: random
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The lock of a dump whose run id is `runId` (written to inventory.img as dump_criu_run_id): for
 * nftables it names the table, as in CRIU. `pids` are the tree's tasks, which the guard looks at.
 */
export function dumpNetworkLock(
  method: NetworkLockMethod,
  runId: string,
  pids: Iterable<number>,
): DumpNetworkLock {
  const locked: Connection[] = [];
  const table = criuTableName(runId);
  let guard: DeathGuard | undefined;
  return {
    lock(cs) {
      if (method === 'skip' || cs.length === 0) return;
      const wire = cs.map(onTheWire);
      if (!guard) {
        guard = new DeathGuard('network lock', { whileRunning: pids });
        if (method === 'nftables') guard.undoWith(['nft', 'delete', 'table', 'inet', table]);
      }
      if (method === 'iptables')
        for (const c of wire) for (const argv of iptablesUnlockCommands(c)) guard.undoWith(argv);
      if (method === 'nftables') lockConnections(table, wire);
      else iptablesLock(wire);
      locked.push(...wire);
    },
    release() {
      if (locked.length > 0) {
        if (method === 'nftables') deleteTable(table);
        else if (method === 'iptables') iptablesUnlock(locked);
        locked.length = 0;
      }
      guard?.disarm();
    },
    keep() {
      guard?.disarm();
    },
  };
}

/** How the images' dump locked: inventory.img's method and run id, and the root pid (older CRIU). */
export interface ImagesLock {
  method: NetworkLockMethod;
  /** dump_criu_run_id; absent in images of older CRIU, and of criu-ts before it locked as CRIU does. */
  runId?: string;
  rootPid: number;
}

/**
 * Lift the lock the images' dump put on the connections `cs` (restored in repair mode), whichever tool
 * made it; a connection that is not locked is skipped. nftables: the dump's table goes whole, as CRIU's
 * restore deletes it (also with no connection: CRIU makes the table at every dump); without a run id,
 * the table CRIU named after the root pid and criu-ts's older shared table. Returns what went wrong
 * (the tree runs already: nothing is undone), or undefined.
 */
export function liftImagesLock(lock: ImagesLock, cs: readonly Connection[]): string | undefined {
  const wire = cs.map(onTheWire);
  if (lock.method === 'iptables') return wire.length ? iptablesUnlock(wire) : undefined;
  if (lock.method !== 'nftables') return undefined;
  if (lock.runId !== undefined) return deleteTable(criuTableName(lock.runId));
  unlockLegacy(wire);
  return deleteTable(criuTableName(String(lock.rootPid)));
}

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/;

/**
 * An IPv6 socket talking to an IPv4 peer (a dual-stack server's accepted connection) names both ends
 * `::ffff:a.b.c.d`, but its packets are IPv4: the lock must match those.
 */
function onTheWire(c: Connection): Connection {
  const local = V4_MAPPED.exec(c.local)?.[1];
  const remote = V4_MAPPED.exec(c.remote)?.[1];
  if (c.family !== 'ip6' || !local || !remote) return c;
  return { ...c, family: 'ip', local, remote };
}

/** inventory.img's network_lock_method for `m`. */
export const inventoryCodeOf = (m: NetworkLockMethod): number => NETWORK_LOCK_METHODS.indexOf(m);

/** The method an inventory names, or undefined (field missing, or a value CRIU does not know). */
export const methodOfInventoryCode = (code: number | undefined): NetworkLockMethod | undefined =>
  code === undefined ? undefined : NETWORK_LOCK_METHODS[code];
