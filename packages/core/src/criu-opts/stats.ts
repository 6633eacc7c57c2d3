// CRIU's --display-stats lines, in its order: the CLI prints them on stdout, the RPC service logs them.
import type { DumpStatsEntry, RestoreStatsEntry } from '@criu-ts/images';

const n = (v: bigint) => `${v} (0x${v.toString(16)})`;

/** The lines of a dump's stats (stats-dump). */
export function dumpStatsLines(s: DumpStatsEntry): string[] {
  return [
    'Displaying dump stats:',
    `Freezing time: ${s.freezing_time} us`,
    `Frozen time: ${s.frozen_time} us`,
    `Memory dump time: ${s.memdump_time} us`,
    `Memory write time: ${s.memwrite_time} us`,
    ...(s.irmap_resolve !== undefined ? [`IRMAP resolve time: ${s.irmap_resolve} us`] : []),
    `Memory pages scanned: ${n(s.pages_scanned)}`,
    `Memory pages skipped from parent: ${n(s.pages_skipped_parent)}`,
    `Memory pages written: ${n(s.pages_written)}`,
    `Lazy memory pages: ${n(s.pages_lazy)}`,
  ];
}

/** The lines of a restore's stats (stats-restore). */
export function restoreStatsLines(s: RestoreStatsEntry): string[] {
  const lines = [
    'Displaying restore stats:',
    `Pages compared: ${n(s.pages_compared)}`,
    `Pages skipped COW: ${n(s.pages_skipped_cow)}`,
  ];
  if (s.pages_restored !== undefined) lines.push(`Pages restored: ${n(s.pages_restored)}`);
  lines.push(`Restore time: ${s.restore_time} us`, `Forking time: ${s.forking_time} us`);
  return lines;
}
