// Resource limits at dump: read by the task itself (prlimit64 on itself, in the injected batch of
// dump/remote-state.ts), since prlimit64() on a task with other ids needs CAP_SYS_RESOURCE.
import { RLIM_NLIMITS, SYS } from '@criu-ts/sys';

/** struct rlimit64: cur, max. */
export const RLIMIT_SIZE = 16;

/** The calls that read every limit into the task's memory at `at(offset)` (RLIMIT_SIZE each). */
export function rlimitReadCalls(at: (off: number) => bigint): Array<[number, ...(number | bigint)[]]> {
  return Array.from({ length: RLIM_NLIMITS }, (_, res) => [SYS.prlimit64, 0, res, 0, at(res * RLIMIT_SIZE)]);
}

/** The limits read back from `out` at offset `from`. */
export function rlimitsFrom(out: Buffer, from: number): Array<{ cur: bigint; max: bigint }> {
  return Array.from({ length: RLIM_NLIMITS }, (_, i) => ({
    cur: out.readBigUInt64LE(from + i * RLIMIT_SIZE),
    max: out.readBigUInt64LE(from + i * RLIMIT_SIZE + 8),
  }));
}
