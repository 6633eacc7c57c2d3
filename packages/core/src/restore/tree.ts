// Creating the tasks and threads with the ids they had: clone3 with set_tid, injected into the parent
// (the stub for the root, with CLONE_PARENT so the root becomes criu-ts's child), auto-attached thanks to
// PTRACE_O_TRACEFORK/CLONE. Sessions are made by setsid() right after a session leader is born (before it
// forks its session's members), process groups by setpgid() once everybody exists, leaders first.

import { readStat } from '@criu-ts/bfd';
import { killAndReap } from '@criu-ts/compel';
import {
  CLONE_ARGS_SIZE_VER2,
  CLONE_FILES,
  CLONE_FS,
  CLONE_PARENT,
  CLONE_SIGHAND,
  CLONE_SYSVSEM,
  CLONE_THREAD,
  CLONE_VM,
  encodeCloneArgs,
  formatWaitStatus,
  PTRACE_EVENT_STOP,
  ptraceCont,
  SIGCHLD,
  SYS,
  vmWrite,
} from '@criu-ts/sys';
import { makeZombie } from '../zombie/restore.js';
import { RestoreError } from './errors.js';
import { HelperProcesses } from './helpers.js';
import { type Call, Injector, Tracee, waitStop } from './inject.js';
import type { RestoreRun } from './live.js';
import type { TaskPlan } from './plan.js';

export const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;

export type CloneKind = 'root' | 'child' | 'thread';

/**
 * clone3(set_tid = [id]) in the task `inj` runs in; returns the new task or thread, stopped in its first
 * PTRACE_EVENT_STOP. EEXIST (the id was taken meanwhile) is a clear error. `extraFlags`: CLONE_FILES for a
 * child sharing its parent's fd table.
 */
export function cloneWithId(
  inj: Injector,
  pid: number,
  id: number,
  kind: CloneKind,
  extraFlags = 0n,
): Tracee {
  const flags = (kind === 'root' ? CLONE_PARENT : kind === 'thread' ? THREAD_FLAGS : 0n) | extraFlags;
  // exit_signal must be 0 with CLONE_PARENT (the child inherits the caller's) and with CLONE_THREAD.
  const exitSignal = kind === 'child' ? SIGCHLD : 0;
  const r = clone3(inj, flags, exitSignal, [id]);
  const born = inj.t.takeBorn();
  if (r < 0n)
    throw new RestoreError(`cannot create ${kind === 'thread' ? 'thread' : 'pid'} ${id}: ${cloneErrno(r)}`);
  if (Number(r) !== id || !born.includes(id))
    throw new RestoreError(`clone3 made ${r} instead of ${id} (reported: ${born.join(',') || 'nothing'})`);
  waitFirstStop(id);
  return new Tracee(kind === 'thread' ? pid : id, id);
}

/** Why clone3 with set_tid failed, in words. */
function cloneErrno(r: bigint): string {
  return r === -17n
    ? 'it is in use'
    : r === -1n
      ? 'EPERM (choosing pids needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN: run as root)'
      : `errno ${-r}`;
}

/**
 * A child of the task `inj` runs in, with whatever pid the kernel gives: a helper that lives only
 * while criu-ts opens something on it. Returned stopped in its first PTRACE_EVENT_STOP.
 */
export function cloneHelper(inj: Injector): number {
  const r = clone3(inj, 0n, SIGCHLD, []);
  inj.t.takeBorn();
  if (r < 0n) throw new RestoreError(`cannot create a helper process: errno ${-r}`);
  waitFirstStop(Number(r));
  return Number(r);
}

function clone3(inj: Injector, flags: bigint, exitSignal: number, setTid: number[]): bigint {
  const at = inj.reserve(CLONE_ARGS_SIZE_VER2 + 8);
  const args = encodeCloneArgs({ flags, exitSignal, setTid }, { base: at });
  vmWrite(inj.tid, at, args);
  const r = inj.syscall(SYS.clone3, at, CLONE_ARGS_SIZE_VER2);
  inj.resetData();
  return r;
}

/** A new task, auto-attached, runs to its first PTRACE_EVENT_STOP. */
function waitFirstStop(id: number): void {
  for (;;) {
    const st = waitStop(id);
    if (!st.stopped) throw new RestoreError(`new task ${id}: ${formatWaitStatus(st)}`);
    if (st.event === PTRACE_EVENT_STOP) break;
    ptraceCont(id, 0);
  }
}

/** Whether `task` shares its parent's fd table (CLONE_FILES): created with it, restored by the parent. */
export function sharesFds(task: TaskPlan): boolean {
  const fid = task.ids?.files_id;
  return fid !== undefined && task.parent?.ids?.files_id === fid;
}

/**
 * Make the tree: every task with its pid, parents first, from the stub (the root) or its parent; a
 * session leader calls setsid() as soon as it exists (before it forks the session's members); each
 * task joins its cgroups. `restoreMemory` restores a parent's memory before its first child is forked.
 * Then the stub goes, process groups are made (leaders first) and zombies exit.
 */
