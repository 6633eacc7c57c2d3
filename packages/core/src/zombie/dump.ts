// Zombies on dump: a zombie has no memory or files, only its place in the tree (pstree.img, written with
// the others) and its exit status, in a core image of its own. Its restore side is zombie/restore.ts.
import { readStat } from '@criu-ts/bfd';
import type { SeizedTask } from '@criu-ts/compel';
import { CoreEntryMarch } from '@criu-ts/images';
import { TASK_DEAD } from '../core-image/thread.js';
import { DumpError } from '../dump/errors.js';
import type { DumpContext } from '../dump/task.js';

/** Write the core image of zombie `task`: its exit code and name, as CRIU writes them. */
export function dumpZombie(ctx: DumpContext, task: SeizedTask): void {
  const stat = readStat(task.pid);
  if (stat === undefined) throw new DumpError(`zombie ${task.pid} was reaped during the dump`);
  ctx.dir.write('core-%u', task.pid, [
    {
      mtype: CoreEntryMarch.X86_64,
      tc: {
        task_state: TASK_DEAD, // what CRIU writes for a zombie (and restores as one)
        exit_code: stat.exitCode,
        personality: 0,
        flags: 0,
        blk_sigset: 0n,
        comm: stat.comm,
      },
    },
  ]);
}
