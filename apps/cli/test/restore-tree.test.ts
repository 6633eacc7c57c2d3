// `criu-ts restore` of threads and process trees: every thread with its tid, every task with its pid,
// parent, session and process group; zombies stay zombies with their exit code, stopped tasks stay
// stopped. Checked from outside through /proc and the workloads' own reports.
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { type CoreEntry, ImageDir } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  dumpAndKill,
  failLines,
  procStat,
  procState,
  readLines,
  restoreDetached,
  runCli,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** pid, ppid, pgid, sid and state of a task, from /proc. */
function ids(pid: number): string {
  const s = procStat(pid);
  return `${pid} ppid=${s.f(4)} pgid=${s.f(5)} sid=${s.f(6)} ${s.f(3)} ${s.comm}`;
}

/**
 * What a thread's core image says besides its registers and its signal mask (a worker inside
 * pthread_create blocks every signal for a moment: the mask changes by itself).
 */
function threadState(dir: string, tid: number): unknown {
  const core = ImageDir.open(dir).core(tid) as CoreEntry;
  const ti = core.thread_info!;
  const { blk_sigset: _mask, ...rest } = core.thread_core!;
  return { clear_tid_addr: ti.clear_tid_addr, fs_base: ti.gpregs.fs_base, tls: ti.tls, ...rest };
}

const taskCount = (pid: number) => fs.readdirSync(`/proc/${pid}/task`).length;
const lastTick = (report: string) => {
  const t = readLines(report).filter((l) => l.startsWith('TICK '));
  return t.length ? Number(t.at(-1)!.split(' ')[1]) : 0;
};

