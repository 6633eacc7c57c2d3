// SIGKILL of `criu-ts dump -R` at many moments leaves the tree running unharmed: no thread resumes in
// injected code, no task dies or loses its parent, signal masks and dispositions are what they were, and
// every task goes back to what it was doing (the tree's tasks to pause(), the threads to their ticks).
// The moments are driven by what the test sees of the tree from outside (a tracer appears, compel's
// code page appears in a task's maps), plus short delays after the tracer appeared, so that kills land
// in the seize, in an infection, in a batch, in a cure and in the memory dump. One target serves every
// kill of a loop: a kill that harmed it shows in the next checks too.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { kill, SIGKILL } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  busyWait,
  CRIU_TS_NODE,
  cleanup,
  procStat,
  procState,
  procStatus,
  procSyscall,
  readLines,
  readMaps,
  startWorkload,
  tempDir,
  tracerPid,
  track,
  waitFor,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** When to kill: `after` ms once the root is traced, or once compel's code page shows in `codeIn`. */
type Moment = { after: number } | { codeIn: number };

/** An anonymous R-X mapping: compel's code page (programs have none of their own). */
function hasCodePage(pid: number): boolean {
  try {
    return readMaps(pid).some((m) => m.prot === 5 && m.inode === 0n && m.path === '');
  } catch {
    return false;
  }
}

/**
 * Start `criu-ts dump -R` of `pid`, SIGKILL it at `moment` (if the dump is still running then), wait for
 * its end. Returns whether the kill landed while the tree was traced.
 */
async function killDumpAt(pid: number, moment: Moment): Promise<boolean> {
  const dir = tempDir('criu-ts-core-dumpkill-');
  const child = spawn(
    process.execPath,
    [CRIU_TS_NODE, 'dump', '-t', String(pid), '-D', dir, '-R', '-v4', '-o', 'dump.log'],
    {
      stdio: 'ignore',
    },
  );
  const done = new Promise<void>((resolve) => child.on('close', () => resolve()));
  let ended = false;
  void done.then(() => {
    ended = true;
  });
  const cli = child.pid as number;
  let landed = false;
  // Poll from this thread without yielding (a loaded machine would let the moment pass), bounded.
  const deadline = performance.now() + 15_000;
  while (!ended && performance.now() < deadline) {
    const traced = tracerPid(pid) === cli;
    if ('after' in moment && traced) {
      busyWait(moment.after);
      landed = tracerPid(pid) === cli;
      kill(cli, SIGKILL);
      break;
    }
    if ('codeIn' in moment && hasCodePage(moment.codeIn)) {
      landed = tracerPid(pid) === cli;
      kill(cli, SIGKILL);
      break;
    }
    await new Promise((r) => setImmediate(r));
  }
  await done;
  return landed;
}

/** /proc facts of a task that a dump must not change. */
function facts(pid: number) {
  const st = procStatus(pid);
  return { ppid: procStat(pid).f(4), blk: st.SigBlk, ign: st.SigIgn, cgt: st.SigCgt };
}

describe('SIGKILL of criu-ts dump -R', () => {
  it('a threaded workload: 12 kills at different moments, it runs on with the same signal state', async () => {
    const w = startWorkload('threads', ['2']);
    await waitForLine(w.report, /^TICK /, { pid: w.pid });
    const before = facts(w.pid);
    const moments: Moment[] = [
      ...[0, 3, 10, 25, 45, 70, 100, 140, 190, 250].map((after) => ({ after })),
      { codeIn: w.pid },
      { codeIn: w.pid },
    ];
    const harmed: string[] = [];
    let landed = 0;
    for (const [i, m] of moments.entries()) {
      if (await killDumpAt(w.pid, m)) landed++;
      try {
        await waitFor(() => tracerPid(w.pid) === 0, 'threads untraced', 5000);
        await waitForMoreLines(w.report, 2, w.pid);
        expect(procState(w.pid)).toMatch(/[RS]/);
        expect(facts(w.pid)).toEqual(before);
        expect(hasCodePage(w.pid), 'compel code page left').toBe(false);
      } catch (e) {
        harmed.push(`kill ${i} (${JSON.stringify(m)}): ${(e as Error).message.split('\n')[0]}`);
        if (['gone', 'Z', 'X'].includes(procState(w.pid))) break;
      }
    }
    const fails = readLines(w.report).filter((l) => l.startsWith('FAIL'));
    expect({ harmed, fails }).toEqual({ harmed: [], fails: [] });
    expect(landed, 'kills that landed while the tree was traced').toBeGreaterThanOrEqual(6);
  }, 60_000);

  it('a tree of 5 tasks: 12 kills at different moments, same pids, parents, pause() and signal state', async () => {
    const w = startWorkload('tree');
    await waitForLine(w.report, /^TREE /, { pid: w.pid });
    const pids = readLines(w.report)
      .filter((l) => l.startsWith('TASK '))
      .map((l) => Number(l.split(' ')[1]));
    expect(pids).toHaveLength(5);
    for (const p of pids) track(p);
    await waitFor(() => pids.every((p) => procSyscall(p) === 34), 'every task in pause()');
    const before = pids.map(facts);
    const leaf = pids[pids.length - 1] as number;
    const moments: Moment[] = [
      ...[0, 5, 20, 45, 80, 125, 180, 250].map((after) => ({ after })),
      { codeIn: w.pid },
      { codeIn: pids[1] as number },
      { codeIn: leaf },
      { codeIn: leaf },
    ];
    const harmed: string[] = [];
    let landed = 0;
    for (const [i, m] of moments.entries()) {
      if (await killDumpAt(w.pid, m)) landed++;
      try {
        await waitFor(() => pids.every((p) => tracerPid(p) === 0), 'tree untraced', 5000);
        // Back in pause() (an interrupted pause restarts), each with its parent and signal state.
        await waitFor(
          () => pids.every((p) => procState(p) === 'S' && procSyscall(p) === 34),
          () => `every task in pause(): ${pids.map((p) => `${p}:${procState(p)}/${procSyscall(p)}`)}`,
          5000,
        );
        expect(pids.map(facts)).toEqual(before);
        expect(pids.filter(hasCodePage), 'compel code page left').toEqual([]);
        expect(readLines(w.report).filter((l) => l.startsWith('FAIL'))).toEqual([]);
      } catch (e) {
        harmed.push(`kill ${i} (${JSON.stringify(m)}): ${(e as Error).message.split('\n')[0]}`);
        if (pids.some((p) => ['gone', 'Z', 'X'].includes(procState(p)))) break;
      }
    }
    expect(harmed).toEqual([]);
    expect(landed, 'kills that landed while the tree was traced').toBeGreaterThanOrEqual(6);
    expect(fs.existsSync(path.join(w.dir, 'report'))).toBe(true);
  }, 60_000);
});
