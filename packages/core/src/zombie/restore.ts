// Zombies on restore: a zombie is created like any task (clone3 with its pid, in its parent), then
// exits with its dumped status and stays unreaped, since its parent is stopped until the tree runs.
// Its dump side is zombie/dump.ts: its place in the tree and its exit status.
import {
  kill,
  PR_SET_DUMPABLE,
  PR_SET_NAME,
  ptraceCont,
  ptraceSetRegs,
  ptraceSetSigmask,
  SIGKILL,
  SYS,
} from '@criu-ts/sys';
import { Injector, type Tracee, waitStop } from '../restore/inject.js';
import type { RestoreRun } from '../restore/live.js';
import type { TaskPlan } from '../restore/plan.js';

/** Task `t` (just created for zombie `task`) exits with the dumped status. */
export function makeZombie(run: RestoreRun, t: Tracee, task: TaskPlan): void {
  const status = task.exitStatus;
  const sig = status & 0x7f;
  const inj = new Injector(t, run.s);
  const comm = Buffer.alloc(16);
  comm.write(task.tc.comm.slice(0, 15), 'utf8');
  inj.call('prctl(PR_SET_NAME)', SYS.prctl, PR_SET_NAME, inj.put(comm), 0, 0, 0);
  inj.resetData();
  // A zombie killed by a signal that dumps core is killed by it again: no core file this time.
  if (sig !== 0) inj.call('prctl(PR_SET_DUMPABLE, 0)', SYS.prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  ptraceSetSigmask(t.tid, 0n);
  if (sig === 0) {
    const regs = t.regs.clone();
    regs
      .set('rip', run.s.code + 0x38n)
      .set('rax', SYS.exit_group)
      .set('rdi', (status >> 8) & 0xff);
    regs.set('orig_rax', -1n);
    ptraceSetRegs(t.tid, regs);
  } else {
    kill(t.tid, sig);
  }
  // SIGKILL needs no resume: it ends the task even in its ptrace stop (a PTRACE_CONT would find it gone).
  if (sig !== SIGKILL) ptraceCont(t.tid, 0);
  for (;;) {
    const st = waitStop(t.tid);
    if (st.exited || st.signaled) break;
    // The signal we sent, at its delivery stop: let it kill the task.
    ptraceCont(t.tid, st.event === 0 && st.stopSignal === sig ? sig : 0);
  }
  run.traced.delete(t.tid);
  run.log.debug(`zombie ${task.pid} with status 0x${status.toString(16)}`);
}
