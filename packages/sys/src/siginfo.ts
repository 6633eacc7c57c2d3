// siginfo_t (128 bytes on x86_64) decoding. The raw bytes are kept: CRIU images store pending signals as
// raw siginfo, and which union member is valid depends on signo and code in ways callers know better.
import { SIGBUS, SIGCHLD, SIGFPE, SIGILL, SIGSEGV, SIGSYS, SIGTRAP } from './constants/signals.js';

export const SIGINFO_SIZE = 128;

/** A decoded siginfo_t. Fields that the union does not carry for this signal/code are left undefined. */
export interface Siginfo {
  signo: number;
  errno: number;
  /** si_code: SI_USER, SI_KERNEL, SI_TKILL, CLD_*, TRAP_*, ... (signed). */
  code: number;
  /** Sender pid (kill, sigqueue, tkill, SIGCHLD). */
  pid?: number;
  /** Sender uid (kill, sigqueue, tkill, SIGCHLD). */
  uid?: number;
  /** SIGCHLD: exit code or signal number. */
  status?: number;
  /** Faulting address (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP). */
  addr?: bigint;
  /** SIGSYS: address of the syscall instruction, syscall number and audit arch. */
  callAddr?: bigint;
  syscall?: number;
  arch?: number;
  /** POSIX timers (SI_TIMER): timer id and overrun count. */
  timerId?: number;
  overrun?: number;
  /** sigqueue / timer value (sival_ptr as u64). */
  value?: bigint;
  /** The 128 bytes as the kernel gave them. */
  raw: Buffer;
}

const SI_TIMER = -2;
const SI_QUEUE = -1;
const SI_MESGQ = -3;

/** Decode a 128-byte siginfo_t. `raw` is a copy, so the source buffer can be reused. */
export function decodeSiginfo(buf: Buffer, offset = 0): Siginfo {
  const raw = Buffer.from(buf.subarray(offset, offset + SIGINFO_SIZE));
  const info: Siginfo = {
    signo: raw.readInt32LE(0),
    errno: raw.readInt32LE(4),
    code: raw.readInt32LE(8),
    raw,
  };
  // The union starts at offset 16 on 64-bit (after 4 bytes of padding).
  const { signo, code } = info;
  if (code === SI_TIMER) {
    info.timerId = raw.readInt32LE(16);
    info.overrun = raw.readInt32LE(20);
    info.value = raw.readBigUInt64LE(24);
  } else if (code <= 0 || code === 0x80) {
    // SI_USER, SI_QUEUE, SI_TKILL, SI_KERNEL...: sender pid/uid (SI_KERNEL leaves them 0).
    info.pid = raw.readInt32LE(16);
    info.uid = raw.readUInt32LE(20);
    if (code === SI_QUEUE || code === SI_MESGQ) info.value = raw.readBigUInt64LE(24);
  } else if (signo === SIGTRAP && code >> 8 !== 0) {
    // A ptrace event stop ((PTRACE_EVENT_x << 8) | SIGTRAP): the kernel reports the tracee's pid/uid.
    info.pid = raw.readInt32LE(16);
    info.uid = raw.readUInt32LE(20);
  } else if (signo === SIGCHLD) {
    info.pid = raw.readInt32LE(16);
    info.uid = raw.readUInt32LE(20);
    info.status = raw.readInt32LE(24);
  } else if (signo === SIGSYS) {
    info.callAddr = raw.readBigUInt64LE(16);
    info.syscall = raw.readInt32LE(24);
    info.arch = raw.readUInt32LE(28);
  } else if (
    signo === SIGSEGV ||
    signo === SIGBUS ||
    signo === SIGILL ||
    signo === SIGFPE ||
    signo === SIGTRAP
  ) {
    info.addr = raw.readBigUInt64LE(16);
  }
  return info;
}

/** Build a 128-byte siginfo for pidfd_send_signal / rt_sigqueueinfo / PTRACE_SETSIGINFO. */
export function encodeSiginfo(info: {
  signo: number;
  errno?: number;
  code: number;
  pid?: number;
  uid?: number;
  value?: bigint;
}): Buffer {
  const b = Buffer.alloc(SIGINFO_SIZE);
  b.writeInt32LE(info.signo, 0);
  b.writeInt32LE(info.errno ?? 0, 4);
  b.writeInt32LE(info.code, 8);
  b.writeInt32LE(info.pid ?? 0, 16);
  b.writeUInt32LE(info.uid ?? 0, 20);
  b.writeBigUInt64LE(info.value ?? 0n, 24);
  return b;
}
