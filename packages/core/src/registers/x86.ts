import {
  type UserX86FpregsEntry,
  type UserX86RegsEntry,
  UserX86RegsMode,
  type UserX86XsaveEntry,
} from '@criu-ts/images';
import { ERRNO, type RegName, SYS, TIMER_ABSTIME, UserRegs, xsaveComponent } from '@criu-ts/sys';

/**
 * x86-64 registers between the kernel's layouts and CRIU's core image.
 * General registers: struct user_regs_struct <-> user_x86_regs_entry (same 27 values).
 * FPU state: the XSAVE area of NT_X86_XSTATE (standard, non-compacted format, with the
 * component offsets this CPU reports in CPUID leaf 0xD) <-> user_x86_fpregs_entry and its
 * xsave sub-message.
 */

/** user_x86_regs_entry field for each user_regs_struct register. */
const GP_FIELDS: ReadonlyArray<[keyof UserX86RegsEntry, RegName]> = [
  ['r15', 'r15'],
  ['r14', 'r14'],
  ['r13', 'r13'],
  ['r12', 'r12'],
  ['bp', 'rbp'],
  ['bx', 'rbx'],
  ['r11', 'r11'],
  ['r10', 'r10'],
  ['r9', 'r9'],
  ['r8', 'r8'],
  ['ax', 'rax'],
  ['cx', 'rcx'],
  ['dx', 'rdx'],
  ['si', 'rsi'],
  ['di', 'rdi'],
  ['orig_ax', 'orig_rax'],
  ['ip', 'rip'],
  ['cs', 'cs'],
  ['flags', 'eflags'],
  ['sp', 'rsp'],
  ['ss', 'ss'],
  ['fs_base', 'fs_base'],
  ['gs_base', 'gs_base'],
  ['ds', 'ds'],
  ['es', 'es'],
  ['fs', 'fs'],
  ['gs', 'gs'],
];

export function gpregsToImage(regs: UserRegs): UserX86RegsEntry {
  const out = { mode: UserX86RegsMode.NATIVE } as unknown as Record<string, bigint | number>;
  for (const [field, reg] of GP_FIELDS) out[field] = regs.get(reg);
  return out as unknown as UserX86RegsEntry;
}

export function gpregsFromImage(e: UserX86RegsEntry): UserRegs {
  const regs = new UserRegs();
  for (const [field, reg] of GP_FIELDS) regs.set(reg, e[field] as bigint);
  return regs;
}

// Byte offsets in the XSAVE area (Intel SDM vol. 1, 13.4-13.5; standard format as ptrace gives it).
const FX = {
  cwd: 0,
  swd: 2,
  twd: 4, // abridged tag word, one byte
  fop: 6,
  rip: 8,
  rdp: 16,
  mxcsr: 24,
  mxcsrMask: 28,
  st: 32, // 8 x 16 bytes
  xmm: 160, // 16 x 16 bytes
  pad: 416, // 96 bytes, the last 48 of which are the kernel's fx_sw_bytes
} as const;
const XSAVE_HDR = 512; // xstate_bv u64, xcomp_bv u64, reserved
const LEGACY_SIZE = 512;

/** XSAVE components CRIU stores: [field, feature bit, element size]. */
const COMPONENTS: ReadonlyArray<[keyof UserX86XsaveEntry, number, 4 | 8]> = [
  ['ymmh_space', 2, 4],
  ['bndreg_state', 3, 8],
  ['bndcsr_state', 4, 8],
  ['opmask_reg', 5, 8],
  ['zmm_upper', 6, 8],
  ['hi16_zmm', 7, 8],
  ['pkru', 9, 4],
];

/** Where this CPU keeps each component in the standard XSAVE format (CPUID leaf 0xD). */
interface Placement {
  offset: number;
  size: number;
}
let layout: Map<number, Placement> | undefined;
function placement(bit: number): Placement | undefined {
  if (!layout) {
    layout = new Map();
    for (const [, b] of COMPONENTS) {
      const c = xsaveComponent(b);
      if (c.size > 0) layout.set(b, c);
    }
  }
  return layout.get(bit);
}

