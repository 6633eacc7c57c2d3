// Registers on restore: each thread's general registers, FPU/xstate and blocked signal mask, loaded last
// (finish in restore/restore.ts), and its TLS descriptors (set_thread_area, in the thread).
//
// The x86 syscall restart: images carry registers that resume as they are (CRIU's, and criu-ts's since
// it folds the restart in at dump: resumableRegs in x86.ts); older criu-ts images still hold -ERESTART*,
// folded here the same way. Loaded at a syscall-exit stop with orig_rax -1, they skip the kernel's own
// restart logic.
import type { CoreEntry, UserDescT } from '@criu-ts/images';
import { ptraceGetXstate, ptraceSetRegs, ptraceSetSigmask, ptraceSetXstate, SYS } from '@criu-ts/sys';
import type { Calls } from '../restore/calls.js';
import { RestoreError } from '../restore/errors.js';
import { rseqAbort } from '../rseq/restore.js';
import { fpregsFromImage, gpregsFromImage, resumableRegs } from './x86.js';

/** Load thread `tid`'s registers, FPU state and signal mask `mask` from its core image. */
export function loadRegisters(tid: number, core: CoreEntry, mask: bigint): void {
  const ti = core.thread_info!;
  const regs = resumableRegs(gpregsFromImage(ti.gpregs));
  if (regs.getSigned('orig_rax') >= 0n) regs.set('orig_rax', -1n);
  const abort = rseqAbort(tid, core.thread_core?.rseq_entry, regs.rip);
  if (abort !== undefined) regs.set('rip', abort);
  try {
    const template = ptraceGetXstate(tid);
    ptraceSetXstate(tid, fpregsFromImage(ti.fpregs, template.length, template));
    ptraceSetRegs(tid, regs);
    ptraceSetSigmask(tid, mask);
  } catch (e) {
    throw new RestoreError(
      `thread ${tid}: the kernel refuses the registers of core-${tid}.img: ${(e as Error).message}`,
    );
  }
}

function userDesc(d: UserDescT): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(d.entry_number >>> 0, 0);
  b.writeUInt32LE(d.base_addr >>> 0, 4);
  b.writeUInt32LE(d.limit >>> 0, 8);
  const bits =
    (d.seg_32bit ? 1 : 0) |
    (((d.contents_h ? 2 : 0) | (d.contents_l ? 1 : 0)) << 1) |
    (d.read_exec_only ? 8 : 0) |
    (d.limit_in_pages ? 16 : 0) |
    (d.seg_not_present ? 32 : 0) |
    (d.usable ? 64 : 0);
  b.writeUInt32LE(bits, 12);
  return b;
}

/** A TLS slot the thread never set reads back as "not present", everything else zero. */
const isEmptyTls = (d: UserDescT) => d.base_addr === 0 && d.limit === 0 && !d.usable && !d.seg_32bit;

/** The thread's TLS descriptors (those it set). */
export function tlsCalls(put: (b: Buffer) => bigint, tls: UserDescT[], c: Calls): void {
  for (const d of tls)
    if (!isEmptyTls(d)) c.add(`set_thread_area(${d.entry_number})`, [SYS.set_thread_area, put(userDesc(d))]);
}
