// Signals that arrive while a thread runs injected code are taken at their signal-delivery-stop and
// suppressed (the injected code must run, and a handler must not see our registers). They are queued
// again on the thread just before it is detached, so the task receives them after all.
//
// Until then only criu-ts knows them: if it died, they would be lost (a SIGALRM lost leaves a task in
// pause() for ever). So a guard that outlives criu-ts (DeathGuard) knows them too, and sends each again
// (with kill(1): to the process, without the sigqueue payload) if criu-ts dies first. It exits quietly
// once every held signal is delivered again, or dropped with its thread, or when criu-ts exits normally.
import { isSysError, ptraceGetSiginfo, raw, SI_TKILL, type Siginfo, SYS, tgkill } from '@criu-ts/sys';
import { DeathGuard } from '../spawn/death-guard.js';

let held = 0;
let guard: DeathGuard | undefined;
// A normal exit settles everything it could: the guard must not act on what is left.
process.on('exit', () => disarmGuard());

/** Take the signal thread `tid` of `pid` is stopped with (a signal-delivery-stop) into `into`. */
export function holdSignal(into: Siginfo[], pid: number, tid: number): void {
  const info = ptraceGetSiginfo(tid);
  into.push(info);
  if (!guard) {
    guard = new DeathGuard('signals held back');
    // Once the tracer is gone the threads finish the injected code they are in and go back to their
    // own; a handler that ran before that would see its interrupted pause() restarted, not ended.
    guard.undoWith(['sleep', '0.2']);
  }
  guard.undoWith(['kill', `-${info.signo}`, String(pid)]);
  held++;
}

/** `n` held signals are settled: delivered again, or dropped with a thread that is gone. */
export function settleHeldSignals(n: number): void {
  held = Math.max(0, held - n);
  if (held === 0) disarmGuard();
}

function disarmGuard(): void {
  guard?.disarm();
  guard = undefined;
}

/**
 * Queue `info` again on thread `tid` of process `pid`. rt_tgsigqueueinfo keeps the whole siginfo
 * (sigqueue payload, timer id...), but the kernel accepts it from another process only for negative
 * si_code values other than SI_TKILL; kill(), tgkill() and kernel-generated signals are sent again
 * with tgkill (si_code SI_TKILL, si_pid = this process).
 */
export function redeliverSignal(pid: number, tid: number, info: Siginfo): void {
  try {
    if (info.code < 0 && info.code !== SI_TKILL) {
      const r = raw.syscall(SYS.rt_tgsigqueueinfo, pid, tid, info.signo, info.raw);
      if (r === 0) return;
    }
    try {
      tgkill(pid, tid, info.signo);
    } catch (e) {
      if (!isSysError(e, 'ESRCH')) throw e; // the thread is gone: nobody left to deliver to
    }
  } finally {
    settleHeldSignals(1);
  }
}
