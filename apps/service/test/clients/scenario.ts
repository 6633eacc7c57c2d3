// Steps the client tests share: a counter to checkpoint, and what is checked from outside after a dump
// and after a restore (through /proc and the counter's report, never through the client's word alone).
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { expect } from 'vitest';
import {
  counterNumbers,
  failLines,
  procStat,
  procState,
  startWorkload,
  tempDir,
  tracerPid,
  track,
  type Workload,
  waitFor,
  waitForLine,
  waitForMoreLines,
} from './clients.js';

/** A counter (one line every 10 ms) in its own session, counting. Tracked. */
export async function startCounter(): Promise<Workload> {
  const w = startWorkload('counter', ['10']);
  await waitForLine(w.report, /^READY /, { pid: w.pid });
  await waitForMoreLines(w.report, 3, w.pid);
  return w;
}

/** A fresh, empty images directory (removed after the test). */
export function imagesDir(): string {
  const dir = path.join(tempDir('criu-ts-clients-'), 'images');
  fs.mkdirSync(dir);
  return dir;
}

/** The last number the counter wrote. */
export function lastCount(report: string): number {
  const ns = counterNumbers(report);
  return ns[ns.length - 1] ?? 0;
}

/** The images a dump of the single task `pid` writes, and the log file when one was asked for. */
export function expectImages(dir: string, pid: number, log?: string): void {
  const files = fs.readdirSync(dir);
  for (const f of ['inventory.img', 'pstree.img', `core-${pid}.img`, `mm-${pid}.img`, `pagemap-${pid}.img`])
    expect(files, `${f} in ${dir}`).toContain(f);
  if (log) expect(fs.statSync(path.join(dir, log)).size, `${log} in ${dir}`).toBeGreaterThan(0);
}

/** The task is dead (a zombie until we, its reaper, reap it; `why` names who killed it); reaped here. */
export async function expectDead(pid: number, why: string): Promise<void> {
  await waitFor(() => ['Z', 'X', 'gone'].includes(procState(pid)), `pid ${pid} killed by ${why}`);
  killAndReap(pid);
  expect(procState(pid)).toBe('gone');
}

/** The dump killed the task; reaped here. */
export async function expectKilledByDump(pid: number): Promise<void> {
  await expectDead(pid, 'the dump');
}

/** A task running freely: alive, not stopped, not traced, counting on without a FAIL. */
export async function expectRunningFree(w: Workload, pid = w.pid): Promise<void> {
  await waitFor(() => tracerPid(pid) === 0, `pid ${pid} untraced`);
  expect(['R', 'S']).toContain(procState(pid));
  await waitForMoreLines(w.report, 3, pid);
  expect(failLines(w.report)).toEqual([]);
}

/**
 * The restored task: the same pid, an orphan of the swrk worker adopted by this process (the subreaper)
 * or, restored through `criu-ts service`, the service's child (`parent`), running freely, counting on from the dump: the first number after the `linesBefore` numbers the report
 * had when the restore began is `from + 1` (`from` within [lo, hi] when the exact count at the dump is
 * not known), and the numbers go on one by one.
 */
export async function expectRestored(
  w: Workload,
  restoredPid: unknown,
  linesBefore: number,
  from: number | [number, number],
  parent = process.pid,
): Promise<void> {
  if (typeof restoredPid === 'number' && restoredPid > 0) track(restoredPid);
  expect(restoredPid).toBe(w.pid);
  await expectRunningFree(w);
  expect(Number(procStat(w.pid).f(4)), 'the parent of the restored task').toBe(parent);
  const after = counterNumbers(w.report).slice(linesBefore);
  const [lo, hi] = typeof from === 'number' ? [from, from] : from;
  expect(after[0]).toBeGreaterThanOrEqual(lo + 1);
  expect(after[0]).toBeLessThanOrEqual(hi + 1);
  expect(after.every((v, i) => v === after[0]! + i)).toBe(true);
}
