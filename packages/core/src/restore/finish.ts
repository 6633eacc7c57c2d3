// The last steps, once every task is restored: each leader unmaps the scratch area (it cannot return
// into it, so it stops at the syscall's exit), every thread gets its registers, FPU state and signal
// mask (they resume as the images have them); then all threads are let go together (stopped tasks get
// their stop signal first), under a death guard (guard.ts). And cleanup, for a restore that fails on the
// way.

import { procExists, readStat } from '@criu-ts/bfd';
import { __WALL, isSysError, kill, ptraceDetach, raw, SIGKILL, SYS, WNOHANG, waitpid } from '@criu-ts/sys';
import { loadRegisters } from '../registers/restore.js';
import { stopSignalOf } from '../signals/restore.js';
import { RestoreError } from './errors.js';
import { DeathGuard } from './guard.js';
import type { RestoreRun } from './live.js';

/**
 * Registers in every thread, then every thread detached: the tree runs. `beforeLetGo` runs once every
 * thread is ready and none runs yet (the pre-resume hook); its throw leaves them all to killAll.
 */
export function letTheTreeRun(run: RestoreRun, beforeLetGo?: () => void): void {
  const s = run.s;
  for (const lt of run.live.values()) {
    const leader = lt.threads[0]!;
    const r = leader.t.syscallToExitStop(s.code + 0x38n, SYS.munmap, [s.base, s.size]);
    if (r !== 0n) throw new RestoreError(`pid ${lt.plan.pid}: munmap of the scratch area: errno ${-r}`);
    for (const [i, th] of lt.plan.threads.entries()) {
      const tid = lt.threads[i]!.tid;
      const core = th.core;
      const mask = core.thread_core?.blk_sigset ?? (tid === lt.plan.pid ? lt.plan.tc.blk_sigset : 0n);
      loadRegisters(tid, core, mask);
    }
  }
  beforeLetGo?.();
  // Everybody is ready: let them all go, under a guard that kills those already going if criu-ts dies
  // before the last one goes.
  const guard = run.guard ?? DeathGuard.start();
  run.guard = undefined;
  guard.arm([...run.live.keys()]);
  try {
    for (const lt of run.live.values()) {
      if (lt.plan.state === 'stopped') kill(lt.plan.pid, stopSignalOf(lt.plan));
      for (const th of [...lt.threads].reverse()) {
        ptraceDetach(th.tid, 0);
        run.traced.delete(th.tid);
      }
    }
  } finally {
    guard.disarm();
  }
  run.live.clear();
}

/** SIGKILL every task created and collect every exit; reap what ends up as our child. */
export function killAll(run: RestoreRun): void {
  run.cgroups.close();
  run.guard?.disarm();
  run.guard = undefined;
  const pids = [...run.created];
  if (run.stub) pids.unshift(run.stub.pid);
  for (const pid of pids) {
    try {
      kill(pid, SIGKILL);
    } catch {
      // gone
    }
  }
  const deadline = process.uptime() * 1000 + 10_000;
  const pending = new Set<number>([...pids, ...run.traced]);
  while (pending.size > 0 && process.uptime() * 1000 < deadline) {
    for (const id of [...pending]) {
      try {
        const st = waitpid(id, __WALL | WNOHANG);
        // Dead and reaped; or dead and another's to reap: a --restore-sibling root is our parent's
        // (a task whose parent we created waits for that parent to die and comes to us).
        if (st && (st.exited || st.signaled) && (!existsProc(id) || parentOf(id) === process.ppid))
          pending.delete(id);
      } catch (e) {
        if (!isSysError(e, 'ECHILD')) throw e;
        if (!existsProc(id)) pending.delete(id);
      }
    }
    if (pending.size) raw.syscall(SYS.sched_yield);
  }
  if (pending.size) run.log.warn(`cleanup: ${[...pending].join(' ')} still there`);
  run.created.length = 0;
  run.traced.clear();
  run.live.clear();
}

function parentOf(id: number): number {
  return readStat(id)?.ppid ?? 0;
}

function existsProc(id: number): boolean {
  return procExists(id);
}
