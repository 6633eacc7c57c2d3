// ptrace(2) for a seizing tracer: SEIZE/INTERRUPT/CONT/LISTEN/DETACH, register sets, signal state,
// syscall info, seccomp filters, TLS descriptors and word-sized peeks/pokes.
//
// Every call is made with the raw syscall, never glibc's ptrace() wrapper: for PEEK* requests the
// wrapper returns the word itself and makes -1 ambiguous, while the raw syscall stores the word at
// *data and returns 0. ptrace belongs to the thread that attached: call these from one thread only.
import {
  NT_PRFPREG,
  NT_PRSTATUS,
  NT_X86_XSTATE,
  PTRACE_CONT,
  PTRACE_DETACH,
  PTRACE_GET_RSEQ_CONFIGURATION,
  PTRACE_GET_SYSCALL_INFO,
  PTRACE_GET_THREAD_AREA,
  PTRACE_GETEVENTMSG,
  PTRACE_GETREGSET,
  PTRACE_GETSIGINFO,
  PTRACE_GETSIGMASK,
  PTRACE_INTERRUPT,
  PTRACE_LISTEN,
  PTRACE_PEEKDATA,
  PTRACE_PEEKSIGINFO,
  PTRACE_PEEKSIGINFO_SHARED,
  PTRACE_PEEKUSR,
  PTRACE_POKEDATA,
  PTRACE_POKEUSR,
  PTRACE_REQUEST_NAMES,
  PTRACE_SECCOMP_GET_FILTER,
  PTRACE_SECCOMP_GET_METADATA,
  PTRACE_SEIZE,
  PTRACE_SETOPTIONS,
  PTRACE_SETREGSET,
  PTRACE_SETSIGINFO,
  PTRACE_SETSIGMASK,
  PTRACE_SINGLESTEP,
  PTRACE_SYSCALL,
  PTRACE_SYSCALL_INFO_ENTRY,
  PTRACE_SYSCALL_INFO_EXIT,
  PTRACE_SYSCALL_INFO_SECCOMP,
} from './constants/ptrace.js';
import { SIGSET_SIZE } from './constants/signals.js';
import { SYS } from './constants/syscalls.js';
import { SysError } from './errno.js';
import { type Arg, addressOf, lastErrno, syscall, withPinned } from './native.js';
import { USER_REGS_SIZE, UserRegs } from './regs.js';
import { decodeSiginfo, SIGINFO_SIZE, type Siginfo } from './siginfo.js';

const U64 = (1n << 64n) - 1n;

/**
 * Generic ptrace(2): returns the syscall's result (0 for most requests). Throws SysError whose call is
 * 'ptrace(PTRACE_<NAME>)' and whose message names the pid.
 */
export function ptrace(request: number, pid: number, addr: Arg = 0, data: Arg = 0): number {
  const r = syscall(SYS.ptrace, request, pid, addr, data);
  if (r === -1) {
    const name = PTRACE_REQUEST_NAMES[request] ?? `0x${request.toString(16)}`;
    throw new SysError(`ptrace(${name})`, lastErrno(), `pid ${pid}`);
  }
  return r;
}

/** PTRACE_SEIZE with PTRACE_O_* options: attach without stopping the task. */
export function ptraceSeize(pid: number, options = 0): void {
  ptrace(PTRACE_SEIZE, pid, 0, options);
}

/** PTRACE_INTERRUPT: make a seized task enter a PTRACE_EVENT_STOP (wait for it with waitpid). */
export function ptraceInterrupt(pid: number): void {
  ptrace(PTRACE_INTERRUPT, pid);
}

/** PTRACE_CONT, delivering `signal` (0 = none) to the task. */
export function ptraceCont(pid: number, signal = 0): void {
  ptrace(PTRACE_CONT, pid, 0, signal);
}

/** PTRACE_SYSCALL: continue to the next syscall entry/exit stop, delivering `signal`. */
export function ptraceSyscall(pid: number, signal = 0): void {
  ptrace(PTRACE_SYSCALL, pid, 0, signal);
}

/** PTRACE_SINGLESTEP. */
export function ptraceSingleStep(pid: number, signal = 0): void {
  ptrace(PTRACE_SINGLESTEP, pid, 0, signal);
}

