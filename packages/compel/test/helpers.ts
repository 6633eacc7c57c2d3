// Test helpers: workloads started through startTraceable (never child_process children), one temp dir per
// test, and a cleanup that kills and reaps every started pid by pid. Waits are on conditions only.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { kill, SIGKILL } from '@criu-ts/sys';
import {
  buildWorkloads,
  isDescendantOf,
  type WorkloadName,
  workloadPath,
} from '../../../tools/workloads/index.mjs';
import { readLines, waitForLine } from '../../../tools/workloads/report.mjs';
import { killAndReap, type StartOptions, startTraceable } from '../src/index.js';

export { buildWorkloads, readLines, waitForLine };

/** Pids to kill and reap after the test, in order (later entries first). */
const started: number[] = [];
const tempDirs: string[] = [];
const cleanups: (() => void)[] = [];

export function tempDir(prefix = 'criu-ts-compel-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

/** Remember `pid` for cleanup (e.g. the descendants of a tree workload). */
export function track(...pids: number[]): void {
  for (const p of pids) if (!started.includes(p)) started.push(p);
}

/** Run `fn` during cleanup (before processes are reaped). */
export function onCleanup(fn: () => void): void {
  cleanups.push(fn);
}

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

/** Kill and reap everything started, newest first; run registered cleanups; remove temp dirs. */
export function cleanup(): void {
  let first: unknown;
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      fn();
    } catch (e) {
      first ??= e;
    }
  }
  // SIGKILL everything first, then reap: a zombie child is reaped by us only after its parent died.
  // Only our own descendants: an old pid may belong to another test file's process by now.
  const pids = started
    .splice(0)
    .reverse()
    .filter((pid) => isDescendantOf(pid));
  for (const pid of pids) {
    try {
      kill(pid, SIGKILL);
    } catch {
      // gone already
    }
  }
  for (const pid of pids) {
    try {
      killAndReap(pid);
    } catch (e) {
      first ??= e;
    }
  }
  for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  if (first !== undefined) throw first;
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
