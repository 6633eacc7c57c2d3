// DESIGN: injected code that survives the death of its tracer.
//
// When a ptrace tracer dies (SIGKILL of criu-ts), the kernel detaches every tracee and lets it run on from
// where it is, with the registers and memory it has at that moment; nothing more. (PTRACE_O_EXITKILL
// would kill them instead; a group stop in effect would stop them, at the price of visible SIGCHLD and
// SIGCONT.) So compel never leaves a thread in a state that is harmful to run from:
//
//  - No int3. The code ends in a *marker syscall* instead, harmless when untraced (an int3 without a
//    tracer raises SIGTRAP, whose default action kills the task: that was the threaded workload's
//    death). Either tgkill() of a signal the task ignores: traced, a signal-delivery-stop; untraced,
//    dropped by the kernel as it is sent. Or, when the task ignores no signal it leaves unblocked,
//    getpid(), caught at its entry by resuming injected code with PTRACE_SYSCALL.
//  - After the marker comes an *epilogue* that puts the thread's own registers back by itself and jumps
//    to where the thread was: `lea rsp, [rip+block]`, 15 pops, popfq, pop rsp, `jmp [rip+slot]`. The
//    block holds the registers the thread would resume with (restart of an interrupted syscall folded
//    in, as the kernel would do it: rip - 2 and rax = orig_rax, or restart_syscall). It is written into
//    the task with the code, before the thread's registers ever point at the code.
//  - Between runs the thread stays stopped after the marker, before its way out runs: in the marker
//    signal's delivery stop, or parked in a PTRACE_INTERRUPT stop on the way out of getpid. Loading
//    registers there is safe: a new batch, or at the end the thread's own registers, which the kernel's
//    restart logic then handles as at the seize.
//  - The syscalls that create and remove compel's code page (mmap, mprotect, munmap) run from a *text
//    patch*: `syscall`, an unmap step, the epilogue and the register block, written over bytes of the
//    task's text that are never executed: the zero padding at the end of an executable file mapping
//    (code-address.ts). The patch stays there while the parasite lives. The way out of the code page
//    (after the marker) jumps to the patch's unmap step with rdi = the scratch area: munmap, then the
//    epilogue. After the mmap the unmap step takes the area from rax, so even a tracer killed right
//    after the mmap leaves no mapping behind.
//
// So at every moment a thread is either at its own registers (it was stopped, or is parked with them
// again) or in compel's code, whose way out without a tracer unmaps the scratch area and goes back to
// its own registers. What the tracer's death still leaves: the patched padding (never executed; the page
// stays a private copy), and signals that arrived meanwhile and were held back by the tracer (lost).

import {
  ERRNO,
  PAGE_SIZE,
  SIGCHLD,
  SIGCONT,
  SIGKILL,
  SIGSTOP,
  SIGURG,
  SIGWINCH,
  SYS,
  type UserRegs,
} from '@criu-ts/sys';
import { BATCH_CODE } from './batch-code.js';

/** Registers the epilogue pops, in its order; then eflags, rsp and rip. */
const POPPED = [
  'r15',
  'r14',
  'r13',
  'r12',
  'r11',
  'r10',
  'r9',
  'r8',
  'rbp',
  'rdi',
  'rsi',
  'rdx',
  'rcx',
  'rbx',
  'rax',
] as const;
/** Bytes of the register block: POPPED, eflags, rsp, rip. */
export const BLOCK_SIZE = (POPPED.length + 3) * 8;

// biome-ignore format: one instruction per line
const POPS = Buffer.from([
  0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, //  pop r15, r14, r13, r12
  0x41, 0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58, //  pop r11, r10, r9, r8
  0x5d, 0x5f, 0x5e, 0x5a, 0x59, 0x5b, 0x58, //        pop rbp, rdi, rsi, rdx, rcx, rbx, rax
  0x9d, //                                            popfq
  0x5c, //                                            pop rsp
]);
/** Bytes of the epilogue. */
export const EPILOGUE_SIZE = 7 + POPS.length + 6;

/**
 * The epilogue placed at `at` in `buf`, reading the block at `blockAt` (offsets in the same buffer, which
 * is mapped contiguously in the task).
 */
function putEpilogue(buf: Buffer, at: number, blockAt: number): void {
  buf.set([0x48, 0x8d, 0x25], at); // lea rsp, [rip + disp32]
  buf.writeInt32LE(blockAt - (at + 7), at + 3);
  POPS.copy(buf, at + 7);
  const j = at + 7 + POPS.length;
  buf.set([0xff, 0x25], j); // jmp qword ptr [rip + disp32]
  buf.writeInt32LE(blockAt + BLOCK_SIZE - 8 - (j + 6), j + 2);
}

