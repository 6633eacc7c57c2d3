// What a test file starts and makes, undone after each test: the cleanups it registered (newest
// first), then every process it tracked that is still below this process, SIGKILLed first and then
// reaped by pid (a child is re-parented to us, and reapable, only once its parent died), then the
// steps that need those processes gone (unmounting), then its temp dirs. Only our own descendants
// are killed: a pid that ended long ago may belong by now to another test file's process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDescendantOf } from './index.js';

export interface TestResources {
  /** A fresh temp dir, removed by cleanup(). */
  tempDir(prefix?: string): string;
  /** Remember pids to kill and reap in cleanup() (only while they are our descendants). */
  track(...pids: number[]): void;
  /** Run `fn` in cleanup(), before processes are killed (newest first). */
  onCleanup(fn: () => void): void;
  /** Run `fn` in cleanup(), once the processes are gone (newest first): unmounting. */
  afterKill(fn: () => void): void;
  /** Undo everything; throws the first error once all of it was tried. */
  cleanup(): void;
}

/** One test file's resources. `killAndReap(pid)`: the caller's SIGKILL-and-waitpid (compel's); `prefix`: of its temp dirs. */
export function testResources({
  killAndReap,
  prefix,
}: {
  killAndReap: (pid: number) => void;
  prefix: string;
}): TestResources {
  const started: number[] = [];
  const tempDirs: string[] = [];
  const before: Array<() => void> = [];
  const after: Array<() => void> = [];

  /** Run every step, remembering the first error. */
  const runAll = (steps: Array<() => void>, errors: unknown[]) => {
    for (const fn of steps) {
      try {
        fn();
      } catch (e) {
        errors.push(e);
      }
    }
  };

  return {
    tempDir(p = prefix) {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), p));
      tempDirs.push(d);
      return d;
    },
    track(...pids) {
      for (const p of pids) if (!started.includes(p)) started.push(p);
    },
    onCleanup(fn) {
      before.push(fn);
    },
    afterKill(fn) {
      after.push(fn);
    },
    cleanup() {
      const errors: unknown[] = [];
      runAll(before.splice(0).reverse(), errors);
      const pids = started
        .splice(0)
        .reverse()
        .filter((pid) => isDescendantOf(pid));
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      runAll(
        pids.map((pid) => () => killAndReap(pid)),
        errors,
      );
      runAll(after.splice(0).reverse(), errors);
      for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
      if (errors.length) throw errors[0];
    },
  };
}
