// Sessions restore cannot make again. A session is entered by setsid() or by fork from a task already in
// it, so restore gives a task its session through its parent: a task whose parent is in another session
// than its own (its session leader died, or left it there, and a child subreaper of the tree took it in)
// cannot be made yet. Refused at dump, while the tree can still run on, not found out at restore.
import type { SeizedTree } from '@criu-ts/compel';
import { DumpError } from './errors.js';

export function refuseUnmakeableSessions(tree: SeizedTree): void {
  const byPid = new Map(tree.tasks.map((t) => [t.pid, t]));
  for (const t of tree.tasks) {
    if (t.pid === tree.root || t.sid === t.pid) continue;
    const parent = byPid.get(t.ppid);
    if (parent && parent.sid !== t.sid)
      throw new DumpError(
        `pid ${t.pid} is in session ${t.sid} but its parent ${t.ppid} is in session ${parent.sid}: restore cannot make that yet`,
      );
  }
}
