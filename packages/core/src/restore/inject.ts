// Running code in the tasks restore creates. They are not seized processes (compel's Parasite works on
// a SeizedTree of running tasks and puts everything back at the end); they are our own tracees from their
// first instruction: the stub, and every task and thread cloned from it, auto-attached through
// PTRACE_O_TRACEFORK/CLONE. Each of them carries the same scratch area (mapped in the stub before the
// first clone3, so every fork inherits it at the same address): compel's code page (the batch loop and
// the `syscall; int3` stub), a syscall table and a data area.
//
// Everything here is synchronous and runs on the thread that owns the ptrace attachments.
import {
  BATCH_CODE,
  BATCH_DONE_RIP,
  BATCH_ENTRY,
  BATCH_FAIL_RIP,
  ENTRY_SIZE,
  RESULT_OFFSET,
} from '@criu-ts/compel';
import {
  __WALL,
  formatWaitStatus,
  PTRACE_EVENT_CLONE,
  PTRACE_EVENT_FORK,
  PTRACE_EVENT_VFORK,
  ptraceCont,
  ptraceGetEventMsg,
  ptraceGetRegs,
  ptraceGetSiginfo,
  ptraceSetRegs,
  ptraceSyscall,
  raw,
  SIGTRAP,
  type Siginfo,
  SYS,
  SysError,
  syscallName,
  type UserRegs,
  vmRead,
  vmWrite,
  type WaitStatus,
  WNOHANG,
  waitpid,
} from '@criu-ts/sys';
import { RestoreError } from './errors.js';

/** A syscall argument: a number (small integers, fds) or a bigint (addresses, u64). */
export type Arg = number | bigint;
/** One table entry: the syscall number and up to six arguments. */
export type Call = readonly [nr: number, ...args: Arg[]];

/** Where compel's code, the syscall table and the data area sit (the same in every restored task). */
export interface ScratchLayout {
  base: bigint;
  size: number;
  /** The code page: batch loop at BATCH_ENTRY, `syscall; int3` at STUB_OFFSET. */
  code: bigint;
  table: bigint;
  tableEntries: number;
  data: bigint;
  dataSize: number;
}

const ARG_REGS = ['rdi', 'rsi', 'rdx', 'r10', 'r8', 'r9'] as const;
const STUB_OFFSET = 0x38; // compel's `syscall; int3` in its code page
const STUB_TRAP = 3;

/** Thread died under us. */
export class ThreadGoneError extends RestoreError {}

/**
 * A thread we trace from its creation. `regs` are the registers of its current stop, the template of
 * every injection (only rip, rax, the argument registers and orig_rax change).
 */
export class Tracee {
  readonly pid: number;
  readonly tid: number;
  readonly regs: UserRegs;
  private readonly work: UserRegs;
  private readonly out: UserRegs;
  /** Signals that stopped it while injected code ran (all signals are blocked while we work). */
  readonly signals: Siginfo[] = [];
  /** Pids reported by fork/clone events since the last take. */
  private readonly born: number[] = [];
  gone = false;
  /** The last stop is a syscall-exit stop (registers set now skip the kernel's restart logic too). */
  atSyscallExit = false;

  constructor(pid: number, tid: number) {
    this.pid = pid;
    this.tid = tid;
    this.regs = ptraceGetRegs(tid);
    this.work = this.regs.clone();
    this.out = this.regs.clone();
  }

  /** Pids of children or threads created by the code that just ran. */
  takeBorn(): number[] {
    return this.born.splice(0);
  }

  private prepare(): UserRegs {
    const w = this.work.copyFrom(this.regs);
    w.set('orig_rax', -1n);
    return w;
  }

  /** Load `regs`, continue, wait for an int3 whose rip is one of `trapRips`; returns the registers there. */
  private runToTrap(regs: UserRegs, trapRips: readonly bigint[]): UserRegs {
    this.resume(regs);
    return this.waitTrap(trapRips);
  }

  private resume(regs: UserRegs): void {
    if (this.gone) throw new ThreadGoneError(`thread ${this.tid} is gone`);
    ptraceSetRegs(this.tid, regs);
    ptraceCont(this.tid, 0);
    this.atSyscallExit = false;
  }

