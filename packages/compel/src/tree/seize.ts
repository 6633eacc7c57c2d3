// Seizing a whole process tree: every thread of every task, stopped with PTRACE_SEIZE + PTRACE_INTERRUPT,
// with threads and children that appear meanwhile, tasks that exit, zombies (left alone), tasks in a
// group stop and tasks sleeping in syscalls. And letting it go again exactly as it was.
//
// The walk goes parents first. A task's children are listed only once all of its threads are stopped,
// and a task's threads are listed again until no new one appears: a stopped thread creates nothing, and
// a clone() that a PTRACE_INTERRUPT races with either completes (the new thread is listed) or is
// restarted. A last pass lists every task's threads and children again (a child can add a sibling with
// CLONE_PARENT) until nothing changes.
//
// Everything here is synchronous and must run on one thread: ptrace belongs to the thread that attached.
import {
  __WALL,
  isSysError,
  kill,
  PTRACE_EVENT_STOP,
  PTRACE_O_EXITKILL,
  PTRACE_O_SUSPEND_SECCOMP,
  PTRACE_O_TRACESYSGOOD,
  ptraceCont,
  ptraceDetach,
  ptraceInterrupt,
  ptraceSeize,
  ptraceSetRegs,
  SIGKILL,
  type Siginfo,
  type WaitStatus,
  WNOHANG,
  waitpid,
} from '@criu-ts/sys';
import { CompelError } from '../errors.js';
import { childrenOf, isDeadOrZombie, readStat, readStatus, stateOf, threadsOf } from '../util/proc.js';
import { Backoff } from '../util/wait.js';
import { CgroupFreezer } from './freezer.js';
import { holdSignal, redeliverSignal, settleHeldSignals } from './signals.js';
import { type SeizedTask, TracedTask, TracedThread } from './task.js';

export interface SeizeOptions {
  /**
   * Freeze this cgroup first (cgroup v2 directory, absolute or relative to the cgroup2 mount; a v1
   * freezer directory works too), seize every task while frozen, then thaw.
   */
  freezeCgroup?: string;
  /** Give up (and let go of everything seized so far) after this long. Default 10 s. */
  timeoutMs?: number;
  /** PTRACE_O_EXITKILL: SIGKILL the tasks if this process dies while they are seized. Default false. */
  exitKill?: boolean;
}

/** Something that must be undone in a task before its threads are detached (an infected parasite). */
export interface Curable {
  readonly pid: number;
  readonly cured: boolean;
  cure(): void;
}

/**
 * A seized tree. `tasks` lists parents before children. Every thread is in a ptrace stop and stays there
 * until release() (or killAll()).
 */
export class SeizedTree {
  readonly root: number;
  readonly tasks: SeizedTask[];
  /** Threads that vanished or tasks that exited while the tree was seized (for statistics). */
  readonly vanished: number;
  /** Time spent, in ms: freezing (0 without a cgroup) and the whole seize. */
  readonly timings: { freezeMs: number; seizeMs: number };
  private readonly all: TracedTask[];
  private readonly byPid: Map<number, TracedTask>;
  private readonly parasites = new Set<Curable>();
  private done = false;

  /** @internal use seizeTree() */
  constructor(
    root: number,
    tasks: TracedTask[],
    vanished: number,
    timings: { freezeMs: number; seizeMs: number },
  ) {
    this.root = root;
    this.tasks = tasks;
    this.all = tasks;
    this.vanished = vanished;
    this.timings = timings;
    this.byPid = new Map(tasks.map((t) => [t.pid, t]));
  }

  /** The task with this pid; throws if it is not part of the tree. */
  task(pid: number): SeizedTask {
    return this.traced(pid);
  }

  /** @internal the mutable record of a task */
  traced(pid: number): TracedTask {
    const t = this.byPid.get(pid);
    if (t === undefined)
      throw new CompelError(`pid ${pid} is not part of the seized tree of ${this.root}`, pid);
    return t;
  }

  /** True once release() or killAll() ran. */
  get released(): boolean {
    return this.done;
  }

  /** @internal register a parasite, cured by release() if its owner forgot. */
  attach(p: Curable): void {
    this.assertSeized();
    this.parasites.add(p);
  }

  /** @internal */
  detachParasite(p: Curable): void {
    this.parasites.delete(p);
  }

  /** @internal */
  assertSeized(): void {
    if (this.done) throw new CompelError(`the tree of ${this.root} was already released`, this.root);
  }

