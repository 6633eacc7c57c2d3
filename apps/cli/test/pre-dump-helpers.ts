// What the pre-dump tests use of the CLI tests' helpers, and a kill that does not mind a pid gone.
import { killAndReap } from '@criu-ts/compel';

export * from './helpers.js';

export function killAndReapSafe(pid: number): void {
  try {
    killAndReap(pid);
  } catch {
    // gone already, or not ours to reap
  }
}
