/** Names of the programs in tools/workloads/src/<name>.c. */
export type WorkloadName =
  | 'aio'
  | 'appender'
  | 'busy'
  | 'counter'
  | 'cow'
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

/**
 * Compile every workload whose binary is missing or older than its source
 * (at most once per process; safe to run concurrently from several
 * processes). Resolves to the absolute bin directory. Rejects with gcc's
 * message if a compile fails.
 */
export declare function buildWorkloads(): Promise<string>;

/** Absolute path of a workload binary. Throws for an unknown name. */
export declare function workloadPath(name: WorkloadName): string;

/** Whether `pid` is `ancestor` (default: this process) or one of its descendants. */
export function isDescendantOf(pid: number, ancestor?: number): boolean;