/** PTRACE_LISTEN: leave a task that is in group-stop stopped, but let it report new events. */
export function ptraceListen(pid: number): void {
  ptrace(PTRACE_LISTEN, pid);
}

/** PTRACE_DETACH, delivering `signal` (a stopped task resumes unless signal is SIGSTOP). */
export function ptraceDetach(pid: number, signal = 0): void {
  ptrace(PTRACE_DETACH, pid, 0, signal);
}

/** PTRACE_SETOPTIONS with PTRACE_O_* bits. */
export function ptraceSetOptions(pid: number, options: number): void {
  ptrace(PTRACE_SETOPTIONS, pid, 0, options);
}

/** PTRACE_GETEVENTMSG: new pid of FORK/CLONE events, exit status of EXIT, SECCOMP_RET_DATA, ... */
export function ptraceGetEventMsg(pid: number): bigint {
  const b = Buffer.alloc(8);
  ptrace(PTRACE_GETEVENTMSG, pid, 0, b);
  return b.readBigUInt64LE(0);
}

// --- register sets -------------------------------------------------------------------------------

/**
 * PTRACE_GETREGSET of note type `nt` into buf[0...]. Returns the bytes the kernel filled (its iov_len
 * result), which for NT_X86_XSTATE depends on the CPU's enabled features.
 */
export function ptraceGetRegset(pid: number, nt: number, buf: Buffer): number {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  withPinned(buf, () => ptrace(PTRACE_GETREGSET, pid, nt, iov));
  return Number(iov.readBigUInt64LE(8));
}

/** PTRACE_SETREGSET of note type `nt` from buf[0, len). */
export function ptraceSetRegset(pid: number, nt: number, buf: Buffer, len = buf.length): void {
  if (len > buf.length)
    throw new RangeError(`setRegset: length ${len} exceeds the ${buf.length}-byte buffer`);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(len), 8);
  withPinned(buf, () => ptrace(PTRACE_SETREGSET, pid, nt, iov));
}

/** General-purpose registers (NT_PRSTATUS), optionally into an existing UserRegs to avoid allocation. */
export function ptraceGetRegs(pid: number, into: UserRegs = new UserRegs()): UserRegs {
  const n = ptraceGetRegset(pid, NT_PRSTATUS, into.buffer);
  if (n !== USER_REGS_SIZE)
    throw new Error(`GETREGSET(NT_PRSTATUS) of pid ${pid}: ${n} bytes, expected ${USER_REGS_SIZE}`);
  return into;
}

/** Load general-purpose registers (NT_PRSTATUS). */
export function ptraceSetRegs(pid: number, regs: UserRegs): void {
  ptraceSetRegset(pid, NT_PRSTATUS, regs.buffer, USER_REGS_SIZE);
}

// Large enough for any XSAVE layout shipping today (AMX tiles make it ~11 KiB); the kernel tells the
// real size through iov_len.
const XSTATE_MAX = 64 * 1024;
let xstateScratch: Buffer | undefined;

/** The task's XSAVE area (NT_X86_XSTATE), exactly as long as the kernel reports. A fresh copy. */
export function ptraceGetXstate(pid: number): Buffer {
  xstateScratch ??= Buffer.alloc(XSTATE_MAX);
  const n = ptraceGetRegset(pid, NT_X86_XSTATE, xstateScratch);
  return Buffer.from(xstateScratch.subarray(0, n));
}

/** Load an XSAVE area (NT_X86_XSTATE) obtained from ptraceGetXstate. */
export function ptraceSetXstate(pid: number, xstate: Buffer): void {
  ptraceSetRegset(pid, NT_X86_XSTATE, xstate);
}

/** The legacy 512-byte FXSAVE area (NT_PRFPREG). */
export function ptraceGetFpregs(pid: number): Buffer {
  const b = Buffer.alloc(512);
  const n = ptraceGetRegset(pid, NT_PRFPREG, b);
  return b.subarray(0, n);
}

// --- signals ---------------------------------------------------------------------------------------

/** PTRACE_GETSIGINFO: the siginfo of the signal that caused the current stop. */
export function ptraceGetSiginfo(pid: number): Siginfo {
  const b = Buffer.alloc(SIGINFO_SIZE);
  ptrace(PTRACE_GETSIGINFO, pid, 0, b);
  return decodeSiginfo(b);
}