  /**
   * Let every task go exactly as it was: parasites cured, registers put back (so that a syscall the
   * thread was stopped in is restarted by the kernel on resume), suppressed signals queued again, then
   * PTRACE_DETACH. A group-stopped task goes back to its group stop (state T); zombies were never
   * touched. Children are released before their parents. Every thread is attempted; the first error is
   * thrown at the end.
   */
  release(): void {
    if (this.done) return;
    let first: unknown;
    for (const p of [...this.parasites]) {
      try {
        if (!p.cured) p.cure();
      } catch (e) {
        first ??= e;
      }
    }
    this.parasites.clear();
    this.done = true;
    const stopped: TracedTask[] = [];
    for (let i = this.all.length - 1; i >= 0; i--) {
      const task = this.all[i] as TracedTask;
      for (const th of task.threads) {
        try {
          releaseThread(th);
        } catch (e) {
          first ??= e;
        }
      }
      if (task.state === 'stopped') stopped.push(task);
    }
    // A detached task whose group stop is still in effect re-enters it by itself (the kernel sets
    // JOBCTL_STOP_PENDING again in __ptrace_unlink), but asynchronously: wait until /proc shows T, so
    // that the caller sees the task as it was. Bounded, and not an error: a SIGCONT may have come.
    const backoff = new Backoff(2000, 2);
    for (const t of stopped) {
      while (stateOf(t.pid) === 't' || stateOf(t.pid) === 'R') if (!backoff.wait()) break;
    }
    if (first !== undefined) throw first;
  }

  /**
   * SIGKILL every task (a dump without --leave-running) and collect the exits of all seized threads, so
   * nothing stays traced or half-reaped. Tasks that were our own children (the root started with
   * startTraceable, orphans re-parented to this subreaper) are reaped.
   */
  killAll(timeoutMs = 10_000): void {
    if (this.done) return;
    this.parasites.clear();
    this.done = true;
    // Signals held back for tasks that die now are not delivered again.
    settleHeldSignals(
      this.all.reduce((n, t) => n + t.threads.reduce((m, th) => m + th.signals.length, 0), 0),
    );
    for (const t of this.all) {
      if (t.state === 'zombie') continue;
      try {
        kill(t.pid, SIGKILL);
      } catch (e) {
        if (!isSysError(e, 'ESRCH')) throw e;
      }
    }
    const pending = new Set<number>();
    for (const t of this.all) for (const th of t.threads) if (!th.gone) pending.add(th.tid);
    const backoff = new Backoff(timeoutMs, 10);
    while (pending.size > 0) {
      let progressed = false;
      for (const tid of pending) {
        let st: WaitStatus | null;
        try {
          st = waitpid(tid, __WALL | WNOHANG);
        } catch (e) {
          if (!isSysError(e, 'ECHILD')) throw e;
          st = null;
          if (stateOf(tid) === undefined) {
            pending.delete(tid);
            progressed = true;
          }
          continue;
        }
        if (st !== null && (st.exited || st.signaled)) {
          pending.delete(tid);
          progressed = true;
        }
      }
      if (progressed) backoff.reset();
      else if (pending.size > 0 && !backoff.wait()) {
        throw new CompelError(`killAll: threads ${[...pending].join(' ')} did not exit`, this.root);
      }
    }
    for (const t of this.all) for (const th of t.threads) th.gone = true;
    // Zombies whose parent just died may have been re-parented to us (we are a subreaper): reap them.
    for (const t of this.all) {
      if (t.state !== 'zombie') continue;
      try {
        waitpid(t.pid, __WALL | WNOHANG);
      } catch (e) {
        if (!isSysError(e, 'ECHILD')) throw e;
      }
    }
  }
}

function releaseThread(th: TracedThread): void {
  if (th.gone) {
    settleHeldSignals(th.signals.splice(0).length);
    return;
  }
  try {
    if (th.dirty || th.rseqAbort !== undefined) ptraceSetRegs(th.tid, th.finalRegs());
    th.dirty = false;
    for (const info of th.signals.splice(0)) redeliverSignal(th.pid, th.tid, info);
    ptraceDetach(th.tid, 0);
  } catch (e) {
    if (isSysError(e, 'ESRCH') && isDeadOrZombie(th.pid, th.tid)) return; // died meanwhile (SIGKILL)
    throw e;
  } finally {
    th.gone = true;
  }
}

/** A thread that was seized and interrupted, whose stop has not been seen yet. */
interface Pending {
  pid: number;
  tid: number;
  signals: Siginfo[];
}

class Seizer {
  readonly threads = new Map<number, TracedThread>();
  readonly tasks = new Map<number, TracedTask>();
  readonly order: number[] = [];
  /** tids that we attached to (stopped or pending). */
  private readonly attached = new Set<number>();
  private readonly pending = new Map<number, Pending>();
  /** tids found dead or zombie: not seizable, not to be tried again. */
  private readonly dead = new Set<number>();
  vanished = 0;

  constructor(
    readonly options: number,
    readonly backoffFor: () => Backoff,
  ) {}

