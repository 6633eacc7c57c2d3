// seccomp on restore, per thread and in that thread: strict mode, or the thread's filter chain from
// seccomp.img installed oldest first. Filters would judge criu-ts's own injected calls, were they not
// suspended by PTRACE_O_SUSPEND_SECCOMP while it traces.
import type { SeccompFilter, ThreadCoreEntry } from '@criu-ts/images';
import { SECCOMP_SET_MODE_FILTER, SECCOMP_SET_MODE_STRICT, SYS } from '@criu-ts/sys';
import type { Calls } from '../restore/calls.js';
import { RestoreError } from '../restore/errors.js';
import type { Injector } from '../restore/inject.js';

/** The seccomp chain ending at filter `index`, oldest first. */
function seccompChain(filters: SeccompFilter[], index: number): SeccompFilter[] {
  const chain: SeccompFilter[] = [];
  const seen = new Set<number>();
  for (let i: number | undefined = index; i !== undefined; i = filters[i]?.prev) {
    if (seen.has(i) || !filters[i]) throw new RestoreError(`seccomp.img: broken filter chain at ${i}`);
    seen.add(i);
    chain.push(filters[i] as SeccompFilter);
  }
  return chain.reverse();
}

/** The thread's seccomp mode and filters (`filters`: all of seccomp.img). */
export function seccompCalls(inj: Injector, th: ThreadCoreEntry, filters: SeccompFilter[], c: Calls): void {
  if (th.seccomp_mode === 2 && th.seccomp_filter !== undefined) {
    for (const f of seccompChain(filters, th.seccomp_filter)) {
      const prog = Buffer.from(f.filter);
      const progAt = inj.put(prog);
      const fprog = Buffer.alloc(16);
      fprog.writeUInt16LE(prog.length / 8, 0);
      fprog.writeBigUInt64LE(progAt, 8);
      // TSYNC (kept on the leader's chain when all threads shared it) installs it in every thread,
      // all created by now; a thread with a chain of its own installs it after the leader.
      const flags = f.flags ?? 0;
      c.add('seccomp(SECCOMP_SET_MODE_FILTER)', [
        SYS.seccomp,
        SECCOMP_SET_MODE_FILTER,
        flags,
        inj.put(fprog),
      ]);
    }
  } else if (th.seccomp_mode === 1) {
    c.add('seccomp(SECCOMP_SET_MODE_STRICT)', [SYS.seccomp, SECCOMP_SET_MODE_STRICT, 0, 0]);
  }
}
