// One restore in progress: what its phases share (the stub and its scratch area, the tasks made so
// far) and what cleanup must undo if a phase fails (every task created, every tracee).
import type { FileLockEntry } from '@criu-ts/images';
import type { CgroupPlacer } from '../cgroup/restore.js';
import { locksByTask } from '../file-locks/restore.js';
import type { NodeFiles } from '../files/node-files.js';
import type { Logger } from '../log/logger.js';
import type { DeathGuard } from './guard.js';
import type { HelperProcesses } from './helpers.js';
import type { Injector, ScratchLayout, Tracee } from './inject.js';
import type { RestorePlan, TaskPlan } from './plan.js';

export interface LiveThread {
  tid: number;
  t: Tracee;
  inj: Injector;
}

/** A task of the tree that runs again (not a zombie), while criu-ts restores it. */
export interface LiveTask {
  plan: TaskPlan;
  main: Injector;
  threads: LiveThread[];
  /** The helper pidfd (of criu-ts) in the task, above every restored fd; -1 until its memory is done. */
  pidfd: number;
}

export class RestoreRun {
  /** The stub, while it runs (it is the parent of the root until the tree exists). */
  stub: Tracee | undefined;
  /** The scratch area (code page, syscall table, data), at the same address in the stub and every task. */
  scratch: ScratchLayout | undefined;
  /** Helper processes, made by the stub while it runs (before the tree exists). */
  helpers: HelperProcesses | undefined;
  /** The death guard of the last steps (guard.ts), started with the stub. */
  guard: DeathGuard | undefined;
  readonly live = new Map<number, LiveTask>();
  /** Every task created (its pid), in creation order, for cleanup. */
  readonly created: number[] = [];
  /** Tracees whose exit we still have to collect when cleaning up. */
  readonly traced = new Set<number>();
  /** Every pid and tid of the tree. */
  readonly treeIds: ReadonlySet<number>;
  /** The tree's pids and tids, and the dead pids of /proc files: their /proc files are opened later. */
  readonly procPidsLater: ReadonlySet<number>;
  /** filelocks.img by the pid that takes each lock again. */
  readonly locks: Map<number, FileLockEntry[]>;
  /** Keys of in-task fd work done once per restore (see FdRestoreDriver.inTask). */
  readonly inTaskDone = new Set<string>();
  /** Counters for stats-restore and the timings. */
  readonly counts = { forkMs: 0, memMs: 0, pages: 0, compared: 0, sharedCow: 0 };
  /** --auto-dedup: pages read from the images are punched out of them (mm/restore.ts, shmem). */
  autoDedup = false;

  constructor(
    readonly plan: RestorePlan,
    readonly files: NodeFiles,
    readonly log: Logger,
    readonly cgroups: CgroupPlacer,
    /** --restore-sibling: the stub is started as criu-ts's sibling and becomes the root itself. */
    readonly sibling: boolean,
  ) {
    this.locks = locksByTask(plan.dir);
    this.treeIds = new Set(plan.ids);
    this.procPidsLater = new Set([...plan.ids, ...plan.deadPids]);
  }

  /** The scratch area; only asked for once the stub is placed. */
  get s(): ScratchLayout {
    if (!this.scratch) throw new Error('the restore scratch area is asked for before the stub is placed');
    return this.scratch;
  }

  /** The live task `pid`. */
  task(pid: number): LiveTask {
    const lt = this.live.get(pid);
    if (!lt) throw new Error(`pid ${pid} is not a live task of this restore`);
    return lt;
  }
}
