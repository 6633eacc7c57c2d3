// Running one syscall in a stopped thread with syscall stops (no int3), and the helpers every run shares.
// (Batches run in the parasite's code page: safe-run.ts.)
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
  ptraceGetSiginfo,
  ptraceInterrupt,
  ptraceSetRegs,
  ptraceSyscall,
  raw,
  SIGTRAP,
  SYS,
  type UserRegs,
  type WaitStatus,
  WNOHANG,
  waitpid,
} from '@criu-ts/sys';
import { TaskGoneError } from '../errors.js';
import type { TracedThread } from '../tree/task.js';

/** A remote syscall argument: a number (small integers, fds) or a bigint (addresses, u64). */
export type SyscallArg = number | bigint;

const ARG_REGS = ['rdi', 'rsi', 'rdx', 'r10', 'r8', 'r9'] as const;

/** Per-thread register buffers reused by every run (no allocation on the hot path). */
const scratchRegs = new WeakMap<TracedThread, { work: UserRegs; out: UserRegs }>();

function buffersOf(th: TracedThread): { work: UserRegs; out: UserRegs } {
  let b = scratchRegs.get(th);
  if (b === undefined) {
    b = { work: th.regs.clone(), out: th.regs.clone() };
    scratchRegs.set(th, b);
  }
  return b;
}

/** The thread's original registers copied into its work buffer, orig_rax = -1: start of every run. */
export function workRegs(th: TracedThread): UserRegs {
  const w = buffersOf(th).work.copyFrom(th.regs);
  w.set('orig_rax', -1n);
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
  const until = performance.now() + SPIN_MS;
  do {
    const st = waitpid(tid, __WALL | WNOHANG);
    if (st !== null) return st;
    raw.syscall(SYS.sched_yield);
  } while (performance.now() < until);
  for (;;) {
    const st = waitpid(tid, __WALL);
    if (st !== null) return st;
  }
}

/**
 * The next stop of a thread running compel's code; a thread that exited or was killed instead is
 * marked gone and reported (`doing`: what it was running, for the message).
 */
export function nextStopOf(th: TracedThread, doing: string): WaitStatus {
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
  const w = workRegs(th);
  w.set('rip', syscallAddr);
  w.set('rax', nr);
  for (let i = 0; i < 6; i++) w.set(ARG_REGS[i] as (typeof ARG_REGS)[number], args[i] ?? 0);
  const { out } = buffersOf(th);
  ptraceSetRegs(th.tid, w);
  th.dirty = true;
  let phase: 'entry' | 'exit' | 'park' = 'entry';
  let result = 0n;
  ptraceSyscall(th.tid, 0);
  for (;;) {
    const st = nextStopOf(th, 'in a remote syscall');
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
        result = ptraceGetRegs(th.tid, out).getSigned('rax');
        phase = 'park';
        ptraceInterrupt(th.tid);
        ptraceCont(th.tid, 0);
      }
      continue;
    }
    th.signals.push(ptraceGetSiginfo(th.tid));
    resume();
  }
}
