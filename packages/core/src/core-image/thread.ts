import {
  type CoreEntry,
  CoreEntryMarch,
  type CredsEntry,
  type RseqEntry,
  type SaEntry,
  type TaskCoreEntry,
  type ThreadCoreEntry,
} from '@criu-ts/images';
import type { UserRegs } from '@criu-ts/sys';
import { fpregsToImage, gpregsToImage, resumableRegs } from '../registers/x86.js';

export const TASK_ALIVE = 1;
/** A zombie, as CRIU writes it (CRIU restores TASK_DEAD as a zombie; TASK_ZOMBIE it does not know). */
export const TASK_DEAD = 2;
export const TASK_STOPPED = 3;

/** What dump read of one thread: from ptrace, /proc and the injected batch. */
export interface ThreadState {
  tid: number;
  regs: UserRegs;
  xstate: Buffer;
  sigmask: bigint;
  clearTidAddr: bigint;
  tls: import('@criu-ts/images').UserDescT[];
  creds: CredsEntry;
  comm: string;
  sched: { policy: number; prio: number; nice: number };
  sas?: { ss_sp: bigint; ss_size: bigint; ss_flags: number };
  pdeathSig?: number;
  rseq?: RseqEntry;
  pendingSignals: Buffer[];
  seccompMode: number;
  seccompFilter?: number;
  robustList: { head: bigint; len: number };
}

/** core-TID.img of one thread; the leader's also carries the task-wide part (tc). */
export function coreEntry(t: ThreadState, task?: TaskCoreEntry): CoreEntry {
  const threadCore: ThreadCoreEntry = {
    futex_rla: t.robustList.head,
    futex_rla_len: t.robustList.len,
    sched_nice: t.sched.nice,
    sched_policy: t.sched.policy,
    sched_prio: t.sched.prio,
    blk_sigset: t.sigmask,
    creds: t.creds,
    seccomp_mode: t.seccompMode,
    comm: t.comm,
  };
  if (t.sas) threadCore.sas = t.sas;
  if (t.pdeathSig !== undefined) threadCore.pdeath_sig = t.pdeathSig;
  if (t.pendingSignals.length)
    threadCore.signals_p = { signals: t.pendingSignals.map((siginfo) => ({ siginfo })) };
  if (t.rseq) threadCore.rseq_entry = t.rseq;
  if (t.seccompFilter !== undefined) threadCore.seccomp_filter = t.seccompFilter;
  const core: CoreEntry = {
    mtype: CoreEntryMarch.X86_64,
    thread_info: {
      clear_tid_addr: t.clearTidAddr,
      // registers that resume as they are: a syscall the stop interrupted is set up to run again
      gpregs: gpregsToImage(resumableRegs(t.regs)),
      fpregs: fpregsToImage(t.xstate),
      tls: t.tls,
    },
    thread_core: threadCore,
  };
  if (task) core.tc = task;
  return core;
}

export type { SaEntry };
