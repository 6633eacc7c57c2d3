// How far a dump or a restore is, for whoever shows it (the CLI draws a line on a terminal). Core only
// says where it is: the step it is in, and counts of tasks, pages and connections. The calls are cheap
// (a few a task, one per chunk of pages) and none is made when no hook is given.

/** The steps of a dump and of a restore, in the order they come. */
export type ProgressPhase =
  // dump
  | 'freezing'
  | 'dumping tasks'
  | 'writing memory'
  | 'writing images'
  // restore
  | 'reading images'
  | 'opening files'
  | 'connections'
  | 'restoring tasks'
  | 'filling memory'
  | 'resuming';

/** What is counted: tasks dumped or restored, pages written or filled, TCP/UDP sockets. */
export type ProgressKind = 'tasks' | 'pages' | 'connections';

/** DumpOptions.progress / RestoreOptions.progress: told what the work is doing, as it goes. */
export interface Progress {
  /** A step begins. */
  phase(name: ProgressPhase): void;
  /**
   * `done` of `total` items of `kind` so far. A total may grow: a dump learns how many pages a task
   * has when it comes to that task. `total` is undefined when it is not known beforehand.
   */
  count(kind: ProgressKind, done: number, total?: number): void;
}

/** The flow's side of a Progress hook: keeps the counts, and is a no-op without a hook. */
export class ProgressTracker {
  private readonly done: Record<ProgressKind, number> = { tasks: 0, pages: 0, connections: 0 };
  private readonly totals: Record<ProgressKind, number | undefined> = {
    tasks: undefined,
    pages: undefined,
    connections: undefined,
  };
  /** For mm's page copiers: `pages` just written or filled (undefined without a hook). */
  readonly pages: ((pages: number) => void) | undefined;

  constructor(private readonly hook: Progress | undefined) {
    this.pages = hook ? (n) => this.add('pages', n) : undefined;
  }

  phase(name: ProgressPhase): void {
    this.hook?.phase(name);
  }

  /** Sets the total of `kind` (the done count stays). */
  total(kind: ProgressKind, total: number): void {
    if (!this.hook) return;
    this.totals[kind] = total;
    this.hook.count(kind, this.done[kind], total);
  }

  /** Adds to the total of `kind`. */
  more(kind: ProgressKind, n: number): void {
    if (this.hook) this.total(kind, (this.totals[kind] ?? 0) + n);
  }

  /** Items of `kind` done so far. */
  doneOf(kind: ProgressKind): number {
    return this.done[kind];
  }

  /** `n` more items of `kind` done. */
  add(kind: ProgressKind, n = 1): void {
    if (!this.hook) return;
    this.done[kind] += n;
    this.hook.count(kind, this.done[kind], this.totals[kind]);
  }
}
