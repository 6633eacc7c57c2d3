// criu restore, driven from TypeScript over ptrace (no helper binary). The phases, in order:
//
//   plan       read and check every image (restore/plan.ts); make the cgroup dirs; wait for the pids
//              to be free (tasks that held them may still be dying);
//   validate   open every file in criu-ts, before the first process exists, so that a missing or
//              changed file fails the restore while nothing runs yet (files/restore-open.ts);
//   stub       start the stub and place the scratch area in it, where no dumped VMA goes
//              (restore/scratch.ts): every task is cloned from it and inherits it;
//   tree       clone3 with set_tid, parents first, sessions and groups, zombies (restore/tree.ts,
//              zombie/); a parent's memory is restored before it forks (copy-on-write is shared again);
//   tasks      per task: memory (mm/), threads, fds (files/install.ts), then the rest of its state:
//              signals, timers, rlimits, creds, seccomp, rseq... (restore/state.ts, one folder each);
//   tree-wide  cgroup properties, shared memory, owners of files, ghost files removed;
//   run        registers and signal masks loaded, every thread let go (restore/finish.ts);
//   unlock     what waits for the tree to run: the network lock lifted, link remaps dropped.
//
// Any error kills everything created so far and reaps it: nothing stays half alive.
import type { RestoreStatsEntry } from '@criu-ts/images';
import { ImageDir, warmUpCodecs } from '@criu-ts/images';
import { type CgroupMode, CgroupPlacer, type CgroupRoot } from '../cgroup/restore.js';
import { checkCpuinfoForRestore } from '../cpuinfo/restore.js';
import { installFds, placeHelperPidfd } from '../files/install.js';
import { NodeFiles } from '../files/node-files.js';
import { openDeadPidFiles, openDyingFiles, openEveryFile } from '../files/restore-open.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { restoreTaskMemory } from '../mm/restore.js';
import type { NetworkLockMethod } from '../net-lock/index.js';
import { callNotify, type Notify, reportNotify } from '../notify/index.js';
import { type Progress, ProgressTracker } from '../progress/progress.js';
import { settleTaskPages, startRestoreProgress } from '../progress/restore.js';
import { RestoreError } from './errors.js';
import { killAll, letTheTreeRun } from './finish.js';
import { RestoreRun } from './live.js';
import { waitForFreeIds } from './pids.js';
import { planRestore, type RestorePlan, type TaskPlan } from './plan.js';
import { placeStub } from './scratch.js';
import { restoreState } from './state.js';
import { makeThreads, makeTree } from './tree.js';

export interface RestoreOptions {
  /** -D: the images. */
  imagesDir: string;
  /** -W: where stats-restore goes (default: the images dir), as CRIU keeps it. */
  workDir?: string;
  /**
   * --manage-cgroups: soft (default) creates a task's missing cgroups, none and props want them to
   * exist, full and strict set the properties of existing ones too (strict fails on one), ignore
   * leaves every task in criu-ts's own cgroups (see cgroup/restore.ts).
   */
  manageCgroups?: CgroupMode;
  /** --cgroup-root [controller:]/path: the dumped cgroups go under these paths. */
  cgroupRoots?: CgroupRoot[];
  /** --cgroup-yard DIR: the cgroup hierarchies are mounted in DIR (else criu-ts mounts its own). */
  cgroupYard?: string;
  /** --shell-job: sessions and groups led from outside the images are the caller's. */
  shellJob?: boolean;
  /**
   * --restore-sibling: the root task becomes the child of criu-ts's parent (who then waits for it),
   * instead of criu-ts's own child.
   */
  sibling?: boolean;
  /**
   * --network-lock: the method the dump locked connections with, which unlocks them once the tree
   * runs (default: the one inventory.img names; nftables if it names none).
   */
  networkLock?: NetworkLockMethod;
  /** --tcp-close: TCP connections come back closed (required for images dumped with it). */
  tcpClose?: boolean;
  /** --cpu-cap: CRIU's CPU_CAP bits; with IMAGE, cpuinfo.img is checked before anything is made. */
  cpuCap?: number;
  /** How long to wait for pids still held by dying tasks (default 5 s). */
  pidWaitMs?: number;
  /** Where the restore says what it does (info: the steps, debug: each task); default: nowhere. */
  logger?: Logger;
  /** Told the step, tasks restored, pages filled and connections, as the restore goes (progress/). */
  progress?: Progress;
  /**
   * Called at pre-restore, post-restore, pre-resume and post-resume (see notify/); a throw before the
   * tree runs fails the restore and kills what it made; one at post-resume is only logged, as in CRIU.
   */
  notify?: Notify;
  /** --auto-dedup: the pages restored are punched out of the images (and their parents'), as CRIU. */
  autoDedup?: boolean;
}

