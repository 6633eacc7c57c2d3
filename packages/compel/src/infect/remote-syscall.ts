// Running one syscall in a stopped thread with syscall stops (no int3), and the helpers every run shares,
// for both kinds of thread compel injects into (InjectedThread): a seized one (TracedThread, tree/task.ts)
// and one traced from its first instruction (Tracee, tracee.ts). Batches: batch.ts.
//
// - Every run starts with orig_rax = -1. The thread may have been stopped inside a syscall (orig_rax = nr,
//   rax = -ERESTART*); with orig_rax >= 0 the kernel's restart logic would, on this resume, move rip two
//   bytes back into whatever precedes our code and reload rax.
// - A signal that arrives meanwhile shows up as a signal-delivery-stop with that signal: its siginfo is
//   recorded on the thread, it is suppressed (continued with 0) and delivered again at release.
// - A PTRACE_EVENT_STOP on the way (a PTRACE_INTERRUPT still pending from the seize of a group-stopped
//   task) is continued.
// - A SIGTRAP (not a syscall stop) is the task's own: recorded like any signal.
import {
  __WALL,
  formatWaitStatus,
  PTRACE_EVENT_STOP,
  ptraceCont,
  ptraceGetRegs,
  ptraceInterrupt,
  ptraceSetRegs,
  ptraceSyscall,
  raw,
  SIGTRAP,
  type Siginfo,
  SYS,
  type UserRegs,
  type WaitStatus,
  WNOHANG,
  waitpid,
} from '@criu-ts/sys';
import { TaskGoneError } from '../errors.js';
import { holdSignal } from '../tree/signals.js';
import type { TracedThread } from '../tree/task.js';

/** A remote syscall argument: a number (small integers, fds) or a bigint (addresses, u64). */
export type SyscallArg = number | bigint;

/**
 * What the run loops need of a thread compel injects into: a seized TracedThread (tree/task.ts) or a
 * Tracee traced from its first instruction (tracee.ts).
 */
export interface InjectedThread {
  readonly pid: number;
  readonly tid: number;
  /** The registers every run starts from (a run changes rip, rax, rbx, the arguments and orig_rax). */
  readonly regs: UserRegs;
  /** The thread exited or was killed under us. */
  gone: boolean;
  /** Signals that stopped it while injected code ran: suppressed then, recorded here. */
  readonly signals: Siginfo[];
}

const ARG_REGS = ['rdi', 'rsi', 'rdx', 'r10', 'r8', 'r9'] as const;

/** Per-thread register buffers reused by every run (no allocation on the hot path). */
const scratchRegs = new WeakMap<InjectedThread, { work: UserRegs; out: UserRegs }>();

/** The thread's reusable `out` buffer, for the registers of a stop (valid until its next run). */
export function outRegs(th: InjectedThread): UserRegs {
  return buffersOf(th).out;
}

function buffersOf(th: InjectedThread): { work: UserRegs; out: UserRegs } {
  let b = scratchRegs.get(th);
  if (b === undefined) {
    b = { work: th.regs.clone(), out: th.regs.clone() };
    scratchRegs.set(th, b);
  }
  return b;
}

/** The thread's original registers copied into its work buffer, orig_rax = -1: start of every run. */
export function workRegs(th: InjectedThread): UserRegs {
  const w = buffersOf(th).work.copyFrom(th.regs);
  w.set('orig_rax', -1n);
  return w;
}

/** workRegs() set up for syscall `nr` with `args` at `rip`. */
export function syscallRegs(
  th: InjectedThread,
  rip: bigint,
  nr: number,
  args: readonly SyscallArg[],
): UserRegs {
  const w = workRegs(th);
  w.set('rip', rip);
  w.set('rax', nr);
  for (let i = 0; i < 6; i++) w.set(ARG_REGS[i] as (typeof ARG_REGS)[number], args[i] ?? 0);
  return w;
}

