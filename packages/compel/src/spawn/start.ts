// Starting processes that criu-ts will trace.
//
// A process started with child_process is a libuv child: libuv's SIGCHLD handler calls waitpid() on it
// and so steals its ptrace stops and reaps it behind our back. Instead this process becomes a child
// subreaper and starts the target through a double fork: `sh -c '... exec "$@" & echo $!'`. The shell
// (a libuv child, reaped by libuv) forks the target and exits at once; the target is re-parented to us,
// and only our own waitpid(pid) ever sees its state changes.

import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { ProcDir } from '@criu-ts/bfd';
import { setChildSubreaper } from '@criu-ts/sys';
import { CompelError } from '../errors.js';
import { isDeadOrZombie } from '../util/proc.js';
import { Backoff } from '../util/wait.js';

// node:child_process (with net, stream and dgram beneath it) is loaded when first needed: most runs
// start no program.
const childProcess = () =>
  createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');

export interface StartOptions {
  /** Working directory (default: ours). */
  cwd?: string;
  /** The whole environment of the new process (default: ours). */
  env?: Record<string, string>;
  /** File for fd 0 (default /dev/null). */
  stdin?: string;
  /** File for fd 1, created or truncated (default /dev/null). */
  stdout?: string;
  /** File for fd 2, created or truncated (default /dev/null). */
  stderr?: string;
  /** Start the process in a new session (setsid(1), which keeps the pid). */
  setsid?: boolean;
  /** How long to wait for the execve of argv[0] to have happened (default 30 s: a loaded machine is slow). */
  timeoutMs?: number;
}

const SHELL = '/bin/sh';

// $1..$3 are the stdio files, the rest is the command; nothing of argv is ever parsed by the shell.
// `exec` in the background job replaces the forked shell, so the pid `$!` is the pid of the target.
const SCRIPT = 'in=$1 out=$2 err=$3; shift 3; exec "$@" <"$in" >"$out" 2>"$err" & echo $!';

let subreaper = false;

/** Make this process a child subreaper (once). */
export function ensureSubreaper(): void {
  if (subreaper) return;
  setChildSubreaper(true);
  subreaper = true;
}

function findInPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    try {
      return realpathSync(join(dir, name));
    } catch {
      // not there
    }
  }
  return undefined;
}

let shellExe: string | undefined;
let setsidExe: string | null | undefined;

function realExe(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * Start `argv` as a re-parented child of this process (see the file comment) and return its pid once
 * argv[0] has been exec'ed. The process is not traced yet; seize it with seizeTree(). Stop it with
 * killAndReap(pid).
 */
export function startTraceable(argv: string[], opts: StartOptions = {}): number {
  if (argv.length === 0 || argv[0] === '') throw new CompelError('startTraceable: empty argv');
  ensureSubreaper();
  shellExe ??= realExe(SHELL);
  let prefix: string[] = [];
  if (opts.setsid) {
    if (setsidExe === undefined) setsidExe = findInPath('setsid') ?? null;
    if (setsidExe === null) throw new CompelError('startTraceable: setsid(1) not found in PATH');
    prefix = [setsidExe];
  }
  const out = childProcess().execFileSync(
    SHELL,
    [
      '-c',
      SCRIPT,
      'sh',
      opts.stdin ?? '/dev/null',
      opts.stdout ?? '/dev/null',
      opts.stderr ?? '/dev/null',
      ...prefix,
      ...argv,
    ],
    {
      cwd: opts.cwd,
      env: opts.env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const pid = Number(out.trim());
  if (!Number.isInteger(pid) || pid <= 0) {
    throw new CompelError(`startTraceable(${argv[0]}): the shell printed ${JSON.stringify(out)}`);
  }
  waitForExec(pid, argv, prefix.length > 0 ? realExe(prefix[0] as string) : undefined, opts.timeoutMs);
  return pid;
}

// Until execve() the new pid is a copy of the shell (then of setsid). It has exec'ed once its exe is
// neither of those, or (when argv[0] is itself a shell) once its command line is argv.
function waitForExec(pid: number, argv: string[], setsidPath: string | undefined, timeoutMs = 30_000): void {
  const wantCmdline = `${argv.join('\0')}\0`;
  const backoff = new Backoff(timeoutMs);
  for (;;) {
    let exe: string | undefined;
    let cmdline: string | undefined;
    try {
      const proc = ProcDir.open(pid);
      try {
        exe = proc.readlink('exe');
        cmdline = proc.readText('cmdline');
      } finally {
        proc.close();
      }
    } catch {
      // gone, or a zombie (no exe link): it ran and ended; the caller reaps it
      if (isDeadOrZombie(pid)) return;
    }
    if (exe !== undefined) {
      if (cmdline === wantCmdline) return;
      const name = exe.endsWith(' (deleted)') ? exe.slice(0, -10) : exe;
      // During execve the new exe shows a moment before the new arguments do: wait for those too.
      if (name !== shellExe && name !== setsidPath && cmdline !== '') return;
    }
    if (!backoff.wait()) {
      throw new CompelError(
        `startTraceable(${argv[0]}): pid ${pid} did not exec within ${timeoutMs} ms`,
        pid,
      );
    }
  }
}
