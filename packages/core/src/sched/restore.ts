// Scheduling on restore: each thread's policy, priority and nice value, set from criu-ts by tid (dumped
// with the thread's core: core-image/thread.ts). A value the kernel refuses (a real-time
// policy without CAP_SYS_NICE) is a warning, not a failure.
import { raw, SYS } from '@criu-ts/sys';

export function setSched(
  tid: number,
  tc: { sched_policy?: number; sched_prio?: number; sched_nice?: number },
  warn: (msg: string) => void,
): void {
  const policy = tc.sched_policy ?? 0;
  const param = Buffer.alloc(4);
  param.writeInt32LE(tc.sched_prio ?? 0, 0);
  if (policy !== 0 || (tc.sched_prio ?? 0) !== 0) {
    if (raw.syscall(SYS.sched_setscheduler, tid, policy, param) !== 0)
      warn(`thread ${tid}: sched_setscheduler(${policy}) failed: errno ${raw.lastErrno()}`);
  }
  if ((tc.sched_nice ?? 0) !== 0 && raw.syscall(SYS.setpriority, 0, tid, tc.sched_nice ?? 0) !== 0)
    warn(`thread ${tid}: setpriority(${tc.sched_nice}) failed: errno ${raw.lastErrno()}`);
}
