// --action-script: programs run at each stage of a dump or restore, as CRIU runs them. Each is executed
// (no shell; a bare name is looked up in PATH) with the stage in CRTOOLS_SCRIPT_ACTION, the images
// directory in CRTOOLS_IMAGE_DIR and, from the first stage that has one, the root task's pid in
// CRTOOLS_INIT_PID; stdin on /dev/null, stdout and stderr into criu-ts's log (-o, or stderr). CRIU keeps
// its scripts in a list it adds to at the head: the last --action-script runs first, and so here. Every
// script of a stage runs; if any fails, the stage fails (the dump or restore stops as for a failed RPC
// notification, see index.ts).
import { spawnSync } from 'node:child_process';
import type { Notify, NotifyStage } from './index.js';

export interface ActionScriptsOptions {
  /** The scripts, in the order they were given. */
  scripts: readonly string[];
  /** What CRTOOLS_IMAGE_DIR says (-D, absolute). */
  imagesDir: string;
  /** Where the scripts' output goes: the log's fd. */
  output: number;
  /** Called before a script writes to `output`: lines the log still holds go first. */
  flush?: () => void;
}

/** A Notify that runs the scripts; undefined when there are none. */
export function actionScripts(opts: ActionScriptsOptions): Notify | undefined {
  if (opts.scripts.length === 0) return undefined;
  const order = [...opts.scripts].reverse();
  let initPid: number | undefined;
  return (stage: NotifyStage, pid: number) => {
    if (pid > 0) initPid ??= pid;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CRTOOLS_SCRIPT_ACTION: stage,
      CRTOOLS_IMAGE_DIR: opts.imagesDir,
      ...(initPid !== undefined ? { CRTOOLS_INIT_PID: String(initPid) } : {}),
    };
    const failed: string[] = [];
    for (const script of order) {
      opts.flush?.();
      const r = spawnSync(script, [], { env, stdio: ['ignore', opts.output, opts.output] });
      if (r.error)
        failed.push(
          `${script} could not be run: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`,
        );
      else if (r.signal) failed.push(`${script} was killed by ${r.signal}`);
      else if (r.status !== 0) failed.push(`${script} exited with ${r.status}`);
    }
    if (failed.length) throw new Error(`action script ${failed.join('; ')}`);
  };
}

/** Both hooks, `first` then `then` (RPC notifications, then the scripts, as CRIU runs them). */
export function bothNotify(first: Notify | undefined, then: Notify | undefined): Notify | undefined {
  if (!first || !then) return first ?? then;
  return (stage, pid) => {
    first(stage, pid);
    then(stage, pid);
  };
}
