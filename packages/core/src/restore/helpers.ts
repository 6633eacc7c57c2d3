// Helper processes: short-lived children of the restore stub that exist only while criu-ts opens a
// file naming a process that had died by the dump (/proc/PID/..., a pidfd). The file is opened while
// the helper lives; the helper is then killed and reaped, so the file names a dead process again, as
// it did (CRIU's TASK_HELPER does the same). Helpers come and go before the tree is made, so even a
// pid of the tree the kernel happened to give one is free again by then. A process group whose leader
// had died is made again the same way, by a helper with the leader's pid that is the child of a member
// (restore.ts): the member joins the group, the helper dies, the group stays.
// One more use, once a task exists: a task whose cwd or root is /proc/PID of a dead task enters it
// while a child of its own (a helper made by the task, same code) has PID, since the kernel lets no
// one into the /proc directory of a process that is gone.
import { __WALL, kill, ptraceCont, SIGCHLD, SIGKILL, SYS, sigmaskBit } from '@criu-ts/sys';
import { RestoreError } from './errors.js';
import { Injector, type ScratchLayout, type Tracee, waitStop } from './inject.js';
import { cloneHelper, cloneWithId } from './tree.js';

export class HelperProcesses {
  constructor(
    /** The helpers' parent: the stub, or a task of the tree (a group's helper). */
    private readonly stub: Tracee,
    private readonly scratch: ScratchLayout,
    /** The restore's set of traced tids: a helper is in it while it lives (cleanup kills them). */
    private readonly traced: Set<number>,
  ) {}

  /** Run `use` while a helper with pid `pid` lives (clone3 set_tid). */
  withPid<T>(pid: number, use: () => T): T {
    const inj = new Injector(this.stub, this.scratch);
    cloneWithId(inj, this.stub.pid, pid, 'child');
    return this.whileAlive(inj, pid, use);
  }

  /** Run `use` with the pid of a helper the kernel numbers. */
  withAnyPid<T>(use: (pid: number) => T): T {
    const inj = new Injector(this.stub, this.scratch);
    const pid = cloneHelper(inj);
    return this.whileAlive(inj, pid, () => use(pid));
  }

  private whileAlive<T>(inj: Injector, pid: number, use: () => T): T {
    this.traced.add(pid);
    try {
      return use();
    } finally {
      this.kill(inj, pid);
      this.traced.delete(pid);
    }
  }

  /**
   * Kill a helper while it is still traced: criu-ts collects it as its tracer, the stub reaps it as
   * its parent, and the SIGCHLD left pending in the stub (blocked there) is taken away, since with
   * --restore-sibling the stub becomes the root task.
   */
  private kill(inj: Injector, pid: number): void {
    kill(pid, SIGKILL);
    for (let st = waitStop(pid); st.stopped; st = waitStop(pid)) ptraceCont(pid, 0);
    inj.call(`wait4(${pid}) in its parent ${this.stub.pid}`, SYS.wait4, pid, 0, __WALL, 0);
    const mask = Buffer.alloc(8);
    mask.writeBigUInt64LE(sigmaskBit(SIGCHLD));
    const set = inj.put(mask);
    const noWait = inj.put(Buffer.alloc(16)); // struct timespec { 0, 0 }
    const r = inj.syscall(SYS.rt_sigtimedwait, set, 0, noWait, 8);
    inj.resetData();
    if (r !== BigInt(SIGCHLD) && r !== -11n)
      throw new RestoreError(`rt_sigtimedwait in ${this.stub.pid}: ${r}`);
  }
}
