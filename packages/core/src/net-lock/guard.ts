// What lifts a dump's network lock if criu-ts dies before it can (SIGKILL, OOM killer, a crash).
//
// A lock outlives criu-ts on purpose: it must hold from the dump to the restore. So when criu-ts is
// killed half way through a dump that would have left the tree running (-R, or a dump that was about to
// fail), nothing of criu-ts is left to lift it, and the tree's connections stay cut off for good.
// The guard is a small shell started with the lock, in a session of its own (a Ctrl-C meant for
// criu-ts does not reach it), reading a pipe only criu-ts writes to:
//   - each line criu-ts writes is a command that undoes part of the lock, sent before that part is made;
//   - `disarm` means criu-ts has settled the lock itself (lifted it, or kept it for the restore): exit;
//   - an end of file without `disarm` means criu-ts died. The guard then looks at the tree: if any of
//     its tasks still runs, the dump did not kill it and the lock must go, so the commands run; if all
//     are gone, the dump had finished and killed the tree (killAll waits for that before the lock is
//     settled), so the lock stays for the restore.
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { close, pipe2 } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';

const SCRIPT = `undo=
while IFS= read -r line; do
  [ "$line" = disarm ] && exit 0
  undo="$undo$line
"
done
for pid in "$@"; do
  state=$(sed -n 's/^State:[[:space:]]*\\(.\\).*/\\1/p' "/proc/$pid/status" 2>/dev/null)
  case $state in
    ''|Z|X) ;;
    *) eval "$undo"; exit 0 ;;
  esac
done`;

/** One argument, quoted for the shell. */
const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

export class LockGuard {
  private fd: number | undefined;

  /** Start a guard for the dump of the tree whose tasks are `pids`. */
  constructor(pids: Iterable<number>) {
    const [readEnd, writeEnd] = pipe2();
    try {
      const child = spawn('/bin/sh', ['-c', SCRIPT, 'criu-ts-lock-guard', ...[...pids].map(String)], {
        detached: true,
        stdio: [readEnd, 'ignore', 'ignore'],
      });
      child.on('error', () => {});
      if (child.pid === undefined) throw new DumpError('network lock: cannot start /bin/sh for its guard');
      child.unref();
    } catch (e) {
      close(writeEnd);
      throw e;
    } finally {
      close(readEnd);
    }
    this.fd = writeEnd;
  }

  /** Undo with `argv` if criu-ts dies while the tree runs; call before making what it undoes. */
  undoWith(argv: readonly string[]): void {
    this.send(argv.map(quote).join(' '));
  }

  /** The lock is settled: the guard exits without touching it. */
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
      // the guard is gone (killed from outside): the dump goes on without it
    }
  }
}