/** PTRACE_SETSIGINFO from 128 raw bytes. */
export function ptraceSetSiginfo(pid: number, raw: Buffer): void {
  if (raw.length < SIGINFO_SIZE)
    throw new RangeError(`siginfo needs ${SIGINFO_SIZE} bytes, got ${raw.length}`);
  ptrace(PTRACE_SETSIGINFO, pid, 0, raw);
}

export interface PeekSiginfoOptions {
  /** Read the process-wide (shared) pending queue instead of the thread's private one. */
  shared?: boolean;
  /** Index of the first queued signal to read. */
  offset?: number;
  /** How many to read at most; all of them when omitted. */
  count?: number;
}

const PEEK_CHUNK = 32;

/** PTRACE_PEEKSIGINFO: queued (pending) signals without dequeuing them. */
export function ptracePeekSiginfo(pid: number, opts: PeekSiginfoOptions = {}): Siginfo[] {
  const flags = opts.shared ? PTRACE_PEEKSIGINFO_SHARED : 0;
  const limit = opts.count ?? Number.POSITIVE_INFINITY;
  const args = Buffer.alloc(16);
  const out: Siginfo[] = [];
  let off = opts.offset ?? 0;
  while (out.length < limit) {
    const want = Math.min(PEEK_CHUNK, limit - out.length);
    const data = Buffer.alloc(want * SIGINFO_SIZE);
    args.writeBigUInt64LE(BigInt(off), 0);
    args.writeUInt32LE(flags, 8);
    args.writeInt32LE(want, 12);
    const n = ptrace(PTRACE_PEEKSIGINFO, pid, args, data);
    for (let i = 0; i < n; i++) out.push(decodeSiginfo(data, i * SIGINFO_SIZE));
    if (n < want) break;
    off += n;
  }
  return out;
}

/** PTRACE_GETSIGMASK: the blocked-signal mask (bit sig-1 set = blocked). */
export function ptraceGetSigmask(pid: number): bigint {
  const b = Buffer.alloc(SIGSET_SIZE);
  ptrace(PTRACE_GETSIGMASK, pid, SIGSET_SIZE, b);
  return b.readBigUInt64LE(0);
}

/** PTRACE_SETSIGMASK (SIGKILL and SIGSTOP bits are ignored by the kernel). */
export function ptraceSetSigmask(pid: number, mask: bigint): void {
  const b = Buffer.alloc(SIGSET_SIZE);
  b.writeBigUInt64LE(mask & U64, 0);
  ptrace(PTRACE_SETSIGMASK, pid, SIGSET_SIZE, b);
}

// --- rseq, syscall info, seccomp, TLS -------------------------------------------------------------

export interface RseqConfiguration {
  /** Address of the registered struct rseq; 0n when the thread has none. */
  rseqAbiPointer: bigint;
  rseqAbiSize: number;
  signature: number;
  flags: number;
}

/** PTRACE_GET_RSEQ_CONFIGURATION. */
export function ptraceGetRseqConfiguration(pid: number): RseqConfiguration {
  const b = Buffer.alloc(24);
  ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid, b.length, b);
  return {
    rseqAbiPointer: b.readBigUInt64LE(0),
    rseqAbiSize: b.readUInt32LE(8),
    signature: b.readUInt32LE(12),
    flags: b.readUInt32LE(16),
  };
}

/** Decoded struct ptrace_syscall_info. Entry/seccomp stops carry nr+args, exit stops rval+isError. */
export interface SyscallInfo {
  /** PTRACE_SYSCALL_INFO_NONE / ENTRY / EXIT / SECCOMP. */
  op: number;
  /** AUDIT_ARCH_* of the syscall (0xc000003e for x86_64). */
  arch: number;
  instructionPointer: bigint;
  stackPointer: bigint;
  nr?: bigint;
  args?: bigint[];
  rval?: bigint;
  isError?: boolean;
  retData?: number;
}