function words32(buf: Buffer, off: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => buf.readUInt32LE(off + 4 * i));
}
function words64(buf: Buffer, off: number, count: number): bigint[] {
  return Array.from({ length: count }, (_, i) => buf.readBigUInt64LE(off + 8 * i));
}

/** The FPU image of an XSAVE area; components beyond the area's size are left out. */
export function fpregsToImage(xstate: Buffer): UserX86FpregsEntry {
  const fp: UserX86FpregsEntry = {
    cwd: xstate.readUInt16LE(FX.cwd),
    swd: xstate.readUInt16LE(FX.swd),
    twd: xstate.readUInt8(FX.twd),
    fop: xstate.readUInt16LE(FX.fop),
    rip: xstate.readBigUInt64LE(FX.rip),
    rdp: xstate.readBigUInt64LE(FX.rdp),
    mxcsr: xstate.readUInt32LE(FX.mxcsr),
    mxcsr_mask: xstate.readUInt32LE(FX.mxcsrMask),
    st_space: words32(xstate, FX.st, 32),
    xmm_space: words32(xstate, FX.xmm, 64),
  };
  if (xstate.length <= LEGACY_SIZE) return fp;
  const xsave: UserX86XsaveEntry = { xstate_bv: xstate.readBigUInt64LE(XSAVE_HDR) };
  for (const [field, bit, elem] of COMPONENTS) {
    const p = placement(bit);
    if (!p || p.offset + p.size > xstate.length) continue;
    (xsave as unknown as Record<string, unknown>)[field] =
      elem === 4 ? words32(xstate, p.offset, p.size / 4) : words64(xstate, p.offset, p.size / 8);
  }
  fp.xsave = xsave;
  return fp;
}

/**
 * An XSAVE area of `size` bytes (the size this CPU's kernel expects) holding the image's
 * FPU state. Starts from `template` (the restored thread's own area, so fields CRIU does not
 * store keep valid values) when given.
 */
export function fpregsFromImage(fp: UserX86FpregsEntry, size: number, template?: Buffer): Buffer {
  const out = Buffer.alloc(size);
  template?.copy(out, 0, 0, Math.min(size, template.length));
  out.writeUInt16LE(fp.cwd, FX.cwd);
  out.writeUInt16LE(fp.swd, FX.swd);
  out.writeUInt8(fp.twd & 0xff, FX.twd);
  out.writeUInt16LE(fp.fop, FX.fop);
  out.writeBigUInt64LE(fp.rip, FX.rip);
  out.writeBigUInt64LE(fp.rdp, FX.rdp);
  out.writeUInt32LE(fp.mxcsr, FX.mxcsr);
  out.writeUInt32LE(fp.mxcsr_mask, FX.mxcsrMask);
  for (const [i, w] of (fp.st_space ?? []).entries()) out.writeUInt32LE(w, FX.st + 4 * i);
  for (const [i, w] of (fp.xmm_space ?? []).entries()) out.writeUInt32LE(w, FX.xmm + 4 * i);
  const xsave = fp.xsave;
  if (!xsave || size <= LEGACY_SIZE) return out;
  let bv = xsave.xstate_bv;
  for (const [field, bit, elem] of COMPONENTS) {
    const words = (xsave as unknown as Record<string, Array<number | bigint> | undefined>)[field];
    const p = placement(bit);
    const off = p?.offset ?? 0;
    if (!p || !words?.length || p.offset + p.size > size || words.length * elem > p.size) {
      bv &= ~(1n << BigInt(bit)); // not stored, or this CPU has no room for it: init state
      continue;
    }
    for (const [i, w] of words.entries()) {
      if (elem === 4) out.writeUInt32LE(Number(w), off + 4 * i);
      else out.writeBigUInt64LE(BigInt(w), off + 8 * i);
    }
  }
  out.writeBigUInt64LE(bv, XSAVE_HDR);
  out.writeBigUInt64LE(0n, XSAVE_HDR + 8); // standard (non-compacted) format
  return out;
}

