import type { TaskRlimitsEntry } from '@criu-ts/images';
import { prlimit } from '@criu-ts/sys';

/** RLIM_NLIMITS on Linux: RLIMIT_CPU (0) .. RLIMIT_RTTIME (15). */
const RLIM_NLIMITS = 16;

/** Every resource limit, read from outside with prlimit64(pid). */
export function dumpRlimits(pid: number): TaskRlimitsEntry {
  const rlimits = [];
  for (let r = 0; r < RLIM_NLIMITS; r++) rlimits.push(prlimit(pid, r));
  return { rlimits };
}
