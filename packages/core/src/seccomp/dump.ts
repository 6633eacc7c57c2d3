import type { SeccompFilter } from '@criu-ts/images';
import { isSysError, ptraceSeccompGetFilter, ptraceSeccompGetMetadata } from '@criu-ts/sys';

const SECCOMP_MODE_FILTER = 2;

/**
 * seccomp.img: every thread's filter chain, oldest filter first, each later one pointing at
 * the one before (prev), as CRIU lays them out. Threads refer to the newest filter of their
 * chain by its index (thread_core.seccomp_filter).
 */
export class SeccompFilters {
  readonly filters: SeccompFilter[] = [];

  /** Adds a thread's chain; returns the index of its newest filter, or undefined if it has none. */
  addThread(tid: number, mode: number): number | undefined {
    if (mode !== SECCOMP_MODE_FILTER) return undefined;
    // PTRACE_SECCOMP_GET_FILTER counts from the newest filter (0); fetch all, then store oldest first.
    const chain: SeccompFilter[] = [];
    for (let i = 0; ; i++) {
      let filter: Buffer;
      try {
        filter = ptraceSeccompGetFilter(tid, i);
      } catch (err) {
        if (isSysError(err, 'ENOENT')) break;
        throw err;
      }
      chain.push({ filter, flags: Number(ptraceSeccompGetMetadata(tid, i).flags) });
    }
    if (chain.length === 0) return undefined;
    chain.reverse();
    for (const [i, f] of chain.entries()) {
      if (i > 0) f.prev = this.filters.length - 1;
      this.filters.push(f);
    }
    return this.filters.length - 1;
  }
}
