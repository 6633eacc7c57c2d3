import { __WALL, isSysError, waitpid } from '@criu-ts/sys';

/**
 * Wait for the restored root task (a child of this process, as restore() leaves it) and return what a
 * shell would report: its exit status, or 128 + the signal that killed it (0 if it is not our child).
 * Meanwhile every other child is reaped too: tasks of the tree orphaned on the way are re-parented to
 * criu-ts (a child subreaper) and must not stay zombies. Only for a process that has no other children
 * to wait for (the CLI).
 */
export function waitForRoot(pid: number): number {
  for (;;) {
    let st: ReturnType<typeof waitpid>;
    try {
      st = waitpid(-1, __WALL);
    } catch (e) {
      if (isSysError(e, 'ECHILD')) return 0;
      throw e;
    }
    if (st === null || st.pid !== pid) continue;
    if (st.exited) return st.exitCode;
    if (st.signaled) return 128 + st.termSignal;
  }
}