export function makeTree(run: RestoreRun, restoreMemory: (task: TaskPlan) => void): void {
  const { plan, cgroups } = run;
  const s = run.s;
  const byPid = new Map<number, Tracee>();
  for (const task of plan.tasks) {
    const parent = task.parent ? byPid.get(task.parent.pid) : run.stub;
    if (!parent) throw new RestoreError(`parent of ${task.pid} was not created`);
    // A parent's memory is in place before it forks: its children inherit its private pages and
    // share those they still had in common at the dump (copy-on-write), as CRIU restores them.
    // Not a parent that shares its fd table (CLONE_FILES) with its parent or a child: a task sharing
    // one is restored once the task that fills the table has, its memory with it.
    const p = task.parent;
    if (p && !sharesFds(p) && !p.children.some(sharesFds)) restoreMemory(p);
    let t: Tracee;
    if (!task.parent && run.sibling) {
      t = parent; // the stub was born with the root's pid, as our sibling: it is the root
    } else {
      const kind = task.parent ? 'child' : 'root';
      t = cloneWithId(
        new Injector(parent, s),
        parent.pid,
        task.pid,
        kind,
        sharesFds(task) ? CLONE_FILES : 0n,
      );
      run.created.push(task.pid);
    }
    run.traced.add(task.pid);
    byPid.set(task.pid, t);
    if (task.state !== 'zombie') {
      const main = new Injector(t, s);
      run.live.set(task.pid, { plan: task, main, threads: [{ tid: task.pid, t, inj: main }], pidfd: -1 });
    }
    if (task.sid === task.pid) new Injector(t, s).call(`setsid in ${task.pid}`, SYS.setsid);
    cgroups.place(task.pid, task.threads[0]?.core.thread_core?.cg_set, task.parent?.pid);
    run.log.debug(`created ${task.pid}${task.parent ? ` (child of ${task.parent.pid})` : ''}`);
  }
  // The stub is not needed any more; the root is our child now (CLONE_PARENT), or was the stub.
  if (!run.sibling) {
    run.traced.delete(run.stub!.tid);
    killAndReap(run.stub!.pid);
  }
  run.stub = undefined;
  run.helpers = undefined;
  makeProcessGroups(run, byPid);
  for (const task of plan.tasks) if (task.state === 'zombie') makeZombie(run, byPid.get(task.pid)!, task);
}

/**
 * Process groups: leaders first, then their members (all in their session by now). A group whose
 * leader had died is made by a helper with its pid, a child of its first member (helpers.ts).
 */
function makeProcessGroups(run: RestoreRun, byPid: Map<number, Tracee>): void {
  const { plan } = run;
  const s = run.s;
  const inTree = new Set([...plan.tasks.map((t) => t.pid), ...plan.pgidHelpers]);
  for (const pgid of plan.pgidHelpers) {
    const first = plan.tasks.find((t) => t.pgid === pgid)!;
    const member = byPid.get(first.pid)!;
    new HelperProcesses(member, s, run.traced).withPid(pgid, () => {
      const inj = new Injector(member, s);
      inj.call(`setpgid of the helper for group ${pgid}`, SYS.setpgid, pgid, pgid);
      inj.call(`setpgid(${pgid}) in ${first.pid}`, SYS.setpgid, 0, pgid);
    });
    run.log.debug(`group ${pgid} made again by a helper for ${first.pid}`);
  }
  const order = [...plan.tasks].sort((a, b) => Number(b.pgid === b.pid) - Number(a.pgid === a.pid));
  for (const task of order) {
    if (!inTree.has(task.pgid)) continue; // --shell-job: the caller's group
    if (pgidOf(task.pid) === task.pgid) continue;
    new Injector(byPid.get(task.pid)!, s).call(
      `setpgid(${task.pgid}) in ${task.pid}`,
      SYS.setpgid,
      0,
      task.pgid,
    );
  }
}

/**
 * The task's other threads, each with its tid, made by the leader: one batch of clone3 calls in the
 * task (one round trip, plus the clone event of each), then each new thread's first stop.
 */
export function makeThreads(run: RestoreRun, pid: number): void {
  const lt = run.task(pid);
  const rest = lt.plan.threads.slice(1);
  if (rest.length === 0) return;
  const made = cloneThreads(
    lt.main,
    pid,
    rest.map((th) => th.tid),
  );
  for (const [i, t] of made.entries()) {
    const th = rest[i]!;
    run.traced.add(th.tid);
    lt.threads.push({ tid: th.tid, t, inj: new Injector(t, run.s) });
    run.cgroups.placeThread(pid, th.tid, th.core.thread_core?.cg_set);
  }
}

/**
 * clone3(CLONE_THREAD, set_tid = [tid]) for each of `tids`, in one batch in the task `inj` runs in;
 * the new threads, each stopped in its first PTRACE_EVENT_STOP. A clone that fails ends the batch:
 * the threads made before it are waited for, then its error is thrown.
 */
function cloneThreads(inj: Injector, pid: number, tids: number[]): Tracee[] {
  const calls: Call[] = [];
  for (const tid of tids) {
    const at = inj.reserve(CLONE_ARGS_SIZE_VER2 + 8);
    vmWrite(
      inj.tid,
      at,
      encodeCloneArgs({ flags: THREAD_FLAGS, exitSignal: 0, setTid: [tid] }, { base: at }),
    );
    calls.push([SYS.clone3, at, CLONE_ARGS_SIZE_VER2]);
  }
  let results: bigint[];
  try {
    results = inj.t.runBatch(inj.s, calls).results;
  } finally {
    inj.resetData();
  }
  const born = inj.t.takeBorn();
  const out: Tracee[] = [];
  for (const [i, r] of results.entries()) {
    const tid = tids[i]!;
    if (r < 0n) throw new RestoreError(`cannot create thread ${tid}: ${cloneErrno(r)}`);
    if (Number(r) !== tid || !born.includes(tid))
      throw new RestoreError(`clone3 made ${r} instead of ${tid} (reported: ${born.join(',') || 'nothing'})`);
    waitFirstStop(tid);
    out.push(new Tracee(pid, tid));
  }
  if (out.length !== tids.length)
    throw new RestoreError(`cannot create thread ${tids[out.length]}: the clone batch stopped early`);
  return out;
}

function pgidOf(pid: number): number {
  const s = readStat(pid);
  if (s === undefined) throw new RestoreError(`pid ${pid}: gone before its process group could be read`);
  return s.pgrp;
}
