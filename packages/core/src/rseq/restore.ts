// rseq on restore: each thread registers its area again (in the thread), and a thread stopped inside
// an rseq critical section resumes at the section's abort handler, as the kernel would have sent it.
import type { RseqEntry } from '@criu-ts/images';
import { SYS, vmRead } from '@criu-ts/sys';
import type { Calls } from '../restore/calls.js';

/** The thread's rseq registration, if it had one. */
export function rseqCalls(rs: RseqEntry | undefined, c: Calls): void {
  if (rs && rs.rseq_abi_pointer !== 0n)
    c.add('rseq', [SYS.rseq, rs.rseq_abi_pointer, rs.rseq_abi_size, 0, rs.signature >>> 0]);
}

/** rip inside the thread's rseq critical section: the kernel would abort it; we must, too. */
export function rseqAbort(tid: number, rs: RseqEntry | undefined, rip: bigint): bigint | undefined {
  if (!rs || rs.rseq_abi_pointer === 0n) return undefined;
  try {
    const p = Buffer.alloc(8);
    vmRead(tid, rs.rseq_abi_pointer + 8n, p);
    const cs = p.readBigUInt64LE(0);
    if (cs === 0n) return undefined;
    const d = Buffer.alloc(32);
    vmRead(tid, cs, d);
    const start = d.readBigUInt64LE(8);
    const len = d.readBigUInt64LE(16);
    return rip >= start && rip < start + len ? d.readBigUInt64LE(24) : undefined;
  } catch {
    return undefined;
  }
}
