// What undoes a change criu-ts made to the outside world if criu-ts dies before it can undo it itself
// (SIGKILL, the OOM killer, a crash): a frozen cgroup (--freeze-cgroup), a network lock on the
// connections of a tree that goes on running.
//
// The guard is a small shell started before the change is made, in a session of its own (a Ctrl-C meant
// for criu-ts does not reach it), reading a pipe only criu-ts writes to:
//   - each line criu-ts writes is a shell command that undoes part of the change, sent before that part
//     is made;
//   - `disarm` means criu-ts has settled the change itself (undone it, or kept it on purpose): exit;
//   - an end of file without `disarm` means criu-ts died: the commands run, newest last. A guard made
//     with `whileRunning` runs them only if one of those tasks still runs (neither gone nor a zombie):
//     a dump that had finished killed its tree before settling what it keeps for the restore (killAll
//     waits for that), and then nothing must be undone.

import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { close, pipe2 } from '@criu-ts/sys';
import { CompelError } from '../errors.js';

// node:child_process (with net, stream and dgram beneath it) is loaded when first needed: most runs
// start no program.
const childProcess = () =>
  createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');

const SCRIPT = `undo=
while IFS= read -r line; do
  [ "$line" = disarm ] && exit 0
  undo="$undo$line
"
done
[ "$1" = always ] && { eval "$undo"; exit 0; }
shift
for pid in "$@"; do
  state=$(sed -n 's/^State:[[:space:]]*\\(.\\).*/\\1/p' "/proc/$pid/status" 2>/dev/null)
  case $state in
    ''|Z|X) ;;
    *) eval "$undo"; exit 0 ;;
  esac
done`;

/** One argument, quoted for the shell. */
const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

export interface DeathGuardOptions {
  /** Undo only if one of these tasks still runs when criu-ts dies (default: always undo). */
  whileRunning?: Iterable<number>;
}

export class DeathGuard {
  /** The guard's pid (it outlives criu-ts on purpose; once disarmed it exits by itself). */
  readonly pid: number;
  private fd: number | undefined;

  /** Start a guard; `what` names it in the one-line error if /bin/sh cannot be started. */
  constructor(what: string, opts: DeathGuardOptions = {}) {
    const pids = opts.whileRunning ? ['while-running', ...[...opts.whileRunning].map(String)] : ['always'];
    const [readEnd, writeEnd] = pipe2();
    try {
      const child = childProcess().spawn('/bin/sh', ['-c', SCRIPT, 'criu-ts-guard', ...pids], {
        detached: true,
        stdio: [readEnd, 'ignore', 'ignore'],
      });
      child.on('error', () => {});
      if (child.pid === undefined) throw new CompelError(`${what}: cannot start /bin/sh for its guard`);
      child.unref();
      this.pid = child.pid;
    } catch (e) {
      close(writeEnd);
      throw e;
    } finally {
      close(readEnd);
    }
    this.fd = writeEnd;
  }

  /** Undo with the command `argv` if criu-ts dies; call before making what it undoes. */
  undoWith(argv: readonly string[]): void {
    this.send(argv.map(quote).join(' '));
  }

  /** Undo by writing `text` to the file `path` (a cgroup control file) if criu-ts dies. */
  undoByWriting(path: string, text: string): void {
    this.send(`printf %s ${quote(text)} > ${quote(path)}`);
  }

  /** The change is settled: the guard exits without touching it. */
  disarm(): void {
    if (this.fd === undefined) return;
    this.send('disarm');
    close(this.fd);
    this.fd = undefined;
  }

  private send(line: string): void {
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, `${line}\n`);
    } catch {
      // the guard is gone (killed from outside): criu-ts goes on without it
    }
  }
}