/** How long waitForStop() polls before it blocks in waitpid(). */
const SPIN_MS = 1;

/**
 * Wait for the next state change of a tracee. Injected code normally traps within tens of microseconds:
 * poll with WNOHANG (yielding the CPU in between, in case the tracee waits for this one) for up to
 * SPIN_MS, then block. A blocking waitpid() right away lets this CPU go idle, and on this VM the wake-up
 * from idle doubles the round trip (about 80 us instead of 40 us per injected syscall).
 */
export function waitForStop(tid: number): WaitStatus {
  const until = process.uptime() * 1000 + SPIN_MS;
  do {
    const st = waitpid(tid, __WALL | WNOHANG);
    if (st !== null) return st;
    raw.syscall(SYS.sched_yield);
  } while (process.uptime() * 1000 < until);
  for (;;) {
    const st = waitpid(tid, __WALL);
    if (st !== null) return st;
  }
}

/**
 * The next stop of a thread running compel's code; a thread that exited or was killed instead is
 * marked gone and reported (`doing`: what it was running, for the message).
 */
export function nextStopOf(th: InjectedThread, doing: string): WaitStatus {
  const st = waitForStop(th.tid);
  if (st.stopped) return st;
  th.gone = true;
  throw new TaskGoneError(`thread ${th.tid} of ${th.pid}: ${formatWaitStatus(st)} ${doing}`, th.tid);
}

/**
 * Run one syscall at `syscallAddr` (a `syscall` instruction) without any int3: PTRACE_SYSCALL to its
 * entry stop and to its exit stop, read rax there. No SIGTRAP is raised, so this is how compel changes
 * the task's SIGTRAP disposition itself (parasite.ts). Registers loaded at a syscall-exit stop would skip
 * the kernel's restart logic at detach, so the thread is then parked in a PTRACE_INTERRUPT stop (it stops
 * on the way out of the syscall, before running any user code). Needs PTRACE_O_TRACESYSGOOD.
 */
export function remoteSyscallNoTrap(
  th: TracedThread,
  syscallAddr: bigint,
  nr: number,
  args: readonly SyscallArg[],
): bigint {
  th.prepare();
  const w = syscallRegs(th, syscallAddr, nr, args);
  ptraceSetRegs(th.tid, w);
  th.dirty = true;
  return syscallByStops(th, 'park', () => nextStopOf(th, 'in a remote syscall'));
}

/**
 * The syscall whose registers were just loaded into `th`, run with syscall stops: to its entry stop,
 * to its exit stop, where rax is read. Then `park`: the thread is parked in a PTRACE_INTERRUPT stop on
 * its way out (see remoteSyscallNoTrap); `exit`: it stays in the syscall-exit stop. `next` waits for the
 * thread's next stop (and reports its death). Other signals are recorded on the thread and suppressed.
 */
export function syscallByStops(th: InjectedThread, after: 'park' | 'exit', next: () => WaitStatus): bigint {
  let phase: 'entry' | 'exit' | 'park' = 'entry';
  let result = 0n;
  ptraceSyscall(th.tid, 0);
  for (;;) {
    const st = next();
    const resume = () => (phase === 'park' ? ptraceCont(th.tid, 0) : ptraceSyscall(th.tid, 0));
    if (phase === 'park' && st.event === PTRACE_EVENT_STOP) return result;
    if (st.event !== 0) {
      resume();
      continue;
    }
    if (st.stopSignal === (SIGTRAP | 0x80) && phase !== 'park') {
      if (phase === 'entry') {
        phase = 'exit';
        ptraceSyscall(th.tid, 0);
      } else {
        result = ptraceGetRegs(th.tid, outRegs(th)).getSigned('rax');
        if (after === 'exit') return result;
        phase = 'park';
        ptraceInterrupt(th.tid);
        ptraceCont(th.tid, 0);
      }
      continue;
    }
    holdSignal(th.signals, th.pid, th.tid);
    resume();
  }
}
