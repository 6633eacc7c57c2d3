// What a seized tree is made of: tasks (processes) and their threads, with the state each thread was
// stopped in, and what compel has to undo before letting it go.
import {
  isSysError,
  ptraceGetRegs,
  ptraceGetRseqConfiguration,
  ptracePeekSiginfo,
  SIGTRAP,
  type Siginfo,
  type UserRegs,
  vmRead,
} from '@criu-ts/sys';
import { CompelError } from '../errors.js';

/** A seized thread: its id and its registers as it was stopped. */
export interface SeizedThread {
  readonly tid: number;
  /** General-purpose registers as the thread was stopped (what release() puts back). */
  readonly regs: UserRegs;
  /** The signal of the stop it was seized in: a group stop's (SIGSTOP, SIGTSTP, ...), or SIGTRAP. */
  readonly stopSignal: number;
}

/** How a task was found: running (or sleeping), in a group stop (SIGSTOP & co.), or a zombie. */
export type TaskState = 'running' | 'stopped' | 'zombie';

/** A task (process) of a seized tree. */
export interface SeizedTask {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  readonly sid: number;
  readonly state: TaskState;
  /** Every thread, the thread-group leader first. Empty for a zombie. */
  readonly threads: SeizedThread[];
  /** Pids of the children of every thread (zombies included), ascending. */
  readonly children: number[];
}

/** x86_64 user code segment: a 64-bit task. (0x23 would be a 32-bit compat task.) */
const USER_CS_64 = 0x33n;

/**
 * A thread under our ptrace control. `regs` are the registers it was stopped with; `work` and `out` are
 * reused for injections. Everything compel changes in the thread is recorded here so that release()
 * can put it back: `dirty` (its registers differ from `regs`) and `signals` (signals that arrived while
 * code was injected, suppressed then, delivered again at release).
 */
export class TracedThread implements SeizedThread {
  readonly tid: number;
  readonly pid: number;
  readonly regs: UserRegs;
  /** The stop it was seized in was a group stop (SIGSTOP, SIGTSTP, ...), not a PTRACE_INTERRUPT one. */
  readonly groupStop: boolean;
  /** Stop signal of that stop (SIGTRAP for an interrupt stop). */
  readonly stopSignal: number;
  /** Registers in the kernel differ from `regs`. */
  dirty = false;
  /** The thread died while seized. */
  gone = false;
  /** Signals suppressed while the thread ran injected code (or while it was being seized). */
  readonly signals: Siginfo[] = [];
  /** The thread was checked for injection (64-bit, rseq critical section). */
  prepared = false;
  /** rip was inside an rseq critical section when seized: release() resumes at its abort handler. */
  rseqAbort: bigint | undefined;

  constructor(pid: number, tid: number, stopSignal: number, signals: Siginfo[] = []) {
    this.pid = pid;
    this.tid = tid;
    this.stopSignal = stopSignal;
    this.groupStop = stopSignal !== SIGTRAP && stopSignal !== 0;
    this.regs = ptraceGetRegs(tid);
    this.signals.push(...signals);
  }

  /**
   * Checks before the first injection: a 64-bit task, and rseq. If the thread was stopped inside an
   * rseq critical section, the kernel would move it to the section's abort handler on resume; running
   * injected code (outside the section) makes the kernel clear rseq_cs instead, so the abort has to be
   * done by us: release() then resumes it at abort_ip, as the kernel would have.
   */
  prepare(): void {
    if (this.prepared) return;
    if (this.regs.cs !== USER_CS_64) {
      throw new CompelError(
        `thread ${this.tid}: not a 64-bit task (cs 0x${this.regs.cs.toString(16)})`,
        this.tid,
      );
    }
    // CRIU's compel refuses a pending SIGTRAP (its int3 would take it for its own), with these words.
    // compel's code has no int3 any more (safe-code.ts), but a dump keeps CRIU's refusal.
    const pending = [...ptracePeekSiginfo(this.tid), ...ptracePeekSiginfo(this.tid, { shared: true })];
    if (pending.some((s) => s.signo === SIGTRAP))
      throw new CompelError(`Can't dump the ${this.tid} thread with a pending SIGTRAP.`, this.tid);
    this.rseqAbort = rseqAbortIp(this.tid, this.regs.rip);
    this.prepared = true;
  }

  /** Registers to load at release: the original ones (with rip moved to an rseq abort handler). */
  finalRegs(): UserRegs {
    if (this.rseqAbort === undefined) return this.regs;
    return this.regs.clone().set('rip', this.rseqAbort);
  }
}

/** Abort ip of the rseq critical section containing `rip`, or undefined. */
function rseqAbortIp(tid: number, rip: bigint): bigint | undefined {
  try {
    const conf = ptraceGetRseqConfiguration(tid);
    if (conf.rseqAbiPointer === 0n) return undefined;
    const csPtr = Buffer.alloc(8);
    vmRead(tid, conf.rseqAbiPointer + 8n, csPtr); // struct rseq { u32 cpu_id_start, cpu_id; u64 rseq_cs; ... }
    const cs = csPtr.readBigUInt64LE(0);
    if (cs === 0n) return undefined;
    const desc = Buffer.alloc(32); // struct rseq_cs { u32 version, flags; u64 start_ip, post_commit_offset, abort_ip }
    vmRead(tid, cs, desc);
    const start = desc.readBigUInt64LE(8);
    const len = desc.readBigUInt64LE(16);
    if (rip >= start && rip < start + len) return desc.readBigUInt64LE(24);
    return undefined;
  } catch (e) {
    if (isSysError(e)) return undefined; // no rseq support, unreadable descriptor: nothing to fix up
    throw e;
  }
}

/** The task record kept by SeizedTree. */
export class TracedTask implements SeizedTask {
  pid: number;
  ppid = 0;
  pgid = 0;
  sid = 0;
  state: TaskState = 'running';
  threads: TracedThread[] = [];
  children: number[] = [];

  constructor(pid: number) {
    this.pid = pid;
  }

  /** The thread injections use: the leader while it lives, else the first live thread. */
  mainThread(): TracedThread {
    const t = this.threads.find((x) => x.tid === this.pid && !x.gone) ?? this.threads.find((x) => !x.gone);
    if (t === undefined) throw new CompelError(`task ${this.pid} has no live seized thread`, this.pid);
    return t;
  }

  /** True when the task was in a group stop when seized. */
  get groupStopped(): boolean {
    return this.threads.some((t) => t.groupStop);
  }
}