// Kernel-internal results of a syscall interrupted by a stop or a signal (include/linux/errno.h).
const ERESTARTSYS = -BigInt(ERRNO.ERESTARTSYS!);
const ERESTARTNOINTR = -BigInt(ERRNO.ERESTARTNOINTR!);
const ERESTARTNOHAND = -BigInt(ERRNO.ERESTARTNOHAND!);
const ERESTART_RESTARTBLOCK = -BigInt(ERRNO.ERESTART_RESTARTBLOCK!);
const EINTR = -BigInt(ERRNO.EINTR!);
const NR_NANOSLEEP = BigInt(SYS.nanosleep);
const NR_RESTART_SYSCALL = BigInt(SYS.restart_syscall);
const NR_CLOCK_NANOSLEEP = BigInt(SYS.clock_nanosleep);
const TIMER_ABSTIME_BIT = BigInt(TIMER_ABSTIME);
/** Length of the `syscall` instruction (0f 05). */
const SYSCALL_INSN = 2n;

/**
 * The registers of a thread stopped inside a syscall, made to resume as they are, as CRIU stores them:
 * whoever loads them (CRIU's sigreturn, criu-ts at a syscall-exit stop) bypasses the kernel's restart
 * logic, so the restart is folded in here. A syscall the kernel would restart (rax = -ERESTARTSYS,
 * -ERESTARTNOINTR, -ERESTARTNOHAND, and -ERESTART_RESTARTBLOCK of a syscall with a restart block) is
 * run again: rip back onto its `syscall` instruction, rax = its number. A relative nanosleep or
 * clock_nanosleep had already written the time it had left into `rem`: run again, it sleeps only that.
 * restart_syscall itself cannot be carried over (its restart block stays in the dumping kernel) and
 * returns -EINTR, as CRIU's images have it. Other registers (not in a syscall, or a syscall that has
 * its result) are returned unchanged. A copy: `regs` is not modified.
 */
export function resumableRegs(regs: UserRegs): UserRegs {
  const out = regs.clone();
  const nr = regs.getSigned('orig_rax');
  const rax = regs.getSigned('rax');
  if (nr < 0n) return out;
  if (
    rax !== ERESTARTSYS &&
    rax !== ERESTARTNOINTR &&
    rax !== ERESTARTNOHAND &&
    rax !== ERESTART_RESTARTBLOCK
  )
    return out;
  if (nr === NR_RESTART_SYSCALL) return out.set('rax', EINTR);
  out.set('rax', nr).set('rip', regs.get('rip') - SYSCALL_INSN);
  if (rax === ERESTART_RESTARTBLOCK) sleepOnlyWhatIsLeft(out, nr);
  return out;
}

/**
 * A relative nanosleep interrupted with ERESTART_RESTARTBLOCK has written what it had left into its
 * `rem` argument (the kernel does so before it returns that code, when there is a `rem`): the request
 * becomes `rem`. An absolute sleep comes back with ERESTARTNOHAND and restarts as it was; without `rem`
 * there is nothing better than the whole request again.
 */
function sleepOnlyWhatIsLeft(regs: UserRegs, nr: bigint): void {
  if (nr === NR_NANOSLEEP) {
    const rem = regs.get('rsi');
    if (rem !== 0n) regs.set('rdi', rem);
  } else if (nr === NR_CLOCK_NANOSLEEP) {
    const rem = regs.get('r10');
    if ((regs.get('rsi') & TIMER_ABSTIME_BIT) === 0n && rem !== 0n) regs.set('rdx', rem);
  }
}
