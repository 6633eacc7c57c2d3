// Notify hooks: a caller is told when a dump or restore reaches one of CRIU's action-script stages,
// and may stop it there by throwing. The RPC service answers CRIU's NOTIFY messages through it (the
// client's reply decides), `--action-script` runs its scripts through it. The stage names, the points
// where they run and the pid each carries are CRIU 4.2's:
//
//   stage                  CRIU runs it                                        pid (CRTOOLS_INIT_PID)
//   pre-dump               dump, before the tree is seized                     the root's
//   network-lock           dump, a tree with its own net namespace, before     the root's
//                          the namespace is locked (never for a tree in the
//                          dumper's net namespace: its connections are locked
//                          one by one, without a script)
//   query-ext-files        dump, RPC only, after the lock: the client lists    -
//                          external files (not in criu-ts)
//   post-dump              dump, images written, tree still frozen and locked  the root's
//   network-unlock         dump that fails or leaves the tree running, and     the root's
//                          restore before the tasks resume; again only for a
//                          tree with its own net namespace
//   pre-restore            restore, images read, before any task exists        0 (no root yet)
//   setup-namespaces       restore, root's namespaces made (only if it has     the root's
//   post-setup-namespaces  its own namespaces; criu-ts refuses those at dump)  the root's
//   post-restore           restore, every task restored, none running          the root's
//   pre-resume             restore, last step before the tasks are let go      the root's
//   post-resume            restore, the tree runs                              the root's
//   orphan-pts-master      restore, RPC only, passes a pty master fd (no)      -
//   status-ready           service, page server, lazy-pages daemon ready       -
//   pre-stream             dump to the image streamer (--stream; no)           -
//
// criu-ts's dump and restore call `pre-dump`, `post-dump`, `pre-restore`, `post-restore`,
// `pre-resume` and `post-resume`; the others are here for the service and for what comes later.
// `--action-script`'s scripts are a Notify too (action-scripts.ts).
//
// A failure, in CRIU and here: pre-dump fails the dump before anything is touched; post-dump fails it
// with the tree resumed and its connections unlocked (the images stay, stats-dump is not written);
// pre-restore fails the restore before any task exists; post-restore kills every restored task. At
// pre-resume CRIU only logs the failure and resumes the tree (its network is unlocked by then); criu-ts
// lifts the lock only once the tree runs, so it can still stop cleanly there: it kills the tasks as at
// post-restore. At post-resume both only log it; the restore succeeds.

/**
 * CRIU's action-script stage names (CRTOOLS_SCRIPT_ACTION, and criu_notify.script over RPC), in the
 * order of CRIU's enum script_actions.
 */
export const NOTIFY_STAGES = [
  'pre-stream',
  'pre-dump',
  'post-dump',
  'pre-restore',
  'post-restore',
  'network-lock',
  'network-unlock',
  'setup-namespaces',
  'post-setup-namespaces',
  'post-resume',
  'pre-resume',
  'orphan-pts-master',
  'status-ready',
  'query-ext-files',
] as const;

/** One of CRIU's action-script stages. */
export type NotifyStage = (typeof NOTIFY_STAGES)[number];

/**
 * Called synchronously at each stage with the root task's real pid (what CRIU puts in
 * CRTOOLS_INIT_PID; 0 where there is no root task yet: pre-restore). Throwing aborts the dump or
 * restore cleanly: a dump leaves the tree running as it was, a restore kills what it made. A throw at
 * post-resume (the tree runs already) is logged and the restore still succeeds, as in CRIU.
 */
export type Notify = (stage: NotifyStage, pid: number) => void;

/**
 * Whether CRIU's RPC NOTIFY message carries the pid (criu_notify.pid) at this stage: only at
 * setup-namespaces and post-restore, where CRIU sets has_pid. Shell scripts get CRTOOLS_INIT_PID
 * at every stage that has a root task; `Notify` is given that.
 */
export function rpcNotifyHasPid(stage: NotifyStage): boolean {
  return stage === 'setup-namespaces' || stage === 'post-restore';
}

/** The line a failed stage gives: "notify post-dump failed: <reason>". */
export function notifyFailure(stage: NotifyStage, err: unknown): string {
  return `notify ${stage} failed: ${err instanceof Error ? err.message : String(err)}`;
}

/**
 * Run the hook at `stage`; a throw comes back as the error `fail` makes of its line (a DumpError or
 * a RestoreError), with the hook's error as its cause. A hook that returns a promise (an async
 * function passes for a `Notify` in TypeScript) fails: nothing would wait for it.
 */
export function callNotify(
  notify: Notify | undefined,
  stage: NotifyStage,
  pid: number,
  fail: (message: string, cause: unknown) => Error,
): void {
  if (!notify) return;
  let returned: unknown;
  try {
    returned = notify(stage, pid);
  } catch (e) {
    throw fail(notifyFailure(stage, e), e);
  }
  if (isThenable(returned)) {
    returned.then(undefined, () => undefined); // its outcome comes too late: not an unhandled rejection
    throw fail(notifyFailure(stage, 'the hook returned a promise; it must be synchronous'), undefined);
  }
}

/**
 * Run the hook at a stage past the point of no return (post-resume): a failure is only reported
 * through `report`, as CRIU logs "Post-resume script ret code N" and still succeeds.
 */
export function reportNotify(
  notify: Notify | undefined,
  stage: NotifyStage,
  pid: number,
  report: (line: string) => void,
): void {
  try {
    callNotify(notify, stage, pid, (message) => new Error(message));
  } catch (e) {
    report(`${(e as Error).message} (the tree runs already: nothing is undone)`);
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    (typeof v === 'object' || typeof v === 'function') &&
    v !== null &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}
