import type { DumpStatsEntry } from '@criu-ts/images';
import { irmapResolveNs } from '../files/irmap.js';

/** Microseconds since `from` (process.hrtime.bigint() values). */
const us = (from: bigint, to: bigint) => Number((to - from) / 1000n);

/** Times and page counts of one dump, as stats-dump records them. */
export class DumpStats {
  readonly start = process.hrtime.bigint();
  /** irmap's time so far, when the dump started: the dump's share is what comes after. */
  private readonly irmapAtStart = irmapResolveNs();
  frozenAt = this.start;
  memdumpStart = this.start;
  memdumpEnd = this.start;
  memwriteEnd = this.start;
  pagesScanned = 0;
  pagesWritten = 0;
  /** Incremental dumps: pages left to the parent images (PE_PARENT). */
  pagesSkippedParent = 0;
  /** Pages of shared memory objects (shmem/): all of each object, and the ones written. */
  shpagesScanned = 0;
  shpagesWritten = 0;

  entry(end: bigint): DumpStatsEntry {
    return {
      freezing_time: us(this.start, this.frozenAt),
      frozen_time: us(this.frozenAt, end),
      memdump_time: us(this.memdumpStart, this.memdumpEnd),
      memwrite_time: us(this.memdumpStart, this.memwriteEnd),
      // as CRIU writes it: always, 0 when no path was looked for (files/irmap.ts)
      irmap_resolve: us(this.irmapAtStart, irmapResolveNs()),
      pages_scanned: BigInt(this.pagesScanned),
      pages_skipped_parent: BigInt(this.pagesSkippedParent),
      pages_written: BigInt(this.pagesWritten),
      pages_lazy: 0n,
      ...(this.shpagesScanned
        ? {
            shpages_scanned: BigInt(this.shpagesScanned),
            shpages_skipped_parent: BigInt(this.pagesSkippedParent),
            shpages_written: BigInt(this.shpagesWritten),
          }
        : {}),
    };
  }
}
