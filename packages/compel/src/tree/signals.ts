// Signals that arrive while a thread runs injected code are taken at their signal-delivery-stop and
// suppressed (the injected code must run, and a handler must not see our registers). They are queued
// again on the thread just before it is detached, so the task receives them after all.
import { isSysError, raw, SI_TKILL, type Siginfo, SYS, tgkill } from '@criu-ts/sys';

/**
 * Queue `info` again on thread `tid` of process `pid`. rt_tgsigqueueinfo keeps the whole siginfo
 * (sigqueue payload, timer id...), but the kernel accepts it from another process only for negative
 * si_code values other than SI_TKILL; kill(), tgkill() and kernel-generated signals are sent again
 * with tgkill (si_code SI_TKILL, si_pid = this process).
 */
export function redeliverSignal(pid: number, tid: number, info: Siginfo): void {
  if (info.code < 0 && info.code !== SI_TKILL) {
    const r = raw.syscall(SYS.rt_tgsigqueueinfo, pid, tid, info.signo, info.raw);
    if (r === 0) return;
  }
  try {
    tgkill(pid, tid, info.signo);
  } catch (e) {
    if (!isSysError(e, 'ESRCH')) throw e; // the thread is gone: nobody left to deliver to
  }
}
