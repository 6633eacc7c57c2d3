// What a task and each of its threads keep besides memory and files, put back once its fds are in
// place, by injected syscalls in the task (and in each thread for per-thread state). Each kind of state
// is its object's folder's; this file only says in which order they come, and why.

import { writeProcText } from '@criu-ts/bfd';
import type {
  SeccompFilter,
  SignalQueueEntry,
  TaskCoreEntry,
  ThreadCoreEntry,
  UserDescT,
} from '@criu-ts/images';
import { PR_SET_CHILD_SUBREAPER, PR_SET_NAME, PR_SET_PDEATHSIG, SYS } from '@criu-ts/sys';
import { credsCalls, restoreLoginuid } from '../creds/restore.js';
import { dumpableCall } from '../mm/restore.js';
import { tlsCalls } from '../registers/restore.js';
import { rlimitCalls } from '../rlimits/restore.js';
import { rseqCalls } from '../rseq/restore.js';
import { setSched } from '../sched/restore.js';
import { seccompCalls } from '../seccomp/restore.js';
import { flushesSigchld, pendingSignalCalls, sigactionCalls, sigaltstackCalls } from '../signals/restore.js';
import { itimerCalls, restorePosixTimers } from '../timers/restore.js';
import { Calls } from './calls.js';
import type { Call, Injector } from './inject.js';
import type { LiveTask, RestoreRun } from './live.js';

type Log = (msg: string) => void;

/**
 * Everything of task `lt` but memory, fds and registers: task-wide state, scheduling, each thread's
 * state; last the dumpable flag (new credentials reset it) and the helper pidfd goes. One batch per
 * thread: the task-wide calls go first in the leader's, the last ones at the end of the last thread's
 * (a task of one thread gets all of it in one round trip). Threads share the scratch data area, so
 * each thread's batch is built and run before the next one's.
 */
export function restoreState(run: RestoreRun, lt: LiveTask): void {
  const task = lt.plan;
  const warn = (m: string) => run.log.warn(m);
  // The loginuid is written by its own injected calls (which reset the data area): before any batch
  // is built in that thread.
  if (task.tc.loginuid !== undefined) restoreLoginuid(lt.main, task.pid, task.pid, task.tc.loginuid);
  let c = new Calls();
  taskStateCalls(lt.main, task.pid, task.tc, { flushSigchld: flushesSigchld(task), log: warn }, c);
  if (task.tc.timers?.posix?.length) {
    // POSIX timers are created one by one (their ids), after the task-wide batch.
    c.run(lt.main);
    restorePosixTimers(lt.main, task.pid, task.tc.timers.posix);
    c = new Calls();
  }
  if (task.tc.oom_score_adj !== undefined) {
    try {
      writeProcText(task.pid, 'oom_score_adj', String(task.tc.oom_score_adj));
    } catch (e) {
      run.log.warn(`pid ${task.pid}: oom_score_adj ${task.tc.oom_score_adj}: ${(e as Error).message}`);
    }
  }
  for (const th of task.threads) setSched(th.tid, th.core.thread_core!, warn);
  const lastIndex = task.threads.length - 1;
  for (const [i, th] of task.threads.entries()) {
    const inj = lt.threads[i]!.inj;
    if (i > 0) {
      if (task.tc.loginuid !== undefined) restoreLoginuid(inj, task.pid, th.tid, task.tc.loginuid);
      c = new Calls();
    }
    const tcore = th.core.thread_core!;
    threadStateCalls(
      inj,
      task.pid,
      th.tid,
      tcore,
      th.core.thread_info!.clear_tid_addr,
      th.core.thread_info!.tls ?? [],
      task.tc.comm,
      {
        ...(i === 0 && task.tc.signals_s ? { sharedSignals: task.tc.signals_s } : {}),
        seccomp: run.plan.seccomp,
      },
      c,
    );
    if (i === lastIndex) {
      // Process-wide, after every thread's credentials: any thread of the task may run them.
      const d = dumpableCall(task.mm!);
      if (d) c.add('prctl(PR_SET_DUMPABLE)', d);
      c.add('close of the helper pidfd', [SYS.close, lt.pidfd]);
    }
    c.run(inj);
  }
  run.log.debug(`restored pid ${task.pid}: ${task.threads.length} threads`);
}

/**
 * Task-wide state, run in the leader: signal actions, interval timers, resource limits, personality,
 * child-subreaper, membarrier registrations, added to `c` (POSIX timers are the caller's: see
 * restorePosixTimers).
 */
export function taskStateCalls(
  inj: Injector,
  pid: number,
  tc: TaskCoreEntry,
  opts: { flushSigchld: boolean; log: Log },
  c: Calls,
): void {
  sigactionCalls(inj, tc, opts.flushSigchld, c);
  itimerCalls(inj, tc.timers, c);
  rlimitCalls(inj, pid, tc.rlimits, c, opts.log);
  c.add('personality', [SYS.personality, tc.personality >>> 0]);
  if (tc.child_subreaper)
    c.add('prctl(PR_SET_CHILD_SUBREAPER)', [SYS.prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0]);
  // membarrier() registrations: each bit of the mask is the command that registered it.
  const mb = tc.membarrier_registration_mask ?? 0;
  for (let bit = 0; bit < 32; bit++)
    if (mb & (1 << bit)) c.add(`membarrier(1 << ${bit})`, [SYS.membarrier, 1 << bit, 0, 0]);
}

/**
 * Per-thread state, run in that thread, added to `c`: everything but registers and the signal mask (and
 * the loginuid, which restoreState writes before). Pending signals, seccomp, creds and the
 * parent-death signal last, in that order (as CRIU's restorer): a seccomp filter and the loginuid need
 * capabilities the dumped creds may lack, and new ids clear the parent-death signal.
 */
export function threadStateCalls(
  inj: Injector,
  pid: number,
  tid: number,
  th: ThreadCoreEntry,
  clearTidAddr: bigint,
  tls: UserDescT[],
  fallbackComm: string,
  opts: { sharedSignals?: SignalQueueEntry; seccomp: SeccompFilter[]; extra?: Call[] },
  c: Calls,
): void {
  sigaltstackCalls(inj, th, c);
  c.add('set_tid_address', [SYS.set_tid_address, clearTidAddr]);
  if (th.futex_rla !== 0n) c.add('set_robust_list', [SYS.set_robust_list, th.futex_rla, th.futex_rla_len]);
  rseqCalls(th.rseq_entry, c);
  const comm = Buffer.alloc(16);
  comm.write((th.comm ?? fallbackComm).slice(0, 15), 'utf8');
  c.add('prctl(PR_SET_NAME)', [SYS.prctl, PR_SET_NAME, inj.put(comm), 0, 0, 0]);
  tlsCalls((b) => inj.put(b), tls, c);
  for (const x of opts.extra ?? []) c.add(`call ${x[0]}`, x);
  pendingSignalCalls(inj, th.signals_p, c, pid, tid);
  pendingSignalCalls(inj, opts.sharedSignals, c, pid);
  seccompCalls(inj, th, opts.seccomp, c);
  // Credentials after seccomp (a filter without no_new_privs needs CAP_SYS_ADMIN, which the dumped
  // credentials may lack); the parent-death signal after them (changing ids clears it).
  if (th.creds) credsCalls(inj, th.creds, c);
  if (th.pdeath_sig) c.add('prctl(PR_SET_PDEATHSIG)', [SYS.prctl, PR_SET_PDEATHSIG, th.pdeath_sig, 0, 0, 0]);
}
