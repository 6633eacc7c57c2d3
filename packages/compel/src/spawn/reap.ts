// Stopping what startTraceable() started: SIGKILL, then waitpid() until the exit is collected.
import { __WALL, isSysError, kill, SIGKILL, WNOHANG, waitpid } from '@criu-ts/sys';
import { CompelError } from '../errors.js';
import { stateOf } from '../util/proc.js';
import { Backoff } from '../util/wait.js';

/**
 * SIGKILL `pid` and reap it. Works for our re-parented children (started by startTraceable, or orphans
 * of a killed tree re-parented to this subreaper) and, when the pid is not our child, waits until its
 * parent reaped it or it was re-parented to us. Polls waitpid(WNOHANG) with a growing pause; throws a
 * CompelError after `timeoutMs`.
 */
export function killAndReap(pid: number, timeoutMs = 10_000): void {
  try {
    kill(pid, SIGKILL);
  } catch (e) {
    if (!isSysError(e, 'ESRCH')) throw e;
  }
  const backoff = new Backoff(timeoutMs, 10);
  for (;;) {
    try {
      const st = waitpid(pid, __WALL | WNOHANG);
      if (st !== null && (st.exited || st.signaled)) return;
      // null: still dying. A ptrace stop reported to us (we trace it): SIGKILL ends it anyway.
    } catch (e) {
      if (!isSysError(e, 'ECHILD')) throw e;
      // Not (or no longer) our child: done once it is gone; otherwise its parent has to reap it first
      // (or dies, and then it is re-parented to us).
      if (stateOf(pid) === undefined) return;
    }
    if (!backoff.wait()) {
      throw new CompelError(
        `killAndReap: pid ${pid} still there after ${timeoutMs} ms (${stateOf(pid)})`,
        pid,
      );
    }
  }
}