export interface RestoreResult {
  /** Pid of the restored root task (a child of this process, or of its parent with `sibling`). */
  root: number;
  pids: number[];
  stats: RestoreStatsEntry;
  /**
   * Milliseconds: reading images and opening files, creating tasks, memory, everything else, and their
   * total; `wait` (not in the total) is how long pids held by dying tasks were waited for.
   */
  timings: { plan: number; wait: number; fork: number; memory: number; rest: number; total: number };
}

const ms = (from: number) => process.uptime() * 1000 - from;

/** criu restore -D DIR: see the file comment. */
export function restore(opts: RestoreOptions): RestoreResult {
  const log = opts.logger ?? silentLogger;
  const t0 = process.uptime() * 1000;
  const progress = new ProgressTracker(opts.progress);
  progress.phase('reading images');
  warmUpCodecs([
    'core_entry',
    'mm_entry',
    'pagemap_head',
    'pagemap_entry',
    'file_entry',
    'fdinfo_entry',
    'stats_entry',
  ]);
  // stats-restore is written once the tree runs: something planted under its name is refused now.
  (opts.workDir ? ImageDir.create(opts.workDir) : ImageDir.open(opts.imagesDir)).checkCanWrite(
    'stats-%s',
    'restore',
  );

  // Plan. cgroup dirs are made before anything else, as CRIU makes them: files of the tree may be in them.
  // One directory object for all: the images several of them read are read once (ImageDir.withMemo).
  const dir = ImageDir.open(opts.imagesDir).withMemo();
  checkCpuinfoForRestore(dir, opts.cpuCap, log);
  const cgroups = new CgroupPlacer(
    dir,
    {
      mode: opts.manageCgroups ?? 'soft',
      roots: opts.cgroupRoots ?? [],
      ...(opts.cgroupYard ? { yard: opts.cgroupYard } : {}),
    },
    (m) => log.debug(m),
  );
  let plan: RestorePlan;
  try {
    cgroups.prepare();
    plan = planRestore(dir, {
      shellJob: opts.shellJob === true,
      ...(opts.networkLock ? { networkLock: opts.networkLock } : {}),
      tcpClose: opts.tcpClose === true,
    });
  } catch (e) {
    cgroups.close();
    throw e;
  }
  log.info(`restoring ${plan.tasks.length} tasks of ${opts.imagesDir}`);
  const tWait = process.uptime() * 1000;
  waitForFreeIds([...plan.ids, ...plan.pgidHelpers], opts.pidWaitMs ?? 5000);
  const waitMs = ms(tWait);
  const files = new NodeFiles(plan, (m) => log.debug(m));
  const run = new RestoreRun(plan, files, log, cgroups, opts.sibling === true);
  run.autoDedup = plan.shmem.autoDedup = opts.autoDedup === true;

  let tPlan = 0;
  try {
    callNotify(opts.notify, 'pre-restore', 0, failed);
    // Validate: every file is opened now, while no process exists.
    startRestoreProgress(plan, progress);
    openEveryFile(run, (id) => plan.files.get(id)?.isk && progress.add('connections'));
    tPlan = ms(t0) - waitMs;
    restoreTree(run, progress, opts.notify);
    // Unlock: the tree runs; what waited for it (the network lock) is lifted.
    files.afterRestore();
  } catch (e) {
    killAll(run);
    plan.shmem.discard();
    throw e;
  } finally {
    cgroups.close();
    files.closeAll();
    plan.shmem.close();
    for (const t of plan.tasks) t.pagemap?.close();
  }
  // The tree runs now: nothing below may undo it. Time spent waiting for pids of dying tasks is not
  // restore work: it is left out.
  const total = ms(t0) - waitMs;
  const { counts } = run;
  const timings = { plan: tPlan, wait: waitMs, fork: counts.forkMs, memory: counts.memMs, rest: 0, total };
  timings.rest = total - timings.plan - timings.fork - timings.memory;
  const stats: RestoreStatsEntry = {
    pages_compared: BigInt(counts.compared),
    pages_skipped_cow: BigInt(counts.sharedCow),
    forking_time: Math.round(counts.forkMs * 1000),
    restore_time: Math.round(total * 1000),
    pages_restored: BigInt(counts.pages),
  };
  try {
    (opts.workDir ? ImageDir.create(opts.workDir) : plan.dir).write('stats-%s', 'restore', [
      { restore: stats },
    ]);
  } catch (e) {
    log.warn(`cannot write stats-restore: ${(e as Error).message}`);
  }
  reportNotify(opts.notify, 'post-resume', plan.root.pid, (line) => log.error(line));
  log.info(
    `restored ${plan.root.pid}: ${plan.tasks.length} tasks, ${counts.pages} pages in ${total.toFixed(1)} ms`,
  );
  return { root: plan.root.pid, pids: plan.tasks.map((t) => t.pid), stats, timings };
}

