// The network lock, whichever way it is done (`--network-lock`): while a connection is between its
// dump and its restore, its packets are dropped both ways, so that neither end answers the other with
// a reset. Dump locks a tree's connections in one batch, restore unlocks them in one batch once the
// tree runs; this file picks the method, nft.ts and iptables.ts do the work.

import { iptablesLock, iptablesUnlock } from './iptables.js';
import { lockConnections as nftLock, unlockConnections as nftUnlock } from './nft.js';

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

export interface NetworkLock {
  /** Drop every packet of these connections, both ways, until unlocked. Throws a DumpError. */
  lock(cs: readonly Connection[]): void;
  /** Let them through again. A connection that is not locked is skipped: never an error. */
  unlock(cs: readonly Connection[]): void;
}

const METHODS: Record<NetworkLockMethod, NetworkLock> = {
  nftables: { lock: nftLock, unlock: nftUnlock },
  iptables: { lock: iptablesLock, unlock: iptablesUnlock },
  skip: { lock: () => {}, unlock: () => {} },
};

/** The lock of `method`, fed connections as their packets carry them (see onTheWire). */
export function networkLock(method: NetworkLockMethod): NetworkLock {
  const m = METHODS[method];
  return {
    lock: (cs) => m.lock(cs.map(onTheWire)),
    unlock: (cs) => m.unlock(cs.map(onTheWire)),
  };
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