  /** PTRACE_SEIZE + PTRACE_INTERRUPT one thread. False when it is gone (or a zombie). */
  seizeThread(pid: number, tid: number): boolean {
    if (this.attached.has(tid)) return true;
    // Our own process cannot be seized (EPERM): say why, as CRIU does.
    if (pid === process.pid)
      throw new CompelError(`The criu itself is within dumped tree: criu-ts is pid ${pid} of it`, pid);
    try {
      ptraceSeize(tid, this.options);
    } catch (e) {
      if (isSysError(e, 'ESRCH') || (isSysError(e, 'EPERM') && isDeadOrZombie(pid, tid))) {
        this.dead.add(tid); // gone, or a zombie (which cannot be traced and is left alone)
        if (isSysError(e, 'ESRCH')) this.vanished++;
        return false;
      }
      if (isSysError(e, 'EPERM')) {
        const tracer = tracerOf(pid, tid);
        if (tracer !== 0)
          throw new CompelError(`thread ${tid} of ${pid} is already traced by ${tracer}`, tid);
      }
      throw e;
    }
    this.attached.add(tid);
    this.pending.set(tid, { pid, tid, signals: [] });
    try {
      ptraceInterrupt(tid);
    } catch (e) {
      if (!isSysError(e, 'ESRCH')) throw e; // died right away: waitpid reports the exit
    }
    return true;
  }

  /**
   * Wait until every pending thread stopped (or died). A signal-delivery-stop seen first is recorded,
   * suppressed (continued with 0: the pending interrupt stops the thread before it runs user code) and
   * delivered again at release.
   */
  collect(): void {
    const backoff = this.backoffFor();
    while (this.pending.size > 0) {
      let progressed = false;
      for (const p of [...this.pending.values()]) {
        let st: WaitStatus | null;
        try {
          st = waitpid(p.tid, __WALL | WNOHANG);
        } catch (e) {
          if (!isSysError(e, 'ECHILD')) throw e;
          st = null;
          if (stateOf(p.pid, p.tid) === undefined) this.drop(p);
          continue;
        }
        if (st === null) continue;
        progressed = true;
        if (st.exited || st.signaled) {
          this.drop(p);
        } else if (st.stopped && st.event === PTRACE_EVENT_STOP) {
          let th: TracedThread;
          try {
            th = new TracedThread(p.pid, p.tid, st.stopSignal, p.signals);
          } catch (e) {
            if (!isSysError(e, 'ESRCH')) throw e;
            this.drop(p); // SIGKILLed right after it stopped
            continue;
          }
          this.pending.delete(p.tid);
          this.threads.set(p.tid, th);
        } else if (st.stopped && st.event === 0) {
          holdSignal(p.signals, p.pid, p.tid);
          ptraceCont(p.tid, 0);
        } else if (st.stopped) {
          ptraceCont(p.tid, 0); // an event we did not ask for
        }
      }
      if (progressed) backoff.reset();
      else if (this.pending.size > 0 && !backoff.wait()) {
        const what = [...this.pending.values()].map((p) => `${p.tid} (${stateOf(p.pid, p.tid) ?? 'gone'})`);
        throw new CompelError(
          `seize: threads did not stop within ${backoff.timeoutMs} ms: ${what.join(', ')}`,
          this.pending.values().next().value?.pid,
        );
      }
    }
  }

  private drop(p: Pending): void {
    this.pending.delete(p.tid);
    this.attached.delete(p.tid);
    this.dead.add(p.tid);
    this.vanished++;
  }

  /** Seize every thread of `pid`, listing again until no new thread appears. Returns the new tids. */
  seizeThreadsOf(pid: number): number {
    let added = 0;
    for (;;) {
      const fresh = threadsOf(pid).filter((tid) => !this.attached.has(tid) && !this.dead.has(tid));
      if (fresh.length === 0) return added;
      for (const tid of fresh) if (this.seizeThread(pid, tid)) added++;
      this.collect();
    }
  }

  /** Seize a task's threads and record it. Returns the task, or undefined when it vanished. */
  visit(pid: number): TracedTask | undefined {
    const known = this.tasks.get(pid);
    if (known !== undefined) return known;
    this.seizeThreadsOf(pid);
    const threads = [...this.threads.values()].filter((t) => t.pid === pid);
    const stat = readStat(pid);
    if (stat === undefined) return undefined;
    const task = new TracedTask(pid);
    task.ppid = stat.ppid;
    task.pgid = stat.pgrp;
    task.sid = stat.session;
    if (threads.length === 0) {
      if (stat.state !== 'Z') {
        this.vanished++;
        return undefined; // exited between the listing and now
      }
      task.state = 'zombie';
    } else {
      threads.sort((a, b) => (a.tid === pid ? -1 : b.tid === pid ? 1 : a.tid - b.tid));
      task.threads = threads;
      task.children = childrenOf(pid).sort((a, b) => a - b);
      task.state = threads.some((t) => t.groupStop) ? 'stopped' : 'running';
    }
    this.tasks.set(pid, task);
    this.order.push(pid);
    return task;
  }