  private waitTrap(trapRips: readonly bigint[]): UserRegs {
    for (;;) {
      const st = waitStop(this.tid);
      if (!st.stopped) {
        this.gone = true;
        throw new ThreadGoneError(
          `thread ${this.tid} of ${this.pid}: ${formatWaitStatus(st)} in injected code`,
        );
      }
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
        ptraceGetRegs(this.tid, this.out);
        const rip = this.out.rip;
        for (const r of trapRips) if (r === rip) return this.out;
      }
      this.signals.push(ptraceGetSiginfo(this.tid));
      ptraceCont(this.tid, 0);
    }
  }

  /** One syscall at `stubAddr` (a `syscall; int3`); rax, signed. */
  syscallAt(stubAddr: bigint, nr: number, args: readonly Arg[]): bigint {
    const w = this.prepare();
    w.set('rip', stubAddr);
    w.set('rax', nr);
    for (let i = 0; i < 6; i++) w.set(ARG_REGS[i] as (typeof ARG_REGS)[number], args[i] ?? 0);
    return this.runToTrap(w, [stubAddr + BigInt(STUB_TRAP)]).getSigned('rax');
  }

  /**
   * One syscall at `syscallAddr` run with PTRACE_SYSCALL to its exit stop (no int3 afterwards): used for
   * the last munmap of the scratch area, which cannot return into the code it unmaps.
   */
  syscallToExitStop(syscallAddr: bigint, nr: number, args: readonly Arg[]): bigint {
    const w = this.prepare();
    w.set('rip', syscallAddr);
    w.set('rax', nr);
    for (let i = 0; i < 6; i++) w.set(ARG_REGS[i] as (typeof ARG_REGS)[number], args[i] ?? 0);
    ptraceSetRegs(this.tid, w);
    let phase: 'entry' | 'exit' = 'entry';
    ptraceSyscall(this.tid, 0);
    for (;;) {
      const st = waitStop(this.tid);
      if (!st.stopped) {
        this.gone = true;
        throw new ThreadGoneError(`thread ${this.tid}: ${formatWaitStatus(st)} in its last syscall`);
      }
      if (st.event === 0 && st.stopSignal === (SIGTRAP | 0x80)) {
        if (phase === 'entry') {
          phase = 'exit';
          ptraceSyscall(this.tid, 0);
          continue;
        }
        this.atSyscallExit = true;
        return ptraceGetRegs(this.tid, this.out).getSigned('rax');
      }
      if (st.event === 0) this.signals.push(ptraceGetSiginfo(this.tid));
      ptraceSyscall(this.tid, 0);
    }
  }

  /** Run a table of syscalls (in chunks of the table size); stops at the first failure. */
  runBatch(s: ScratchLayout, calls: readonly Call[]): BatchResult {
    const results: bigint[] = [];
    for (let from = 0; from < calls.length; from += s.tableEntries) {
      const n = Math.min(s.tableEntries, calls.length - from);
      const fail = this.runChunk(s, calls, from, n, results);
      if (fail !== undefined) return { ok: false, results, failIndex: from + fail.index, errno: fail.errno };
    }
    return { ok: true, results };
  }

  private runChunk(
    s: ScratchLayout,
    calls: readonly Call[],
    from: number,
    n: number,
    results: bigint[],
  ): { index: number; errno: number } | undefined {
    const r = this.finishBatch(this.startBatch(s, calls.slice(from, from + n)));
    results.push(...r.results);
    return r.ok ? undefined : { index: r.failIndex ?? 0, errno: r.errno ?? 0 };
  }

  /**
   * Start a batch of at most one table of calls and return at once, the thread running it: criu-ts can
   * work meanwhile (restore fills memory from both ends). finishBatch() waits for it.
   */
  startBatch(s: ScratchLayout, calls: readonly Call[]): PendingBatch {
    const n = calls.length;
    if (n > s.tableEntries)
      throw new RestoreError(`batch of ${n} calls exceeds the table (${s.tableEntries})`);
    const buf = Buffer.alloc((n + 1) * ENTRY_SIZE);
    for (let i = 0; i < n; i++) {
      const c = calls[i] as Call;
      for (let j = 0; j < 7; j++)
        buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(c[j] ?? 0)), i * ENTRY_SIZE + j * 8);
    }
    buf.writeBigInt64LE(-1n, n * ENTRY_SIZE);
    vmWrite(this.tid, s.table, buf);
    const w = this.prepare();
    w.set('rip', s.code + BigInt(BATCH_ENTRY));
    w.set('rbx', s.table);
    this.resume(w);
    return { s, n, buf };
  }

  finishBatch(p: PendingBatch): BatchResult {
    const { s, n, buf } = p;
    const done = s.code + BigInt(BATCH_DONE_RIP);
    const out = this.waitTrap([done, s.code + BigInt(BATCH_FAIL_RIP)]);
    const ok = out.rip === done;
    const index = Number((out.rbx - s.table) / BigInt(ENTRY_SIZE));
    if (index < 0 || index > n || (ok && index !== n))
      throw new RestoreError(`batch in ${this.tid}: stopped at entry ${index} of ${n}`);
    const ran = ok ? n : index + 1;
    const results: bigint[] = [];
    if (ran > 0) vmRead(this.tid, s.table, buf, ran * ENTRY_SIZE);
    for (let i = 0; i < ran; i++) results.push(buf.readBigInt64LE(i * ENTRY_SIZE + RESULT_OFFSET));
    return ok ? { ok, results } : { ok, results, failIndex: index, errno: Number(-out.getSigned('rax')) };
  }
}

