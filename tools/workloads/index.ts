// Entry point for tests:
//
//   import { buildWorkloads, workloadPath } from '../../../tools/workloads/index.js';
//   await buildWorkloads();                 // e.g. in beforeAll
//   spawn(workloadPath('counter'), [reportFile]);
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { binDir, build, srcDir } from './build.js';

/** Names of the programs in tools/workloads/src/<name>.c. */
export type WorkloadName =
  | 'aio'
  | 'appender'
  | 'busy'
  | 'counter'
  | 'cow'
  | 'dirtier'
  | 'epoller'
  | 'fdshare'
  | 'fsnotify'
  | 'hugetlb'
  | 'madvise'
  | 'memhog'
  | 'pipe_reader'
  | 'reader'
  | 'seccomp_tsync'
  | 'shmem'
  | 'sigio'
  | 'sleeper'
  | 'stopper'
  | 'taskstate'
  | 'threads'
  | 'tickers'
  | 'tree'
  | 'unlinked'
  | 'waiter'
  | 'zombie'
  | 'zombies';

let pending: Promise<string> | null = null;

/**
 * Compile every workload whose binary is missing or older than its source
 * (at most once per process; safe to run concurrently from several
 * processes). Resolves to the absolute bin directory. Rejects with gcc's
 * message if a compile fails (and a later call tries again).
 */
export function buildWorkloads(): Promise<string> {
  if (!pending) {
    pending = build().then(
      (r) => r.binDir,
      (err) => {
        pending = null; // allow a retry after fixing the source
        throw err;
      },
    );
  }
  return pending;
}

/** Absolute path of a workload binary (throws for an unknown name). */
export function workloadPath(name: WorkloadName): string {
  if (!/^[a-z0-9_]+$/.test(name) || !existsSync(join(srcDir, `${name}.c`))) {
    throw new Error(`unknown workload '${name}' (no tools/workloads/src/${name}.c)`);
  }
  return join(binDir, name);
}

/**
 * Whether `pid` is `ancestor` or below it (its parent chain reaches `ancestor`). Tests kill only
 * their own descendants at cleanup: a pid that ended long ago may belong by now to a process of
 * another test file running in parallel.
 */
export function isDescendantOf(pid: number, ancestor: number = process.pid): boolean {
  for (let p = pid, steps = 0; p > 1 && steps < 64; steps++) {
    if (p === ancestor) return true;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return false;
    }
  }
  return false;
}
