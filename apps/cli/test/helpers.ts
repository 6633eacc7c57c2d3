// Helpers of the tests that run criu-ts's CLI: everything of @criu-ts/testkit, plus the CLI run as a
// separate process (the bundle turbo builds before this package's tests) and the dump / restore steps
// the tests share.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { close, pidfdGetfd, pidfdOpen } from '@criu-ts/sys';
import { procState, REPO, tempDir, track } from '@criu-ts/testkit';
import { isDescendantOf } from '../../../tools/workloads/index.js';

export * from '@criu-ts/testkit';

/** The CLI as a user runs it from the repo root. */
export const CRIU_TS = path.join(REPO, 'node_modules/.bin/criu-ts');
/**
 * criu-ts's own node process, for tests that kill it (not the package manager's shell shim, whose
 * helpers a kill would orphan).
 */
export const CRIU_TS_NODE = path.join(REPO, 'apps/cli/bin/criu-ts.cjs');

/** Spin for `ms` without yielding: a kill must land at its moment even on a loaded machine. */
export function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** pid of the criu-ts process (the .bin script execs node, so this is node's pid). */
  pid: number;
}

/**
 * Run `criu-ts ARGS` and resolve when it exits. `onStart(pid)` runs right after the spawn (to signal it
 * while it works). The criu-ts process is a child_process child: only libuv reaps it.
 */
export function runCli(args: string[], onStart?: (pid: number) => void): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(CRIU_TS, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, pid: child.pid ?? 0 }),
    );
    if (onStart && child.pid) onStart(child.pid);
  });
}

// ---- dump and restore through the CLI ---------------------------------------------------------------------

/** `criu-ts dump` of the tree of `pid` into a new images dir; anything but a clean exit 0 throws. */
export async function cliDump(pid: number, extra: string[] = []): Promise<string> {
  const dir = path.join(tempDir('criu-ts-img-'), 'images');
  const r = await runCli(['dump', '-t', String(pid), '-D', dir, ...extra]);
  if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
  return dir;
}

/** Kill every task of the images, then `criu-ts restore -d`; the restored tasks are tracked. */
export async function cliKillAndRestore(dir: string, extra: string[] = []): Promise<void> {
  for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
  const r = await runCli(['restore', '-D', dir, '-d', ...extra]);
  if (r.code !== 0 || r.stderr) throw new Error(`restore: exit ${r.code}: ${r.stderr}`);
  for (const e of ImageDir.open(dir).pstree()) track(e.pid);
}

/** cliDump, then cliKillAndRestore; the images dir. */
export async function cliDumpKillRestore(pid: number, extra: string[] = []): Promise<string> {
  const dir = await cliDump(pid, extra);
  await cliKillAndRestore(dir);
  return dir;
}

/** One line on stderr, exit 1, nothing on stdout; returns the line. */
export function oneLineFailure(r: { code: number; stdout: string; stderr: string }): string {
  if (r.code !== 1 || r.stdout !== '' || r.stderr.split('\n').filter(Boolean).length !== 1)
    throw new Error(
      `wanted exit 1 with one line on stderr: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`,
    );
  return r.stderr.split('\n').filter(Boolean)[0]!;
}

export interface DumpAndKill {
  /** more dump options (with -R nothing is killed) */
  extra?: string[];
  /** the pids to kill and reap, checked gone (default: `pid`; 'images': every task of the images' pstree) */
  kill?: number[] | 'images';
}

/**
 * `criu-ts dump` of the tree of `pid` into a fresh images dir (exit 0, nothing on stderr), then kill and
 * reap what `kill` names so that the pids are free for the restore; the images dir.
 */
export async function dumpAndKill(pid: number, opts: DumpAndKill = {}): Promise<string> {
  const extra = opts.extra ?? [];
  const dir = await cliDump(pid, extra);
  if (extra.includes('-R') || extra.includes('--leave-running')) return dir;
  const kill =
    opts.kill === 'images'
      ? ImageDir.open(dir)
          .pstree()
          .map((e) => e.pid)
      : (opts.kill ?? [pid]);
  for (const p of kill) killAndReap(p);
  for (const p of kill) if (procState(p) !== 'gone') throw new Error(`pid ${p} still there after the dump`);
  return dir;
}

/** `criu-ts restore -D dir -d`: exit 0, nothing on stderr; the restored tasks are tracked. */
export async function restoreDetached(dir: string, extra: string[] = []): Promise<void> {
  const r = await runCli(['restore', '-D', dir, '-d', ...extra]);
  if (r.code !== 0 || r.stderr) throw new Error(`restore: exit ${r.code}: ${r.stderr}`);
  for (const e of ImageDir.open(dir).pstree()) track(e.pid);
}

/**
 * Pids of processes below this one that run the restore stub (none may be left behind). Only ours:
 * other test files running in parallel restore too, and their stubs are theirs.
 */
export function restoreStubs(): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || !isDescendantOf(Number(name))) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/comm`, 'utf8').startsWith('criu-ts-restor')) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** Run `fn` on our own duplicate of fd `fd` of task `pid` (pidfd_getfd: the same open file). */
export function withTheirFd<T>(pid: number, fd: number, fn: (mine: number) => T): T {
  const pidfd = pidfdOpen(pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      return fn(mine);
    } finally {
      close(mine);
    }
  } finally {
    close(pidfd);
  }
}
