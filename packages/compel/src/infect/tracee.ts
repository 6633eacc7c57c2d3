// Threads compel runs code in from their first instruction, not seized ones: the tasks of a restore (the
// restore stub, and every task and thread cloned from it, auto-attached through PTRACE_O_TRACEFORK/
// VFORK/CLONE). They share the batch runner (batch.ts), the register templates and the stop waiting
// (remote-syscall.ts) with the Parasite of a seized task; what differs:
//
//  - The code ends in an int3, not in a marker syscall: the loop of codePage() (done and fail are int3s)
//    and a `syscall; int3` stub (the restore stub's own, or the code page's at STUB_OFFSET). The rules of
//    safe-code.ts (no int3, a marker, a self-restoring epilogue, patches only over zero padding) exist for
//    a task that must run on unharmed if its tracer dies. These tasks are traced with PTRACE_O_EXITKILL:
//    the tracer's death kills them, and before the restore ends they have no state of their own to go
//    back to. And a marker signal would not work here: every signal is blocked while restore works.
//  - Nothing is put back: the scratch area lives in our own tasks and is unmapped by the restore itself
//    (syscallToExitStop), their final registers are the image's.
//  - Fork, vfork and clone events met while code runs are recorded (takeBorn): that is how the pids of
//    the tasks and threads a clone3 made are learnt.
//
// Everything here is synchronous and runs on the thread that owns the ptrace attachments.
import {
  formatWaitStatus,
  PTRACE_EVENT_CLONE,
  PTRACE_EVENT_FORK,
  PTRACE_EVENT_VFORK,
  ptraceCont,
  ptraceGetEventMsg,
  ptraceGetRegs,
  ptraceGetSiginfo,
  ptraceSetRegs,
  SIGTRAP,
  type Siginfo,
  type UserRegs,
} from '@criu-ts/sys';
import { TaskGoneError } from '../errors.js';
import { type BatchEntry, type BatchResult, BatchRunner, type PendingBatch } from './batch.js';
import { BATCH_DONE_RIP, BATCH_FAIL_RIP, STUB_TRAP_RIP } from './batch-code.js';
import {
  type InjectedThread,
  nextStopOf,
  outRegs,
  type SyscallArg,
  syscallByStops,
  syscallRegs,
  waitForStop,
  workRegs,
} from './remote-syscall.js';

/**
 * Where codePage() (batch loop at BATCH_ENTRY, `syscall; int3` at STUB_OFFSET), a syscall table and a
 * data area sit in a Tracee's address space (the same in every task of a restore: mapped before the
 * first clone, so every fork inherits it at the same address).
 */
export interface ScratchLayout {
  base: bigint;
  size: number;
  /** The code page: codePage() of batch-code.ts. */
  code: bigint;
  table: bigint;
  tableEntries: number;
  data: bigint;
  dataSize: number;
}

/**
 * A thread traced from its creation, stopped. `regs` are the registers of the stop it was taken over
 * in, the template of every injection (only rip, rax, rbx, the argument registers and orig_rax change).
 */
export class Tracee implements InjectedThread {
  readonly pid: number;
  readonly tid: number;
  readonly regs: UserRegs;
  /** Signals that stopped it while injected code ran (suppressed; restore blocks them all anyway). */
  readonly signals: Siginfo[] = [];
  gone = false;
  /** The last stop is a syscall-exit stop (registers set now skip the kernel's restart logic too). */
  atSyscallExit = false;
  /** Pids reported by fork/clone events since the last take. */
  private readonly born: number[] = [];
  private runner: BatchRunner | undefined;
  private runnerLayout: ScratchLayout | undefined;

  constructor(pid: number, tid: number) {
    this.pid = pid;
    this.tid = tid;
    this.regs = ptraceGetRegs(tid);
  }

  /** Pids of children or threads created by the code that ran since the last call. */
  takeBorn(): number[] {
    return this.born.splice(0);
  }

  /** One syscall at `stubAddr`, a `syscall; int3`; rax, signed. */
  syscallAt(stubAddr: bigint, nr: number, args: readonly SyscallArg[]): bigint {
    this.resume(syscallRegs(this, stubAddr, nr, args));
    return this.waitTrap(stubAddr + BigInt(STUB_TRAP_RIP), undefined).getSigned('rax');
  }

  /**
   * One syscall at `syscallAddr` run with PTRACE_SYSCALL to its exit stop (no int3 afterwards), where the
   * thread stays (atSyscallExit): for the last munmap of the scratch area, which cannot return into the
   * code it unmaps. Needs PTRACE_O_TRACESYSGOOD.
   */
  syscallToExitStop(syscallAddr: bigint, nr: number, args: readonly SyscallArg[]): bigint {
    ptraceSetRegs(this.tid, syscallRegs(this, syscallAddr, nr, args));
    const r = syscallByStops(this, 'exit', () => {
      const st = waitForStop(this.tid);
      if (st.stopped) return st;
      this.gone = true;
      throw new TaskGoneError(`thread ${this.tid}: ${formatWaitStatus(st)} in its last syscall`, this.tid);
    });
    this.atSyscallExit = true;
    return r;
  }

  /** Run a table of syscalls (in chunks of the table size); stops at the first failure. */
  runBatch(s: ScratchLayout, calls: readonly BatchEntry[]): BatchResult {
    return this.runnerFor(s).run(calls);
  }

  /**
   * Start a batch of at most one table of calls and return at once, the thread running it: the caller
   * can work meanwhile (restore fills memory from both ends). finishBatch() waits for it.
   */
  startBatch(s: ScratchLayout, calls: readonly BatchEntry[]): PendingBatch {
    return this.runnerFor(s).start(calls);
  }

  finishBatch(p: PendingBatch): BatchResult {
    return p.runner.finish(p);
  }

  private runnerFor(s: ScratchLayout): BatchRunner {
    if (this.runner === undefined || this.runnerLayout !== s) {
      const done = s.code + BigInt(BATCH_DONE_RIP);
      const fail = s.code + BigInt(BATCH_FAIL_RIP);
      this.runner = new BatchRunner(
        {
          tid: this.tid,
          startRegs: () => workRegs(this),
          launch: (regs) => this.resume(regs),
          land: () => this.waitTrap(done, fail),
        },
        s.code,
        s.table,
        s.tableEntries,
      );
      this.runnerLayout = s;
    }
    return this.runner;
  }

  private resume(regs: UserRegs): void {
    if (this.gone) throw new TaskGoneError(`thread ${this.tid} is gone`, this.tid);
    ptraceSetRegs(this.tid, regs);
    ptraceCont(this.tid, 0);
    this.atSyscallExit = false;
  }

  /** Wait for an int3 whose rip is `a` or `b`; the registers there (reused by the next run). */
  private waitTrap(a: bigint, b: bigint | undefined): UserRegs {
    const out = outRegs(this);
    for (;;) {
      const st = nextStopOf(this, 'in injected code');
      if (
        st.event === PTRACE_EVENT_FORK ||
        st.event === PTRACE_EVENT_VFORK ||
        st.event === PTRACE_EVENT_CLONE
      ) {
        this.born.push(Number(ptraceGetEventMsg(this.tid)));
        ptraceCont(this.tid, 0);
        continue;
      }
      if (st.event !== 0) {
        ptraceCont(this.tid, 0);
        continue;
      }
      if (st.stopSignal === SIGTRAP) {
        ptraceGetRegs(this.tid, out);
        if (out.rip === a || out.rip === b) return out;
      }
      this.signals.push(ptraceGetSiginfo(this.tid));
      ptraceCont(this.tid, 0);
    }
  }
}
