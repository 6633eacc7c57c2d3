// Signals on restore: every signal's action (task-wide), each thread's alternate signal stack, the
// pending signals (the thread's own queue and the task's shared one) and the signal a stopped task is
// stopped with again. The blocked mask goes with the registers (registers/restore.ts), last.
import type { SignalQueueEntry, TaskCoreEntry, ThreadCoreEntry } from '@criu-ts/images';
import { SIGCHLD, SIGSTOP, SS_AUTODISARM, SS_DISABLE, SYS } from '@criu-ts/sys';
import type { Calls } from '../restore/calls.js';
import { RestoreError } from '../restore/errors.js';
import type { Injector } from '../restore/inject.js';
import type { TaskPlan } from '../restore/plan.js';

/** Signals whose action can be set (all but SIGKILL and SIGSTOP), in the order dump stores them. */
const SIGACTION_SIGNALS = Array.from({ length: 64 }, (_, i) => i + 1).filter((s) => s !== 9 && s !== 19);

/** sigactions: every signal's handler, flags, restorer and mask. */
export function sigactionCalls(inj: Injector, tc: TaskCoreEntry, flushSigchld: boolean, out: Calls): void {
  const sa = tc.sigactions ?? [];
  if (sa.length === 0) return;
  if (sa.length !== SIGACTION_SIGNALS.length)
    throw new RestoreError(`core image: ${sa.length} sigactions, expected ${SIGACTION_SIGNALS.length}`);
  if (flushSigchld) {
    // Zombies we made exited while their parent blocked SIGCHLD: ignoring SIGCHLD drops that pending
    // signal, which the original parent had consumed long ago (existing zombies are not reaped).
    const ign = Buffer.alloc(32);
    ign.writeBigUInt64LE(1n, 0);
    out.add('rt_sigaction(SIGCHLD, SIG_IGN)', [SYS.rt_sigaction, SIGCHLD, inj.put(ign), 0, 8]);
  }
  const buf = Buffer.alloc(32 * sa.length);
  sa.forEach((a, i) => {
    buf.writeBigUInt64LE(BigInt.asUintN(64, a.sigaction), i * 32);
    buf.writeBigUInt64LE(BigInt.asUintN(64, a.flags), i * 32 + 8);
    buf.writeBigUInt64LE(BigInt.asUintN(64, a.restorer), i * 32 + 16);
    buf.writeBigUInt64LE(BigInt.asUintN(64, a.mask), i * 32 + 24);
  });
  const at = inj.put(buf);
  SIGACTION_SIGNALS.forEach((sig, i) => {
    out.add(`rt_sigaction(${sig})`, [SYS.rt_sigaction, sig, at + BigInt(i * 32), 0, 8]);
  });
}

/**
 * Whether the SIGCHLD the restore's own zombies raise in `task` is to be dropped: it has zombie
 * children and no SIGCHLD was pending at the dump (which the dumped queues would bring back).
 */
export function flushesSigchld(task: TaskPlan): boolean {
  const hasZombieChild = task.children.some((c) => c.state === 'zombie');
  const pendingChld = [task.tc.signals_s, ...task.threads.map((t) => t.core.thread_core?.signals_p)].some(
    (q) => (q?.signals ?? []).some((x) => Buffer.from(x.siginfo).readInt32LE(0) === SIGCHLD),
  );
  return hasZombieChild && !pendingChld;
}

/** The thread's alternate signal stack, unless it had none. */
export function sigaltstackCalls(inj: Injector, th: ThreadCoreEntry, c: Calls): void {
  const sas = th.sas;
  if (sas && !(sas.ss_flags & SS_DISABLE)) {
    const b = Buffer.alloc(24);
    b.writeBigUInt64LE(BigInt.asUintN(64, sas.ss_sp), 0);
    b.writeInt32LE(sas.ss_flags & SS_AUTODISARM, 8);
    b.writeBigUInt64LE(BigInt.asUintN(64, sas.ss_size), 16);
    c.add('sigaltstack', [SYS.sigaltstack, inj.put(b), 0]);
  }
}

/** Pending signals queued again: to the thread `tid` (its own queue), or to the task (the shared one). */
export function pendingSignalCalls(
  inj: Injector,
  q: SignalQueueEntry | undefined,
  c: Calls,
  pid: number,
  tid?: number,
): void {
  for (const s of q?.signals ?? []) {
    const info = Buffer.alloc(128);
    Buffer.from(s.siginfo).copy(info, 0, 0, 128);
    const sig = info.readInt32LE(0);
    const at = inj.put(info);
    if (tid === undefined) c.add(`rt_sigqueueinfo(${sig})`, [SYS.rt_sigqueueinfo, pid, sig, at]);
    else c.add(`rt_tgsigqueueinfo(${sig})`, [SYS.rt_tgsigqueueinfo, pid, tid, sig, at]);
  }
}

/** The signal a stopped task is stopped with again: the dumped one when it is a stop signal. */
export function stopSignalOf(task: TaskPlan): number {
  const sig = task.tc.stop_signo ?? 0;
  return sig >= 19 && sig <= 22 ? sig : SIGSTOP;
}