  /** Breadth-first from `queue`, parents before children. */
  walk(queue: number[]): void {
    while (queue.length > 0) {
      const pid = queue.shift() as number;
      if (this.tasks.has(pid)) continue;
      const task = this.visit(pid);
      if (task !== undefined) queue.push(...task.children);
    }
  }

  /** List threads and children of every task again until nothing new shows up. */
  converge(): void {
    for (;;) {
      let changed = false;
      for (const pid of [...this.order]) {
        const task = this.tasks.get(pid) as TracedTask;
        if (task.state === 'zombie') continue;
        if (this.seizeThreadsOf(pid) > 0) {
          changed = true;
          const have = new Set(task.threads.map((t) => t.tid));
          for (const th of this.threads.values())
            if (th.pid === pid && !have.has(th.tid)) task.threads.push(th);
        }
        const children = childrenOf(pid).sort((a, b) => a - b);
        const fresh = children.filter((c) => !this.tasks.has(c));
        if (fresh.length > 0 || children.length !== task.children.length) {
          task.children = children;
          if (fresh.length > 0) {
            changed = true;
            this.walk(fresh);
          }
        }
      }
      if (!changed) return;
    }
  }

  /** While frozen: seize and interrupt every thread of every task found under `root`, without waiting. */
  seizeFrozen(root: number): void {
    const seen = new Set<number>();
    const queue = [root];
    while (queue.length > 0) {
      const pid = queue.shift() as number;
      if (seen.has(pid)) continue;
      seen.add(pid);
      for (const tid of threadsOf(pid)) this.seizeThread(pid, tid);
      queue.push(...childrenOf(pid));
    }
  }

  /** Undo: detach every stopped thread (nothing was changed in them), re-queue suppressed signals. */
  abandon(): void {
    for (const th of this.threads.values()) {
      try {
        releaseThread(th);
      } catch {
        // best effort: the error that made us give up is the one reported
      }
    }
    // Threads that never stopped cannot be detached (PTRACE_DETACH needs a stopped tracee); give them a
    // last chance to stop now, then let go.
    for (const p of this.pending.values()) {
      try {
        const st = waitpid(p.tid, __WALL | WNOHANG);
        if (st?.stopped) {
          for (const info of p.signals) redeliverSignal(p.pid, p.tid, info);
          ptraceDetach(p.tid, 0);
        }
      } catch {
        // gone
      }
    }
  }
}

function tracerOf(pid: number, tid: number): number {
  try {
    return readStatus(pid, tid)?.tracerPid ?? 0;
  } catch {
    return 0;
  }
}

/**
 * Seize the tree rooted at `rootPid`: every thread of every task, stopped. With `freezeCgroup`, the
 * cgroup is frozen first, every task is seized and interrupted while frozen, and the cgroup is thawed
 * again before this returns (the tasks stay stopped in ptrace). On any error, what was seized is
 * released again and the error is thrown.
 */
export function seizeTree(rootPid: number, opts: SeizeOptions = {}): SeizedTree {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const t0 = process.uptime() * 1000;
  // TRACESYSGOOD: syscall stops (used only by remoteSyscallNoTrap) are told apart from a real SIGTRAP.
  const options = PTRACE_O_SUSPEND_SECCOMP | PTRACE_O_TRACESYSGOOD | (opts.exitKill ? PTRACE_O_EXITKILL : 0);
  const deadline = t0 + timeoutMs;
  const s = new Seizer(options, () => new Backoff(Math.max(1, deadline - process.uptime() * 1000)));
  let freezeMs = 0;
  try {
    if (opts.freezeCgroup !== undefined) {
      const freezer = new CgroupFreezer(opts.freezeCgroup);
      freezer.freeze(timeoutMs);
      freezeMs = process.uptime() * 1000 - t0;
      try {
        s.seizeFrozen(rootPid);
      } finally {
        freezer.thaw();
      }
      s.collect();
    }
    s.walk([rootPid]);
    if (!s.tasks.has(rootPid)) throw new CompelError(`seize: process ${rootPid} does not exist`, rootPid);
    s.converge();
  } catch (e) {
    s.abandon();
    throw e;
  }
  const tasks = s.order.map((pid) => s.tasks.get(pid) as TracedTask);
  return new SeizedTree(rootPid, tasks, s.vanished, { freezeMs, seizeMs: process.uptime() * 1000 - t0 });
}
