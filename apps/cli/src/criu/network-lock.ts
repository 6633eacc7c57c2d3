import { NETWORK_LOCK_METHODS, type NetworkLockMethod } from '@criu-ts/core';

/** --network-lock's value, checked: dump locks with it, restore unlocks with it. */
export function networkLockOf(v: string): NetworkLockMethod {
  const known = NETWORK_LOCK_METHODS.find((m) => m === v);
  if (known) return known;
  throw new Error(`--network-lock ${v}: criu-ts knows ${NETWORK_LOCK_METHODS.join(', ')}`);
}
