// rseq at dump: the thread's registered restartable-sequences area, as ptrace reports it.
import type { RseqEntry } from '@criu-ts/images';
import { ptraceGetRseqConfiguration } from '@criu-ts/sys';

/** The thread's rseq registration, or undefined when it has none. */
export function rseqOf(tid: number): RseqEntry | undefined {
  const c = ptraceGetRseqConfiguration(tid);
  if (c.rseqAbiPointer === 0n) return undefined;
  return { rseq_abi_pointer: c.rseqAbiPointer, rseq_abi_size: c.rseqAbiSize, signature: c.signature };
}
