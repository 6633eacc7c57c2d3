// When criu-ts opens the files of the images (files/node-files.ts opens each one; the tasks pull copies in
// with pidfd_getfd, files/install.ts). Every file is opened before the first task exists, so that a
// missing or changed file fails the restore before anything runs; except those that name processes:
// /proc/PID files of the tree and of dead pids wait for PID to exist again, and a driver's late files
// (pidfds: FdRestoreDriver.openLate) wait for the tree, or for a helper that then dies.
import { pageSources } from '@criu-ts/images';
import { mapsWritable } from '../mm/restore.js';
import { RestoreError } from '../restore/errors.js';
import type { RestoreRun } from '../restore/live.js';
import { VMA } from '../restore/plan.js';
import { isProcFileOf, procPidOf } from './regular/proc-path.js';

/**
 * Open every file before any task exists: a missing or changed file fails now (cgroup sets too).
 * `opened` is told the files.img id of each fd opened (the restore's progress counts connections).
 */
export function openEveryFile(run: RestoreRun, opened?: (id: number) => void): void {
  const { plan, files, cgroups } = run;
  files.makeHelpersWith((use) => whileHelperLives(run, use));
  for (const task of plan.tasks) cgroups.check(task.pid, task.threads[0]?.core.thread_core?.cg_set);
  for (const t of plan.tasks) {
    if (t.state === 'zombie') continue;
    for (const fd of t.fdinfo ?? []) {
      if (opensLater(run, fd.id)) continue;
      files.fd(fd.id, 'fd');
      opened?.(fd.id);
    }
    for (const id of [t.fs!.cwd_id, t.fs!.root_id]) if (!opensLater(run, id)) files.fd(id, 'dir');
    files.fd(t.mm!.exe_file_id, 'read');
    for (const v of t.mm!.vmas ?? []) {
      // memfd mappings come from shared memory objects (shmem/restore.ts).
      if (!(v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) || v.status & VMA.AREA_MEMFD) continue;
      files.fd(Number(v.shmid), mapsWritable(v) ? 'write' : 'read');
    }
    // The pages files of the task and of the parent images its PE_PARENT runs read (incremental dumps).
    const src = pageSources(t.pagemap!);
    src.files.forEach((f, level) => {
      if (src.pages[level]! > 0) files.rawFd(f);
    });
  }
  plan.shmem.prepare();
}

/** Whether file `id` waits for a process (see the file comment). */
function opensLater(run: RestoreRun, id: number): boolean {
  const name = run.plan.files.get(id)?.reg?.name;
  if (name !== undefined) return isProcFileOf(name, run.procPidsLater);
  return run.files.lateOpen(id, run.treeIds) !== undefined;
}

/**
 * /proc/PID files of tasks that had died by the dump (CRIU 1.4's dead-pid remaps): opened while a
 * helper with that pid lives (restore/helpers.ts). Needs the stub.
 */
export function openDeadPidFiles(run: RestoreRun): void {
  for (const pid of run.plan.deadPids) {
    const ids = fdIdsUnderProc(run, pid);
    if (ids.length === 0) continue;
    run.helpers!.withPid(pid, () => {
      for (const id of ids) run.files.fd(id, 'fd');
    });
    run.log.debug(`dead pid ${pid}: ${ids.length} /proc files opened through a helper`);
  }
}

/**
 * Files whose driver needs a process that then dies (a pidfd of a process that had died by the dump):
 * opened now, while the stub can make helpers (it is gone once the tree exists).
 */
export function openDyingFiles(run: RestoreRun): void {
  for (const t of run.plan.tasks)
    for (const fd of t.state === 'zombie' ? [] : (t.fdinfo ?? []))
      if (run.files.lateOpen(fd.id, run.treeIds) === 'dying') run.files.fd(fd.id, 'fd');
}

/** FdRestoreContext.whileHelperLives: a helper the kernel numbers, while the stub is there. */
function whileHelperLives<T>(run: RestoreRun, use: (pid: number) => T): T {
  if (!run.helpers) throw new RestoreError('a helper process is asked for while no stub runs');
  return run.helpers.withAnyPid(use);
}

/** files.img ids of the fds (of any task) that are /proc/PID or a file under it. */
function fdIdsUnderProc(run: RestoreRun, pid: number): number[] {
  const ids = new Set<number>();
  for (const t of run.plan.tasks)
    for (const fd of t.fdinfo ?? []) {
      const name = run.plan.files.get(fd.id)?.reg?.name;
      if (name !== undefined && procPidOf(name) === pid) ids.add(fd.id);
    }
  return [...ids];
}
