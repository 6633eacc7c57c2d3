// Seizing trees that change while they are seized, and the error paths.
import fs from 'node:fs';
import { SYS } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CompelError, killAndReap, Parasite, seizeTree, startTraceable } from '../src/index.js';
import { ITERATIONS } from './cycle.js';
import {
  buildWorkloads,
  cleanup,
  failLines,
  onCleanup,
  procState,
  readLines,
  startWorkload,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** Children of `pid` right now. */
function childrenOf(pid: number): number[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(' '))
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

describe('seizeTree', () => {
  it('tasks exiting (and appearing) during the seize do not break it', async () => {
    // A shell that forks and execs /bin/true back to back: children appear, exec, exit and turn into
    // zombies all the time, in every phase of the seize.
    const sh = startTraceable(['/bin/sh', '-c', 'while :; do /bin/true; done']);
    track(sh);
    onCleanup(() => {
      // Stop the loop and kill everything it has, including the current child (then ours to reap).
      const tree = seizeTree(sh);
      const pids = tree.tasks.map((t) => t.pid);
      tree.killAll();
      for (const p of pids) killAndReap(p);
    });
    await waitFor(() => childrenOf(sh).length > 0, 'a first child');
    let withChild = 0;
    let vanished = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const tree = seizeTree(sh);
      try {
        expect(tree.tasks[0]?.pid).toBe(sh);
        expect(tree.task(sh).state).toBe('running');
        if (tree.tasks.length > 1) withChild++;
        vanished += tree.vanished;
        for (const t of tree.tasks.slice(1)) expect(t.ppid).toBe(sh);
        const p = Parasite.infect(tree, sh);
        expect(p.call(SYS.getpid)).toBe(BigInt(sh));
        p.cure();
      } finally {
        tree.release();
      }
    }
    // The shell still runs its loop: its child changes.
    const c0 = childrenOf(sh).join();
    await waitFor(() => childrenOf(sh).join() !== c0, 'the shell to fork again');
    expect(procState(sh)).not.toBe('Z');
    console.log(
      `sh loop: ${withChild}/${ITERATIONS} seizes caught a child, ${vanished} tasks vanished mid-seize`,
    );
  });

  it('a pid that does not exist', () => {
    let pid = 4_000_000;
    while (fs.existsSync(`/proc/${pid}`)) pid++;
    expect(() => seizeTree(pid)).toThrow(CompelError);
  });

  it('a tree seized twice: the second seize fails and leaves the first intact', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    const tree = seizeTree(w.pid);
    try {
      expect(() => seizeTree(w.pid)).toThrow(/already traced by/);
      const p = Parasite.infect(tree, w.pid);
      expect(p.call(SYS.getpid)).toBe(BigInt(w.pid));
      p.cure();
    } finally {
      tree.release();
    }
    const n = readLines(w.report).length;
    await waitForLine(w.report, (_l, i) => i >= n + 2, { pid: w.pid });
    expect(failLines(w.report)).toEqual([]);
  });

  it('release() cures a parasite that was not cured, and is idempotent', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    const maps = fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8');
    const tree = seizeTree(w.pid);
    const p = Parasite.infect(tree, w.pid);
    p.call(SYS.getpid);
    expect(fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8')).not.toBe(maps);
    tree.release();
    tree.release();
    expect(p.cured).toBe(true);
    expect(() => p.call(SYS.getpid)).toThrow(CompelError);
    expect(fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8')).toBe(maps);
    const n = readLines(w.report).length;
    await waitForLine(w.report, (_l, i) => i >= n + 2, { pid: w.pid });
    expect(failLines(w.report)).toEqual([]);
  });

  it('killAll() kills every task of a tree and collects the exits', async () => {
    const w = startWorkload('tree');
    await waitForLine(w.report, /^TREE /, { pid: w.pid });
    const pids = readLines(w.report)
      .filter((l) => l.startsWith('TASK '))
      .map((l) => Number(l.split(' ')[1]));
    track(...pids);
    const tree = seizeTree(w.pid);
    expect(tree.tasks.map((t) => t.pid).sort()).toEqual([...pids].sort());
    tree.killAll();
    expect(tree.released).toBe(true);
    // Nothing is traced any more and nothing runs: each task is gone or a zombie waiting for its reaper.
    for (const p of pids) expect(['gone', 'Z']).toContain(procState(p));
    for (const p of pids) killAndReap(p);
    for (const p of pids) expect(procState(p)).toBe('gone');
  });
});
