// Test helpers: workloads started through startTraceable (never child_process children), one temp dir per
// test, and a cleanup that kills and reaps every started pid by pid. Waits are on conditions only.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { testResources } from '../../../tools/workloads/cleanup.js';
import { buildWorkloads, type WorkloadName, workloadPath } from '../../../tools/workloads/index.js';
import { readLines, waitForLine } from '../../../tools/workloads/report.js';
import { killAndReap, type StartOptions, startTraceable } from '../src/index.js';

export { buildWorkloads, readLines, waitForLine };

const resources = testResources({ killAndReap, prefix: 'criu-ts-compel-' });
/** A fresh temp dir; `track` pids, `onCleanup` steps; `cleanup` undoes them after each test. */
export const { tempDir, track, onCleanup, cleanup } = resources;

export interface Workload {
  pid: number;
  report: string;
  dir: string;
}

/** Start a workload with its report file in a fresh temp dir; `args` follow the report path. */
export function startWorkload(name: WorkloadName, args: string[] = [], opts: StartOptions = {}): Workload {
  const dir = tempDir(`criu-ts-compel-${name}-`);
  const report = path.join(dir, 'report');
  const pid = startTraceable([workloadPath(name), report, ...args], {
    stdout: path.join(dir, 'stdout'),
    stderr: path.join(dir, 'stderr'),
    ...opts,
  });
  track(pid);
  return { pid, report, dir };
}

/** /proc state letter of a process or thread ('gone' when it does not exist). */
export function procState(pid: number, tid?: number): string {
  try {
    const s = fs.readFileSync(
      tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`,
      'utf8',
    );
    const close = s.lastIndexOf(')');
    return s.slice(close + 2, close + 3);
  } catch {
    return 'gone';
  }
}

/** Syscall number a blocked task sits in (first field of /proc/PID/syscall), or undefined when running. */
export function procSyscall(pid: number): number | undefined {
  try {
    const f = fs.readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0] ?? '';
    return /^\d+$/.test(f) ? Number(f) : undefined;
  } catch {
    return undefined;
  }
}

/** utime + stime (clock ticks) of a thread, or undefined when gone. */
export function cpuTicks(pid: number, tid: number): number | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

/** Poll `cond` (every 2 ms) until it holds; throws after `timeoutMs` with `what`. */
export async function waitFor(
  cond: () => boolean,
  what: string | (() => string),
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await delay(2);
  }
}

/** Lines of a report that start with FAIL. */
export function failLines(report: string): string[] {
  return readLines(report).filter((l) => l.startsWith('FAIL'));
}