/** From the stub to a running tree (the phases stub, tree, tasks, tree-wide and run). */
function restoreTree(run: RestoreRun, progress: ProgressTracker, notify: Notify | undefined): void {
  const { plan, files, cgroups } = run;
  const tFork = process.uptime() * 1000;
  // Stub: every task descends from it and inherits its scratch area, signal mask and actions.
  placeStub(run);
  // Files naming processes that had died: opened while the stub can make helpers with their pids.
  openDeadPidFiles(run);
  openDyingFiles(run);
  // Tree: parents' memory is restored while it is made (before they fork), which is not forking time.
  progress.phase('restoring tasks');
  makeTree(run, (task) => restoreMemory(run, task, progress));
  run.counts.forkMs = ms(tFork) - run.counts.memMs;
  // Tasks, one after the other: a task sharing its parent's fd table comes after the parent filled it.
  for (const task of plan.tasks) {
    if (task.state === 'zombie') continue;
    restoreMemory(run, task, progress);
    makeThreads(run, task.pid);
    installFds(run, run.task(task.pid));
    restoreState(run, run.task(task.pid));
    progress.add('tasks');
  }
  progress.phase('resuming');
  // Tree-wide, once every task and thread exists (owners of files for SIGIO may be any of them).
  cgroups.restoreProperties();
  cgroups.close();
  plan.shmem.afterTasks();
  files.restoreOwners();
  files.unlinkGhosts();
  callNotify(notify, 'post-restore', plan.root.pid, failed);
  // Run: registers and signal masks in, everybody let go together.
  letTheTreeRun(run, () => callNotify(notify, 'pre-resume', plan.root.pid, failed));
}

const failed = (message: string, cause: unknown) => new RestoreError(message, { cause });

/**
 * The task's memory, once: through the helper pidfd it gets first (files/install.ts). Done before the
 * task forks its children (makeTree), or in its turn for those that have none.
 */
function restoreMemory(run: RestoreRun, task: TaskPlan, progress: ProgressTracker): void {
  const lt = run.live.get(task.pid);
  if (!lt) throw new RestoreError(`pid ${task.pid} forks children but was not created as a live task`);
  if (lt.pidfd >= 0) return;
  const freeFd = placeHelperPidfd(lt);
  progress.phase('filling memory');
  const before = progress.doneOf('pages');
  restoreTaskMemory(run, lt, freeFd, progress.pages);
  settleTaskPages(progress, task, before);
  progress.phase('restoring tasks');
}
