// What restore tells its progress hook, from the plan: kept here so that restore/restore.ts only calls.
import { PE_PARENT, PE_PRESENT } from '@criu-ts/images';
import type { RestorePlan, TaskPlan } from '../restore/plan.js';
import type { ProgressTracker } from './progress.js';

/** The pages of a task's images (PE_PRESENT runs of its pagemap, and PE_PARENT ones: in a parent image). */
export const presentPages = (task: TaskPlan): number =>
  (task.pagemap?.runs ?? []).reduce(
    (n, r) => n + (r.flags & (PE_PRESENT | PE_PARENT) ? Number(r.pages) : 0),
    0,
  );

/**
 * Tells `progress` the totals of a restore (tasks, pages of the pagemaps, inet sockets of the fds) and
 * starts its first step after the images: 'connections' when there are any, else 'opening files'.
 */
export function startRestoreProgress(plan: RestorePlan, progress: ProgressTracker): void {
  let pages = 0;
  let connections = 0;
  for (const t of plan.tasks) {
    pages += presentPages(t);
    for (const fd of t.fdinfo ?? []) if (plan.files.get(fd.id)?.isk) connections++;
  }
  progress.total('tasks', plan.tasks.filter((t) => t.state !== 'zombie').length);
  progress.total('pages', pages);
  if (connections) progress.total('connections', connections);
  progress.phase(connections ? 'connections' : 'opening files');
}

/** A task's memory filled: pages of its images that needed no filling (the vDSO's) count as done too. */
export function settleTaskPages(progress: ProgressTracker, task: TaskPlan, doneBefore: number): void {
  progress.add('pages', presentPages(task) - (progress.doneOf('pages') - doneBefore));
}