/** A batch started with startBatch(). */
export interface PendingBatch {
  readonly s: ScratchLayout;
  readonly n: number;
  readonly buf: Buffer;
}

export interface BatchResult {
  ok: boolean;
  /** rax of every entry that ran (signed). */
  results: bigint[];
  failIndex?: number;
  errno?: number;
}

/** The batch loop's size, for placing things after it in the code page. */
export const BATCH_CODE_SIZE = BATCH_CODE.length;
export { STUB_OFFSET };

/**
 * Injection in one restored task: a tracee plus the scratch layout, with a bump allocator for the data
 * area (reset by `resetData`) and helpers that name the failing call.
 */
export class Injector {
  private dataUsed = 0;
  constructor(
    readonly t: Tracee,
    readonly s: ScratchLayout,
  ) {}

  get tid(): number {
    return this.t.tid;
  }

  /** Copy `bytes` into the data area (8-byte aligned); returns their address in the task. */
  put(bytes: Buffer): bigint {
    const at = (this.dataUsed + 7) & ~7;
    if (at + bytes.length > this.s.dataSize)
      throw new RestoreError(`scratch data area full (${at + bytes.length} > ${this.s.dataSize} bytes)`);
    this.dataUsed = at + bytes.length;
    const addr = this.s.data + BigInt(at);
    if (bytes.length > 0) vmWrite(this.t.tid, addr, bytes);
    return addr;
  }

  /** Reserve `len` zeroed bytes (out-parameters). */
  reserve(len: number): bigint {
    return this.put(Buffer.alloc(len));
  }

  read(addr: bigint, len: number): Buffer {
    const b = Buffer.alloc(len);
    vmRead(this.t.tid, addr, b);
    return b;
  }

  resetData(): void {
    this.dataUsed = 0;
  }

  /** One syscall; throws a SysError naming it on failure. */
  call(what: string, nr: number, ...args: Arg[]): bigint {
    const r = this.t.syscallAt(this.s.code + BigInt(STUB_OFFSET), nr, args);
    if (r < 0n && r >= -4095n) throw new SysError(`${what} in pid ${this.t.tid}`, Number(-r));
    return r;
  }

  /** One syscall; returns rax (signed, -errno on failure). */
  syscall(nr: number, ...args: Arg[]): bigint {
    return this.t.syscallAt(this.s.code + BigInt(STUB_OFFSET), nr, args);
  }

  /**
   * A batch that must succeed entirely; `what(i)` names entry i for the error. Returns the results.
   * The data area is reset afterwards.
   */
  batch(calls: readonly Call[], what: (i: number) => string): bigint[] {
    try {
      const r = this.t.runBatch(this.s, calls);
      if (!r.ok) {
        const i = r.failIndex ?? 0;
        const nr = calls[i]?.[0] ?? -1;
        throw new SysError(`${what(i)} (${syscallName(nr) ?? nr}) in pid ${this.t.tid}`, r.errno ?? 0);
      }
      return r.results;
    } finally {
      this.resetData();
    }
  }

  /** A batch whose failures are tolerated: every entry runs; returns each result (-errno on failure). */
  batchTolerant(calls: readonly Call[]): bigint[] {
    const out: bigint[] = [];
    try {
      let from = 0;
      while (from < calls.length) {
        const r = this.t.runBatch(this.s, calls.slice(from));
        out.push(...r.results);
        if (r.ok) break;
        from += r.results.length;
      }
      return out;
    } finally {
      this.resetData();
    }
  }
}

/** How long waitStop polls before blocking in waitpid (see compel's remote-syscall.ts for why). */
const SPIN_MS = 1;

/** Wait for the next state change of a tracee. */
export function waitStop(tid: number): WaitStatus {
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
