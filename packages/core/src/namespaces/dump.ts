// Namespaces are not dumped yet: restore makes every task in criu-ts's own namespaces. A tree that
// lives in namespaces of its own (a container, `unshare --pid --uts ...`) would come back in the
// wrong ones, or not at all, so it is refused at dump, while it can still run on.
import { ProcDir } from '@criu-ts/bfd';
import type { SeizedTree } from '@criu-ts/compel';
import { DumpError } from '../dump/errors.js';

/** /proc/PID/ns entries, in CRIU's order, with the names CRIU prints. */
const KINDS = ['pid', 'net', 'ipc', 'uts', 'mnt', 'user', 'cgroup', 'time'] as const;

/** The namespace a link names ("uts:[4026531838]"), or undefined where the kernel has no such kind. */
function nsOf(proc: ProcDir, name: string): string | undefined {
  try {
    return proc.readlink(`ns/${name}`);
  } catch {
    return undefined;
  }
}

/**
 * Every thread of every live task must be in criu-ts's own namespaces, and so must the children it
 * would make (pid_for_children, time_for_children: a task that called unshare(CLONE_NEWPID or
 * CLONE_NEWTIME) without forking yet). A namespace the root brought is one CRIU would dump (not
 * criu-ts yet); one a task below the root entered on its own CRIU refuses too, with this wording.
 */
export function refuseNamespaces(tree: SeizedTree): void {
  const self = ProcDir.self();
  const own = new Map<string, string | undefined>();
  for (const kind of KINDS) own.set(kind, nsOf(self, kind));
  // The root first: a namespace it brought is the tree's (CRIU dumps it); any other is nested.
  const tasks = [...tree.tasks].sort((a, b) => Number(b.pid === tree.root) - Number(a.pid === tree.root));
  for (const task of tasks) {
    if (task.state === 'zombie') continue;
    const proc = ProcDir.open(task.pid);
    try {
      for (const thread of task.threads) {
        const view = thread.tid === task.pid ? proc : proc.task(thread.tid);
        for (const kind of KINDS) {
          const ns = nsOf(view, kind);
          if (ns === undefined || ns === own.get(kind)) continue;
          if (task.pid !== tree.root)
            throw new DumpError(`Can't dump nested ${kind} namespace for ${thread.tid}`);
          throw new DumpError(
            `pid ${thread.tid} is in a ${kind} namespace of its own (${ns}, criu-ts is in ${own.get(kind)}): dumping namespaces is not supported yet`,
          );
        }
        for (const kind of ['pid', 'time'] as const) {
          const mine = nsOf(view, kind);
          const forChildren = nsOf(view, `${kind}_for_children`);
          if (mine === undefined || forChildren === undefined || forChildren === mine) continue;
          throw new DumpError(`Can't dump nested ${kind} namespace for ${thread.tid}`);
        }
      }
    } finally {
      proc.close();
    }
  }
}