const ERESTARTSYS = -BigInt(ERRNO.ERESTARTSYS!);
const ERESTARTNOINTR = -BigInt(ERRNO.ERESTARTNOINTR!);
const ERESTARTNOHAND = -BigInt(ERRNO.ERESTARTNOHAND!);
const ERESTART_RESTARTBLOCK = -BigInt(ERRNO.ERESTART_RESTARTBLOCK!);
const NR_RESTART_SYSCALL = BigInt(SYS.restart_syscall);

/**
 * The registers a thread stopped with `regs` resumes user code with: a syscall it was interrupted in is
 * restarted (rip back onto the `syscall` instruction, rax = its number), as the kernel does on a resume
 * without a signal handler to run.
 */
export function resumeRegs(regs: UserRegs): UserRegs {
  const r = regs.clone();
  if (r.getSigned('orig_rax') < 0n) return r;
  const err = r.getSigned('rax');
  if (err === ERESTARTSYS || err === ERESTARTNOINTR || err === ERESTARTNOHAND) {
    r.set('rax', r.get('orig_rax')).set('rip', r.rip - 2n);
  } else if (err === ERESTART_RESTARTBLOCK) {
    r.set('rax', NR_RESTART_SYSCALL).set('rip', r.rip - 2n);
  }
  return r;
}

/** The register block the epilogue pops, for a thread that resumes with `regs` (see resumeRegs). */
export function registerBlock(regs: UserRegs): Buffer {
  const r = resumeRegs(regs);
  const b = Buffer.alloc(BLOCK_SIZE);
  for (const [i, name] of POPPED.entries()) b.writeBigUInt64LE(r.get(name), i * 8);
  b.writeBigUInt64LE(r.get('eflags'), POPPED.length * 8);
  b.writeBigUInt64LE(r.rsp, (POPPED.length + 1) * 8);
  b.writeBigUInt64LE(r.rip, (POPPED.length + 2) * 8);
  return b;
}

// ---- the text patch: the syscall, the scratch area's munmap, the epilogue ---------------------------------
//
// It stays in the text padding while a parasite lives, so that the way out of its code page can unmap the
// scratch area (code cannot unmap itself and return) before the epilogue:
//   0x00 TEXT_MMAP_ENTRY  syscall; mov rdi, rax; jmp unmap    (the mmap: unmap what it mapped)
//   0x08 TEXT_ENTRY       syscall; mov rdi, [BASE]            (any other: unmap the scratch area, if any)
//   0x11 unmap            if rdi is an address: munmap(rdi, [SIZE])
//   0x2d                  the epilogue
//   0x58 BASE, 0x60 SIZE  the scratch area (BASE 0 while there is none)
//   0x68                  the register block

export const TEXT_MMAP_ENTRY = 0x00;
export const TEXT_ENTRY = 0x08;
/** Offset of the unmap step, where the code page's way out jumps with rdi = its base. */
export const TEXT_UNMAP = 0x11;
const TEXT_EPILOGUE = 0x2d;
/** Offsets of the BASE and SIZE slots. */
export const TEXT_BASE_SLOT = 0x58;
export const TEXT_SIZE_SLOT = 0x60;
const TEXT_BLOCK = 0x68;
/** Bytes written over the task's text padding. */
export const TEXT_PATCH_SIZE = TEXT_BLOCK + BLOCK_SIZE;

/** The first bytes of every text patch (its code, the same in all), to recognise one left behind. */
export const TEXT_SIGNATURE_SIZE = TEXT_EPILOGUE + EPILOGUE_SIZE;

/** The text patch for a scratch area of `size` bytes (BASE still 0) and a thread's register `block`. */
export function textPatch(block: Buffer, size: number): Buffer {
  const b = Buffer.alloc(TEXT_PATCH_SIZE, 0xcc);
  // biome-ignore format: one instruction per line
  b.set([
    0x0f, 0x05, //                                00: syscall
    0x48, 0x89, 0xc7, //                          02: mov rdi, rax
    0xeb, TEXT_UNMAP - 0x07, //                   05: jmp unmap
    0xcc, //                                      07
    0x0f, 0x05, //                                08: syscall
    0x48, 0x8b, 0x3d, 0, 0, 0, 0, //              0a: mov rdi, [rip + BASE]
    0x48, 0x85, 0xff, //                          11: test rdi, rdi
    0x74, TEXT_EPILOGUE - 0x16, //                14: jz epilogue
    0x48, 0x81, 0xff, 0x01, 0xf0, 0xff, 0xff, //  16: cmp rdi, -4095
    0x73, TEXT_EPILOGUE - 0x1f, //                1d: jae epilogue      (an mmap that failed)
    0x48, 0x8b, 0x35, 0, 0, 0, 0, //              1f: mov rsi, [rip + SIZE]
    0xb8, 0x0b, 0, 0, 0, //                       26: mov eax, 11       munmap
    0x0f, 0x05, //                                2b: syscall
  ], 0);
  b.writeInt32LE(TEXT_BASE_SLOT - 0x11, 0x0d);
  b.writeInt32LE(TEXT_SIZE_SLOT - 0x26, 0x22);
  putEpilogue(b, TEXT_EPILOGUE, TEXT_BLOCK);
  b.writeBigUInt64LE(0n, TEXT_BASE_SLOT);
  b.writeBigUInt64LE(BigInt(size), TEXT_SIZE_SLOT);
  block.copy(b, TEXT_BLOCK);
  return b;
}

