import type { SeccompFilter } from '@criu-ts/images';
import {
  isSysError,
  ptraceSeccompGetFilter,
  ptraceSeccompGetMetadata,
  SECCOMP_FILTER_FLAG_TSYNC,
  SECCOMP_MODE_DISABLED,
  SECCOMP_MODE_FILTER,
} from '@criu-ts/sys';

/**
 * seccomp.img: every thread's filter chain, oldest filter first, each later one pointing at
 * the one before (prev), as CRIU lays them out. Threads refer to the newest filter of their
 * chain by its index (thread_core.seccomp_filter).
 */
export class SeccompFilters {
  readonly filters: SeccompFilter[] = [];

  /**
   * Adds the chains of a task's threads (leader first); returns each thread's seccomp mode and the
   * index of its newest filter, as the images keep them. When every thread has the same chain (the
   * kernel cannot tell whether SECCOMP_FILTER_FLAG_TSYNC shared it or each thread installed the same),
   * only the leader keeps it, marked TSYNC, and the others are recorded without a filter: restore
   * then installs it once for all threads, and they share it again, so that a later TSYNC in the task
   * works (CRIU 4.2 writes the same images).
   */
  addTask(threads: Array<{ tid: number; mode: number }>): Array<{ mode: number; filter?: number }> {
    const chains = threads.map((t) => (t.mode === SECCOMP_MODE_FILTER ? this.chainOf(t.tid) : []));
    const leader = chains[0] ?? [];
    const same = (c: SeccompFilter[]) =>
      c.length === leader.length &&
      c.every((f, i) => Buffer.from(f.filter).equals(Buffer.from(leader[i]!.filter)));
    if (
      threads[0]?.mode === SECCOMP_MODE_FILTER &&
      threads.every((t, i) => t.mode === SECCOMP_MODE_FILTER && same(chains[i]!))
    ) {
      for (const f of leader) f.flags = (f.flags ?? 0) | SECCOMP_FILTER_FLAG_TSYNC;
      const index = this.push(leader);
      return threads.map((_, i) =>
        i === 0
          ? { mode: SECCOMP_MODE_FILTER, ...(index !== undefined ? { filter: index } : {}) }
          : {
              mode: SECCOMP_MODE_DISABLED,
            },
      );
    }
    return threads.map((t, i) => {
      const index = this.push(chains[i]!);
      return { mode: t.mode, ...(index !== undefined ? { filter: index } : {}) };
    });
  }

  /** A thread's filters, oldest first. */
  private chainOf(tid: number): SeccompFilter[] {
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
    return chain.reverse();
  }

  /** Stores a chain (oldest first); returns the index of its newest filter. */
  private push(chain: SeccompFilter[]): number | undefined {
    if (chain.length === 0) return undefined;
    for (const [i, f] of chain.entries()) {
      if (i > 0) f.prev = this.filters.length - 1;
      this.filters.push(f);
    }
    return this.filters.length - 1;
  }
}
