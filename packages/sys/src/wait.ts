// waitpid (wait4) and waitid with decoded results. __WALL is the default because ptrace stops of threads
// (clone children) are invisible without it.
import { __WALL, WNOHANG } from './constants/process.js';
import { SIGTRAP } from './constants/signals.js';
import { SYS } from './constants/syscalls.js';
import { checkedRetry, syscall } from './native.js';

/** A decoded wait status. Exactly one of exited / signaled / stopped / continued is true. */
export interface WaitStatus {
  pid: number;
  /** The raw status word. */
  status: number;
  exited: boolean;
  /** Exit code when exited. */
  exitCode: number;
  signaled: boolean;
  /** Terminating signal when signaled. */
  termSignal: number;
  coreDumped: boolean;
  stopped: boolean;
  /** Signal of the stop (SIGTRAP | 0x80 for a syscall-stop with PTRACE_O_TRACESYSGOOD). */
  stopSignal: number;
  /** PTRACE_EVENT_* of a ptrace event stop (status >> 16), 0 otherwise. */
  event: number;
  continued: boolean;
}

/** Decode a wait status word (the WIFEXITED/WIFSIGNALED/WIFSTOPPED macros). */
export function decodeWaitStatus(pid: number, status: number): WaitStatus {
  const low = status & 0x7f;
  const stopped = (status & 0xff) === 0x7f;
  const continued = status === 0xffff;
  const exited = low === 0;
  const signaled = !stopped && !continued && !exited;
  return {
    pid,
    status,
    exited,
    exitCode: exited ? (status >> 8) & 0xff : 0,
    signaled,
    termSignal: signaled ? low : 0,
    coreDumped: signaled && (status & 0x80) !== 0,
    stopped,
    stopSignal: stopped ? (status >> 8) & 0xff : 0,
    event: stopped ? (status >>> 16) & 0xff : 0,
    continued,
  };
}

/** True for a syscall-entry/exit stop reported with PTRACE_O_TRACESYSGOOD. */
export function isSyscallStop(st: WaitStatus): boolean {
  return st.stopped && st.stopSignal === (SIGTRAP | 0x80);
}

/** One readable line: 'pid 12 stopped SIGTRAP event 128', 'pid 12 exited 0', ... */
export function formatWaitStatus(st: WaitStatus): string {
  if (st.exited) return `pid ${st.pid} exited ${st.exitCode}`;
  if (st.signaled)
    return `pid ${st.pid} killed by signal ${st.termSignal}${st.coreDumped ? ' (core dumped)' : ''}`;
  if (st.stopped)
    return `pid ${st.pid} stopped by signal ${st.stopSignal}${st.event ? ` event ${st.event}` : ''}`;
  return `pid ${st.pid} continued`;
}

const statusBuf = Buffer.alloc(4);

/**
 * waitpid(2) (wait4 without rusage). pid: > 0 one task, -1 any child. Returns null when WNOHANG is set and
 * nothing changed. EINTR is retried.
 */
export function waitpid(pid: number, options = __WALL): WaitStatus | null {
  const r = checkedRetry(
    'waitpid',
    () => `pid ${pid}`,
    () => syscall(SYS.wait4, pid, statusBuf, options, null),
  );
  if (r === 0) return null;
  return decodeWaitStatus(r, statusBuf.readInt32LE(0));
}

/** waitpid with WNOHANG added. */
export function waitpidNoHang(pid: number, options = __WALL): WaitStatus | null {
  return waitpid(pid, options | WNOHANG);
}

/** What waitid(2) reports (from its siginfo). */
export interface WaitidResult {
  pid: number;
  uid: number;
  /** Always SIGCHLD. */
  signo: number;
  /** CLD_EXITED / CLD_KILLED / CLD_DUMPED / CLD_TRAPPED / CLD_STOPPED / CLD_CONTINUED. */
  code: number;
  /** Exit code (CLD_EXITED) or signal number (the others). */
  status: number;
}

/**
 * waitid(2). idtype P_PID / P_PGID / P_ALL / P_PIDFD; options must include WEXITED, WSTOPPED or
 * WCONTINUED (plus WNOHANG, WNOWAIT, __WALL). Returns null when WNOHANG is set and nothing is ready.
 */
export function waitid(idtype: number, id: number, options: number): WaitidResult | null {
  const info = Buffer.alloc(128);
  checkedRetry(
    'waitid',
    () => `id ${id}`,
    () => syscall(SYS.waitid, idtype, id, info, options, null),
  );
  const pid = info.readInt32LE(16);
  if (pid === 0) return null;
  return {
    pid,
    uid: info.readUInt32LE(20),
    signo: info.readInt32LE(0),
    code: info.readInt32LE(8),
    status: info.readInt32LE(24),
  };
}
