// -d for the commands that serve (`service`, `page-server`), as CRIU's daemon(): the same command started
// again in a session of its own, told by an environment variable that it is the daemon. It says it is
// ready by writing a few bytes on a pipe (its last fd); the starter returns once they came, so that a
// caller may connect at once.
import { spawn } from 'node:child_process';
import { closeSync, readSync } from 'node:fs';
import { pipe2 } from '@criu-ts/sys';

export interface DaemonStart {
  /** The variable (set to '1') that tells the copy it is the daemon. */
  flag: string;
  /** Variables the copy must not see (e.g. a worker's). */
  unset?: string[];
  /** Its fds 2, 3, ...: 'ignore' or an fd of ours. The ready pipe comes after them. */
  fds: Array<number | 'ignore'>;
  /** How many bytes the daemon writes on the ready pipe. */
  readyBytes: number;
}

/** Starts the daemon; resolves to its pid and the ready bytes, or to undefined bytes if it did not start. */
export function startDaemonCopy(d: DaemonStart): { pid: number | undefined; ready: Buffer | undefined } {
  const [r, w] = pipe2();
  const env: NodeJS.ProcessEnv = { ...process.env, [d.flag]: '1' };
  for (const v of d.unset ?? []) delete env[v];
  let pid: number | undefined;
  try {
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      detached: true,
      stdio: ['ignore', 'ignore', ...d.fds, w],
      env,
    });
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(w);
  }
  const b = Buffer.alloc(d.readyBytes);
  let got = 0;
  try {
    got = readSync(r, b);
  } catch {
    got = 0;
  } finally {
    closeSync(r);
  }
  return { pid, ready: got === d.readyBytes && pid !== undefined ? b : undefined };
}
