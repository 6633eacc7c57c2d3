// Resource limits on restore, set by the task itself (prlimit64 on itself). A hard limit above criu-ts's
// own would need CAP_SYS_RESOURCE: it is kept at criu-ts's, with a warning.
import type { TaskRlimitsEntry } from '@criu-ts/images';
import { prlimit, RLIM_INFINITY, SYS } from '@criu-ts/sys';
import type { Calls } from '../restore/calls.js';
import type { Injector } from '../restore/inject.js';

const fmtLimit = (v: bigint) => (v === RLIM_INFINITY ? 'unlimited' : String(v));

export function rlimitCalls(
  inj: Injector,
  pid: number,
  rlimits: TaskRlimitsEntry | undefined,
  c: Calls,
  log: (msg: string) => void,
): void {
  for (const [i, l] of (rlimits?.rlimits ?? []).entries()) {
    let cur = BigInt.asUintN(64, l.cur);
    let max = BigInt.asUintN(64, l.max);
    const now = prlimit(pid, i);
    if (max > now.max) {
      // Raising a hard limit needs CAP_SYS_RESOURCE.
      log(`pid ${pid}: rlimit ${i} max ${fmtLimit(max)} above ours (${fmtLimit(now.max)}): kept at ours`);
      max = now.max;
      if (cur > max) cur = max;
    }
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(cur, 0);
    b.writeBigUInt64LE(max, 8);
    c.add(`prlimit64(${i})`, [SYS.prlimit64, 0, i, inj.put(b), 0]);
  }
}