describe('criu-ts restore: threads', () => {
  it('threads: all 8 workers keep running (TICK grows, /proc/PID/task), no FAIL', async () => {
    const w = startWorkload('threads', ['8']);
    await waitForLine(w.report, /^TICK [1-9]/, { pid: w.pid });
    await waitFor(() => taskCount(w.pid) >= 9, 'eight workers');
    // The main thread and the 8 workers live long; the child threads they create and join live for
    // microseconds, make no blocking call and exit. A worker waits in pthread_join thousands of times a
    // second (a voluntary context switch each): the long-lived tids are the main one and those with
    // many voluntary switches, which no child thread can have.
    const voluntary = (tid: number) => {
      try {
        const st = fs.readFileSync(`/proc/${w.pid}/task/${tid}/status`, 'utf8');
        return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      } catch {
        return 0; // a child thread gone meanwhile
      }
    };
    let workers: number[] = [];
    await waitFor(() => {
      const tids = fs.readdirSync(`/proc/${w.pid}/task`).map(Number);
      workers = [w.pid, ...tids.filter((t) => t !== w.pid && voluntary(t) >= 50)];
      return workers.length === 9;
    }, 'the main thread and 8 workers, each with 50 voluntary switches');
    const dir = await dumpAndKill(w.pid);
    const ticks = readLines(w.report).length;
    const atDump = lastTick(w.report);
    await restoreDetached(dir);
    // Main thread and the 8 workers (tids of the dump; short-lived child threads come and go).
    const alive = fs.readdirSync(`/proc/${w.pid}/task`).map(Number);
    for (const tid of workers) expect(alive).toContain(tid);
    await waitForLine(w.report, (_l, i) => i >= ticks + 4, { pid: w.pid, fromLine: ticks });
    expect(lastTick(w.report)).toBeGreaterThan(atDump);
    expect(taskCount(w.pid)).toBeGreaterThanOrEqual(9);
    expect(failLines(w.report)).toEqual([]);
    // Each worker still spins: every one of them gets CPU time after the restore.
    const cpu = (tid: number) => {
      const s = fs.readFileSync(`/proc/${w.pid}/task/${tid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]);
    };
    const t0 = workers.slice(1, 9).map(cpu);
    await waitFor(
      () => workers.slice(1, 9).every((tid, i) => cpu(tid) > (t0[i] as number)),
      'every worker running',
    );
    // Per-thread state /proc does not show (clear_child_tid, robust list, rseq, TLS base, sigmask,
    // creds...): dump the restored process (-R) and compare the long-lived threads' images.
    const again = path.join(tempDir('criu-ts-restore-again-'), 'images');
    expect((await runCli(['dump', '-t', String(w.pid), '-D', again, '-R'])).code).toBe(0);
    for (const tid of workers)
      expect(threadState(again, tid), `thread ${tid}`).toEqual(threadState(dir, tid));
  }, 120_000); // two dumps and a restore of 9 busy threads: slow on a loaded 2-core machine
});

describe('criu-ts restore: trees', () => {
  it('tree: 5 tasks keep their pids, parents, sessions and process groups', async () => {
    const w = startWorkload('tree');
    await waitForLine(w.report, /^TREE /, { pid: w.pid });
    const pids = readLines(w.report)
      .filter((l) => l.startsWith('TASK '))
      .map((l) => Number(l.split(' ')[1]));
    expect(pids).toHaveLength(5);
    track(...pids);
    // TREE comes just before the root's own pause(): wait until all five sleep, or the states differ.
    await waitFor(() => pids.every((p) => procState(p) === 'S'), 'all five asleep');
    const before = pids.map(ids);
    const dir = await dumpAndKill(w.pid, { kill: pids });
    await restoreDetached(dir);
    await waitFor(() => pids.every((p) => procState(p) === 'S'), 'all five asleep again');
    expect(pids.map(ids)).toEqual(before);
    expect(failLines(w.report)).toEqual([]);
  });

  it('zombie: the child stays a zombie with exit code 42 until its parent reaps it', async () => {
    const w = startWorkload('zombie');
    const z = Number((await waitForLine(w.report, /^ZOMBIE /, { pid: w.pid })).split(' ')[1]);
    track(z);
    await waitFor(() => procState(w.pid) === 'S', 'parent in pause()');
    const before = [ids(w.pid), ids(z)];
    const dir = await dumpAndKill(w.pid, { kill: [w.pid, z] });
    await restoreDetached(dir);
    expect([ids(w.pid), ids(z)]).toEqual(before);
    expect(procState(z)).toBe('Z');
    const n = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, new RegExp(`^REAPED ${z} 42$`), { pid: w.pid, fromLine: n });
    await waitFor(() => procState(z) === 'gone', 'zombie reaped');
  });

  it('zombies: killed by SIGKILL and SIGSEGV, exited, and alone in a group whose leader is gone', async () => {
    const w = startWorkload('zombies');
    await waitForLine(w.report, /^ZOMBIES 5$/, { pid: w.pid });
    const zs = readLines(w.report)
      .filter((l) => l.startsWith('ZOMBIE '))
      .map((l) => Number(l.split(' ')[1]));
    track(...zs);
    await waitFor(() => procState(w.pid) === 'S', 'parent waiting');
    const lonely = zs[4]!;
    const group = Number(procStat(lonely).f(5));
    expect(group).not.toBe(Number(procStat(w.pid).f(5)));
    expect(fs.existsSync(`/proc/${group}`)).toBe(false);
    const before = [w.pid, ...zs].map(ids);
    const dir = await dumpAndKill(w.pid, { kill: [w.pid, ...zs] });
    await restoreDetached(dir);
    // Same pids, parent, group (the leaderless one too, and its helper is gone again), state Z.
    expect([w.pid, ...zs].map(ids)).toEqual(before);
    expect(fs.existsSync(`/proc/${group}`)).toBe(false);
    const n = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^DONE$/, { pid: w.pid, fromLine: n });
    expect(readLines(w.report).filter((l) => l.startsWith('REAPED '))).toEqual(
      zs.map((z, i) => `REAPED ${z} ${['0x0', '0x300', '0x9', '0xb', '0x700'][i]}`),
    );
    expect(failLines(w.report)).toEqual([]);
  });

  it('stopper: a stopped task comes back stopped (T) and runs on after SIGCONT', async () => {
    const w = startWorkload('stopper');
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'T', 'stopper stopped');
    const dir = await dumpAndKill(w.pid);
    await restoreDetached(dir);
    await waitFor(
      () => procState(w.pid) === 'T',
      () => `restored stopper stopped (${procState(w.pid)})`,
    );
    process.kill(w.pid, 'SIGCONT');
    await waitForLine(w.report, /^ALIVE 5$/, { pid: w.pid });
    expect(failLines(w.report)).toEqual([]);
  });
});

describe('criu-ts restore: cgroups', () => {
  it('a task in cgroups of its own goes back there; missing cgroup directories are made again', async () => {
    const name = `criu-ts-restore-test-${process.pid}`;
    const dirs = ['/sys/fs/cgroup/pids', '/sys/fs/cgroup/unified']
      .filter((d) => fs.existsSync(d))
      .map((d) => path.join(d, name));
    const w = startWorkload('counter', ['5']);
    try {
      for (const d of dirs) {
        fs.mkdirSync(d);
        fs.writeFileSync(path.join(d, 'cgroup.procs'), String(w.pid));
      }
      // Only the test's own cgroups: other tests make and remove named hierarchies meanwhile, which every
      // process's /proc/PID/cgroup lists.
      const ours = () =>
        fs
          .readFileSync(`/proc/${w.pid}/cgroup`, 'utf8')
          .split('\n')
          .filter((l) => l.includes(name));
      const before = ours();
      expect(before).toHaveLength(dirs.length);
      await waitForLine(w.report, /^5$/, { pid: w.pid });
      const dir = await dumpAndKill(w.pid);
      expect(fs.existsSync(path.join(dir, 'cgroup.img'))).toBe(true);
      for (const d of dirs) fs.rmdirSync(d);
      await restoreDetached(dir);
      expect(ours()).toEqual(before);
      await waitForLine(w.report, /^15$/, { pid: w.pid });
    } finally {
      killAndReap(w.pid);
      for (const d of dirs) if (fs.existsSync(d)) fs.rmdirSync(d);
    }
  });
});
