// The death guard of a restore's last steps (restore/guard.ts), in a Node process of its own that stands
// for criu-ts: SIGKILLed while the guard is armed, the guard kills every task of its table, also past pids
// that are gone; disarmed, the guard goes and the tasks live on.
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, procState, REPO, spawnClean, waitFor } from './helpers.js';

afterEach(() => cleanup());

const GUARD = path.join(REPO, 'packages/core/dist/restore/guard.js');
const alive = (pid: number) => !['gone', 'Z', 'X'].includes(procState(pid));

/** A Node process that arms a guard for `pids`, says `GUARD <pid>`, then disarms it or waits forever. */
async function standIn(pids: number[], disarm: boolean) {
  const script = `
    const { DeathGuard } = await import(${JSON.stringify(GUARD)});
    const g = DeathGuard.start(); g.arm(${JSON.stringify(pids)});
    ${disarm ? 'g.disarm();' : ''}
    process.stdout.write('GUARD ' + g.pid + '\\n');
    ${disarm ? '' : 'setInterval(() => {}, 1000);'}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  await waitFor(() => /GUARD \d+\n/.test(out) || child.exitCode !== null, 'the guard to be armed');
  const guard = Number(/GUARD (\d+)/.exec(out)?.[1]);
  expect(guard, `stand-in said: ${out}`).toBeGreaterThan(0);
  return { child, closed, guard };
}

describe('death guard', () => {
  it('kills every task of its table when criu-ts dies before disarming it', async () => {
    const tasks = [
      spawnClean(['/bin/sleep', '1000']),
      spawnClean(['/bin/sleep', '1000']),
      spawnClean(['/bin/sleep', '1000']),
    ];
    // A pid that is gone (killed and reaped) first in the table: its failed kill must not stop the loop.
    const gone = spawnSync('true').pid as number;
    const { child, closed, guard } = await standIn([gone, ...tasks], false);
    try {
      expect(tasks.every(alive)).toBe(true);
      child.kill('SIGKILL');
      await closed;
      await waitFor(() => !tasks.some(alive), 'the guard to kill the tasks', 5000);
    } finally {
      // The guard was re-parented to this subreaper when its criu-ts died: ours to reap.
      killAndReap(guard);
    }
  });

  it('disarmed, goes away and leaves the tasks running', async () => {
    const tasks = [spawnClean(['/bin/sleep', '1000']), spawnClean(['/bin/sleep', '1000'])];
    const { closed, guard } = await standIn(tasks, true);
    await closed;
    expect(procState(guard)).toBe('gone');
    expect(tasks.filter((p) => !alive(p))).toEqual([]);
  });
});