/** PTRACE_GET_SYSCALL_INFO: what the task is doing at a syscall / seccomp / other stop. */
export function ptraceGetSyscallInfo(pid: number): SyscallInfo {
  const b = Buffer.alloc(128);
  ptrace(PTRACE_GET_SYSCALL_INFO, pid, b.length, b);
  const info: SyscallInfo = {
    op: b[0] ?? 0,
    arch: b.readUInt32LE(4),
    instructionPointer: b.readBigUInt64LE(8),
    stackPointer: b.readBigUInt64LE(16),
  };
  if (info.op === PTRACE_SYSCALL_INFO_ENTRY || info.op === PTRACE_SYSCALL_INFO_SECCOMP) {
    info.nr = b.readBigUInt64LE(24);
    info.args = Array.from({ length: 6 }, (_, i) => b.readBigUInt64LE(32 + i * 8));
    if (info.op === PTRACE_SYSCALL_INFO_SECCOMP) info.retData = b.readUInt32LE(80);
  } else if (info.op === PTRACE_SYSCALL_INFO_EXIT) {
    info.rval = b.readBigInt64LE(24);
    info.isError = b[32] !== 0;
  }
  return info;
}

/**
 * PTRACE_SECCOMP_GET_FILTER: the classic-BPF program of the task's `index`-th seccomp filter (0 = the
 * most recently installed) as struct sock_filter[] bytes (8 per instruction). ENOENT past the last one.
 */
export function ptraceSeccompGetFilter(pid: number, index: number): Buffer {
  const count = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, null);
  const prog = Buffer.alloc(count * 8);
  const n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, prog);
  return prog.subarray(0, n * 8);
}

/** PTRACE_SECCOMP_GET_METADATA: flags (SECCOMP_FILTER_FLAG_*) the index-th filter was installed with. */
export function ptraceSeccompGetMetadata(pid: number, index: number): { filterOff: bigint; flags: bigint } {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(index), 0);
  ptrace(PTRACE_SECCOMP_GET_METADATA, pid, b.length, b);
  return { filterOff: b.readBigUInt64LE(0), flags: b.readBigUInt64LE(8) };
}

/** struct user_desc (x86 segment descriptor of a GDT TLS slot). */
export interface UserDesc {
  entryNumber: number;
  baseAddr: number;
  limit: number;
  seg32bit: boolean;
  contents: number;
  readExecOnly: boolean;
  limitInPages: boolean;
  segNotPresent: boolean;
  useable: boolean;
  lm: boolean;
  /** The 16 bytes as the kernel gave them. */
  raw: Buffer;
}

/** Decode a 16-byte struct user_desc. */
export function decodeUserDesc(raw: Buffer): UserDesc {
  const bits = raw.readUInt32LE(12);
  return {
    entryNumber: raw.readUInt32LE(0),
    baseAddr: raw.readUInt32LE(4),
    limit: raw.readUInt32LE(8),
    seg32bit: (bits & 1) !== 0,
    contents: (bits >> 1) & 3,
    readExecOnly: (bits & 8) !== 0,
    limitInPages: (bits & 16) !== 0,
    segNotPresent: (bits & 32) !== 0,
    useable: (bits & 64) !== 0,
    lm: (bits & 128) !== 0,
    raw,
  };
}

/** PTRACE_GET_THREAD_AREA for GDT entry `entry` (12..14 are the TLS slots). Needs IA32 emulation. */
export function ptraceGetThreadArea(pid: number, entry: number): UserDesc {
  const b = Buffer.alloc(16);
  ptrace(PTRACE_GET_THREAD_AREA, pid, entry, b);
  return decodeUserDesc(b);
}

// --- words -----------------------------------------------------------------------------------------

/** PTRACE_PEEKDATA: the u64 at `addr` in the task. */
export function ptracePeekData(pid: number, addr: bigint): bigint {
  const b = Buffer.alloc(8);
  ptrace(PTRACE_PEEKDATA, pid, addr, b);
  return b.readBigUInt64LE(0);
}

/** PTRACE_POKEDATA: store a u64 at `addr` in the task (works on read-only pages, like /proc/PID/mem). */
export function ptracePokeData(pid: number, addr: bigint, word: bigint): void {
  ptrace(PTRACE_POKEDATA, pid, addr, word & U64);
}

/** PTRACE_PEEKUSR: a word of struct user at `offset` (debug registers live at offsetof(u_debugreg)). */
export function ptracePeekUser(pid: number, offset: number): bigint {
  const b = Buffer.alloc(8);
  ptrace(PTRACE_PEEKUSR, pid, offset, b);
  return b.readBigUInt64LE(0);
}

/** PTRACE_POKEUSR. */
export function ptracePokeUser(pid: number, offset: number, word: bigint): void {
  ptrace(PTRACE_POKEUSR, pid, offset, word & U64);
}
