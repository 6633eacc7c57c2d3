// Each workload is seized, inspected, injected into (one getpid, one batch of BATCH getpid) and released
// ITERATIONS times, and must notice nothing: its own checks pass, blocked syscalls complete, sleeps last
// as long as asked, stopped tasks stay stopped, zombies stay zombies, every thread keeps running.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { __WALL, kill, SIGCONT, SIGUSR1, SYS, WNOHANG, waitpid } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BATCH, cycle, ITERATIONS } from './cycle.js';
import {
  buildWorkloads,
  cleanup,
  cpuTicks,
  failLines,
  procState,
  procSyscall,
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

describe(`${ITERATIONS} x seize, inject (getpid + batch of ${BATCH}), release`, () => {
  it('counter: keeps counting, no number skipped or repeated', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    for (let i = 0; i < ITERATIONS; i++) cycle(w.pid);
    const n = readLines(w.report).length;
    await waitForLine(w.report, (_l, i) => i >= n + 5, { pid: w.pid });
    const lines = readLines(w.report);
    expect(lines[0]).toBe(`READY ${w.pid}`);
    const numbers = lines.slice(1).map(Number);
    expect(numbers.every((v, i) => v === i + 1)).toBe(true);
    expect(failLines(w.report)).toEqual([]);
  });

  it('threads: every worker keeps running, the self-checks pass', async () => {
    const w = startWorkload('threads');
    await waitForLine(w.report, /^TICK /, { pid: w.pid });
    let maxThreads = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const tree = cycle(w.pid);
      maxThreads = Math.max(maxThreads, tree.task(w.pid).threads.length);
      expect(tree.task(w.pid).threads.length).toBeGreaterThanOrEqual(9);
    }
    expect(maxThreads).toBeGreaterThanOrEqual(9);
    // The TICK sum still grows ...
    const tick = (l: string) => Number(l.split(' ')[1]);
    const from = readLines(w.report).length;
    const t1 = await waitForLine(w.report, /^TICK /, { pid: w.pid, fromLine: from });
    const next = readLines(w.report).length;
    const t2 = await waitForLine(w.report, /^TICK /, { pid: w.pid, fromLine: next });
    expect(tick(t2)).toBeGreaterThan(tick(t1));
    // ... and so does the CPU time of each of the 8 long-lived workers.
    const tids = () => fs.readdirSync(`/proc/${w.pid}/task`).map(Number);
    const before = new Map(tids().map((t) => [t, cpuTicks(w.pid, t) ?? 0]));
    await waitFor(
      () => {
        const grown = [...before].filter(([t, c]) => t !== w.pid && (cpuTicks(w.pid, t) ?? -1) > c);
        return grown.length >= 8;
      },
      'all 8 workers to use CPU',
      10_000,
    );
    expect(failLines(w.report)).toEqual([]);
  });

  it('tree: 5 tasks, parents first, ids as reported, all still in pause()', async () => {
    const w = startWorkload('tree');
    await waitForLine(w.report, /^TREE /, { pid: w.pid });
    const reported = readLines(w.report)
      .filter((l) => l.startsWith('TASK '))
      .map((l) => l.split(' ').slice(1).map(Number) as [number, number, number, number]);
    expect(reported).toHaveLength(5);
    track(...reported.map((r) => r[0]).filter((p) => p !== w.pid));
    for (let i = 0; i < ITERATIONS; i++) {
      const tree = cycle(w.pid);
      expect(tree.tasks).toHaveLength(5);
      const seen = new Set<number>();
      for (const t of tree.tasks) {
        if (t.pid !== w.pid) expect(seen.has(t.ppid)).toBe(true); // parent listed before child
        seen.add(t.pid);
        const r = reported.find((x) => x[0] === t.pid)!;
        // The root may have written its TASK line while its parent was still the intermediate shell of
        // startTraceable; since then it is our (re-parented) child.
        if (t.pid === w.pid) expect([t.pid, t.ppid, t.pgid, t.sid]).toEqual([r[0], process.pid, r[2], r[3]]);
        else expect([t.pid, t.ppid, t.pgid, t.sid]).toEqual(r);
        expect(t.children).toEqual(
          reported
            .filter((x) => x[1] === t.pid)
            .map((x) => x[0])
            .sort((a, b) => a - b),
        );
      }
    }
    await waitFor(
      () => reported.every((r) => procState(r[0]) === 'S' && procSyscall(r[0]) === SYS.pause),
      'pause()',
    );
    expect(failLines(w.report)).toEqual([]);
  });

  it('pipe_reader: the blocked read() completes when the FIFO is written afterwards', async () => {
    const dir = fs.mkdtempSync('/tmp/criu-ts-compel-fifo-');
    const fifo = path.join(dir, 'fifo');
    try {
      execFileSync('mkfifo', [fifo]);
      const w = startWorkload('pipe_reader', [fifo]);
      await waitForLine(w.report, /^READY /, { pid: w.pid });
      await waitFor(() => procSyscall(w.pid) === SYS.read, 'read()');
      for (let i = 0; i < ITERATIONS; i++) cycle(w.pid);
      // Right after the release the task is briefly running (restarting read()), then blocks again.
      await waitFor(() => procSyscall(w.pid) === SYS.read, 'read() again');
      expect(readLines(w.report)).toEqual([`READY ${w.pid}`]);
      const fd = fs.openSync(fifo, fs.constants.O_RDWR);
      fs.writeSync(fd, 'hello compel\n');
      fs.closeSync(fd);
      expect(await waitForLine(w.report, /^READ /)).toBe('READ hello compel');
      let st: ReturnType<typeof waitpid> = null;
      await waitFor(() => {
        st = waitpid(w.pid, __WALL | WNOHANG);
        return st !== null;
      }, 'exit');
      expect(st).toMatchObject({ exited: true, exitCode: 0 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sleeper: the nanosleep lasts as long as asked', async () => {
    const MS = 3000;
    const w = startWorkload('sleeper', [String(MS)]);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    // After an interrupted sleep is restarted the task sits in restart_syscall (ERESTART_RESTARTBLOCK).
    const sleepCalls: number[] = [SYS.nanosleep, SYS.clock_nanosleep, SYS.restart_syscall];
    const sleeping = () => sleepCalls.includes(procSyscall(w.pid) ?? -1);
    await waitFor(sleeping, 'nanosleep()');
    for (let i = 0; i < ITERATIONS; i++) cycle(w.pid);
    // Back in the (restarted) sleep: the rounds took less than MS.
    const slept0 = () => readLines(w.report).some((l) => l.startsWith('SLEPT'));
    await waitFor(() => sleeping() || slept0(), 'the sleep to resume');
    expect(slept0()).toBe(false);
    const slept = await waitForLine(w.report, /^SLEPT /, { pid: w.pid });
    expect(Number(slept.split(' ')[1])).toBeGreaterThanOrEqual(MS);
    expect(failLines(w.report)).toEqual([]);
  });

  it('stopper: a group-stopped task stays stopped (T) and continues on SIGCONT', async () => {
    const w = startWorkload('stopper');
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'T', 'state T');
    for (let i = 0; i < ITERATIONS; i++) {
      const tree = cycle(w.pid);
      expect(tree.task(w.pid).state).toBe('stopped');
      expect(procState(w.pid)).toBe('T');
    }
    expect(readLines(w.report)).toEqual([`READY ${w.pid}`]);
    kill(w.pid, SIGCONT);
    await waitForLine(w.report, /^CONTINUED$/, { pid: w.pid });
    await waitForLine(w.report, /^ALIVE 2$/, { pid: w.pid });
    expect(failLines(w.report)).toEqual([]);
  });

  it('zombie: the zombie child stays a zombie with its exit code', async () => {
    const w = startWorkload('zombie');
    const z = Number((await waitForLine(w.report, /^ZOMBIE /, { pid: w.pid })).split(' ')[1]);
    track(z);
    await waitFor(() => procSyscall(w.pid) === SYS.pause, 'pause()');
    for (let i = 0; i < ITERATIONS; i++) {
      const tree = cycle(w.pid);
      expect(tree.tasks.map((t) => [t.pid, t.state])).toEqual([
        [w.pid, 'running'],
        [z, 'zombie'],
      ]);
      expect(procState(z)).toBe('Z');
    }
    kill(w.pid, SIGUSR1);
    expect(await waitForLine(w.report, /^REAPED /, { pid: w.pid })).toBe(`REAPED ${z} 42`);
  });
});
