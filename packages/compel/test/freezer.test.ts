// Seizing through the cgroup freezer: freeze, seize every thread while frozen, thaw, inject, release.
import fs from 'node:fs';
import path from 'node:path';
import { SYS } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CgroupFreezer, cgroup2Mount, Parasite, seizeTree } from '../src/index.js';
import { cycle } from './cycle.js';
import {
  buildWorkloads,
  cleanup,
  failLines,
  onCleanup,
  readLines,
  startWorkload,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** Rounds per freezer test (each one freezes and thaws the cgroup). */
const ROUNDS = 20;

/** A fresh cgroup under `parent`, removed (once empty) at cleanup. */
function makeCgroup(parent: string): string {
  const dir = path.join(parent, `criu-ts-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  fs.mkdirSync(dir);
  onCleanup(() => {
    // Runs before the processes are killed: move them back to the parent so that rmdir works at once.
    for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        fs.writeFileSync(path.join(parent, 'cgroup.procs'), pid);
      } catch {
        // it exited meanwhile
      }
    }
    const v2 = fs.existsSync(path.join(dir, 'cgroup.freeze'));
    fs.writeFileSync(path.join(dir, v2 ? 'cgroup.freeze' : 'freezer.state'), v2 ? '0' : 'THAWED');
    fs.rmdirSync(dir);
  });
  return dir;
}

function moveInto(cg: string, pid: number): void {
  fs.writeFileSync(path.join(cg, 'cgroup.procs'), String(pid));
}

describe('freezeCgroup', () => {
  it('cgroup v2: counter is frozen, seized, thawed, injected into and released; it keeps counting', async () => {
    const cg = makeCgroup(cgroup2Mount());
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    moveInto(cg, w.pid);
    const freezer = new CgroupFreezer(cg);
    expect(freezer.version).toBe(2);
    for (let i = 0; i < ROUNDS; i++) {
      const tree = cycle(w.pid, {
        freezeCgroup: cg,
        inspect: (t) => {
          expect(t.timings.freezeMs).toBeGreaterThan(0);
          expect(freezer.isFrozen()).toBe(false); // thawed again, tasks still in their ptrace stops
          expect(fs.readFileSync(path.join(cg, 'cgroup.freeze'), 'utf8').trim()).toBe('0');
        },
      });
      expect(tree.tasks).toHaveLength(1);
    }
    const n = readLines(w.report).length;
    await waitForLine(w.report, (_l, i) => i >= n + 3, { pid: w.pid });
    expect(
      readLines(w.report)
        .slice(1)
        .every((v, i) => Number(v) === i + 1),
    ).toBe(true);
    expect(failLines(w.report)).toEqual([]);
  });

  it('cgroup v2 by relative path: every thread of the threads workload is seized while frozen', async () => {
    const mount = cgroup2Mount();
    const cg = makeCgroup(mount);
    const w = startWorkload('threads');
    await waitForLine(w.report, /^TICK /, { pid: w.pid });
    moveInto(cg, w.pid);
    for (let i = 0; i < ROUNDS; i++) {
      const tree = seizeTree(w.pid, { freezeCgroup: path.relative(mount, cg) });
      try {
        const task = tree.task(w.pid);
        const tids = fs.readdirSync(`/proc/${w.pid}/task`).map(Number);
        expect(task.threads.map((t) => t.tid).sort((a, b) => a - b)).toEqual(tids.sort((a, b) => a - b));
        const p = Parasite.infect(tree, w.pid);
        expect(p.call(SYS.gettid)).toBe(BigInt(w.pid));
        p.cure();
      } finally {
        tree.release();
      }
    }
    const from = readLines(w.report).length;
    await waitForLine(w.report, /^TICK /, { pid: w.pid, fromLine: from });
    expect(failLines(w.report)).toEqual([]);
  });

  it.runIf(
    fs.existsSync('/sys/fs/cgroup/freezer/freezer.state') || fs.existsSync('/sys/fs/cgroup/freezer/tasks'),
  )('cgroup v1 freezer hierarchy', async () => {
    const cg = makeCgroup('/sys/fs/cgroup/freezer');
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    moveInto(cg, w.pid);
    expect(new CgroupFreezer(cg).version).toBe(1);
    for (let i = 0; i < ROUNDS; i++) cycle(w.pid, { freezeCgroup: cg });
    expect(fs.readFileSync(path.join(cg, 'freezer.state'), 'utf8').trim()).toBe('THAWED');
    const n = readLines(w.report).length;
    await waitFor(() => readLines(w.report).length >= n + 3, 'more counting');
    expect(failLines(w.report)).toEqual([]);
  });
});