// ---- the code page: the batch loop ending in the marker, then the way out --------------------------------

/** Where the loop's `done` and `fail` both go: the marker syscall. */
const MARKER = 0x40;
/** The marker syscall in syscall-stop mode: getpid, which changes nothing. */
export const MARKER_NR = SYS.getpid;
const SYS_TGKILL = SYS.tgkill;
/** rip at the marker's stops (after its `syscall` instruction), relative to the code page. */
export const MARKER_RIP = MARKER + 22;

/**
 * How the tracer catches the end of a run. `signal`: the marker is tgkill(pid, tid, signal) of a signal
 * the task ignores (SIG_IGN, or SIG_DFL of SIGWINCH/SIGURG/SIGCHLD) and the thread does not block:
 * traced, it stops the thread in a signal-delivery-stop (one stop per run, as an int3 did); untraced,
 * the kernel drops it when it is sent. Without such a signal: getpid, caught by resuming with
 * PTRACE_SYSCALL (two stops per syscall of the batch).
 */
export type Marker = { signal: number; pid: number; tid: number } | { signal: undefined };

/**
 * The parasite's code page at `base`: BATCH_CODE whose `done` and `fail` jump to the marker instead of an
 * int3, the marker syscall, then the way out: rdi = base, jump to the text patch's unmap step at
 * `textUnmap` (which then runs the epilogue). Done and fail are told apart by rbx (the terminator or the
 * failing entry); a failed entry's errno is in its result.
 */
export function safeCodePage(base: bigint, textUnmap: bigint, marker: Marker, pageSize = PAGE_SIZE): Buffer {
  const page = Buffer.alloc(pageSize, 0xcc);
  BATCH_CODE.copy(page, 0);
  page[0x2e] = 0x35 - 0x2f; // jae fail -> 0x35
  page.set([0xeb, MARKER - 0x37], 0x35); // 0x35: jmp marker
  const m = MARKER;
  page[m] = 0xb8; // mov eax, imm32
  page.writeUInt32LE(marker.signal === undefined ? MARKER_NR : SYS_TGKILL, m + 1);
  page[m + 5] = 0xbf; // mov edi, imm32
  page.writeUInt32LE(marker.signal === undefined ? 0 : marker.pid, m + 6);
  page[m + 10] = 0xbe; // mov esi, imm32
  page.writeUInt32LE(marker.signal === undefined ? 0 : marker.tid, m + 11);
  page[m + 15] = 0xba; // mov edx, imm32
  page.writeUInt32LE(marker.signal ?? 0, m + 16);
  page.set([0x0f, 0x05], m + 20); // syscall
  page.set([0x48, 0xbf], MARKER_RIP); // mov rdi, imm64
  page.writeBigUInt64LE(base, MARKER_RIP + 2);
  page.set([0x48, 0xb8], MARKER_RIP + 10); // mov rax, imm64
  page.writeBigUInt64LE(textUnmap, MARKER_RIP + 12);
  page.set([0xff, 0xe0], MARKER_RIP + 20); // jmp rax
  return page;
}

/**
 * The signal for a signal marker (see Marker), from the task's ignored and caught sets and the thread's
 * blocked mask; undefined when there is none.
 */
export function markerSignal(sigIgn: bigint, sigCgt: bigint, blocked: bigint): number | undefined {
  const bit = (sig: number) => 1n << BigInt(sig - 1);
  const free = (sig: number) => (blocked & bit(sig)) === 0n;
  for (let sig = 1; sig <= 31; sig++) {
    if (sig === SIGKILL || sig === SIGSTOP || sig === SIGCONT) continue;
    if ((sigIgn & bit(sig)) !== 0n && free(sig)) return sig;
  }
  for (const sig of [SIGWINCH, SIGURG, SIGCHLD])
    if (((sigIgn | sigCgt) & bit(sig)) === 0n && free(sig)) return sig;
  return undefined;
}
