// `criu-ts restore -d --pidfile` killed (SIGKILL, SIGINT, SIGTERM) at many moments leaves nothing behind:
// either no task of the images lives (no stub, no half-restored task: what remains are zombies that the
// kernel killed, re-parented to this subreaper) and there is no pidfile, or the whole tree runs (the kill
// came after the last detach) with a whole pidfile or none. Never an empty pidfile, never a temporary file
// next to it or a `criu-ts-stub-*` in the temp dir (criu-ts gets a TMPDIR of its own here). The moments:
// delays after the start (node starting, the stub starting), the first restored pid appearing, and delays
// after all of them appeared (memory, files, the last registers, the detach, the pidfile).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { stubElf } from '@criu-ts/core';
import { ImageDir } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  busyWait,
  CRIU_TS_NODE,
  cleanup,
  cliDump,
  procStat,
  procState,
  REPO,
  readLines,
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

type Moment = { after: number } | { pidsAppear: number[]; andThen: number };

const alive = (pid: number) => !['gone', 'Z', 'X'].includes(procState(pid));

/** Processes whose parent is this test process (where criu-ts's orphans go), by pid. */
function ourChildren(): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (Number(procStat(Number(d)).f(4)) === process.pid) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

// criu-ts's temp dir is one of its own here: other restores on the machine have theirs.
const TMP = () => tempDir('criu-ts-core-tmp-');
const stubTempFiles = (tmp: string) => fs.readdirSync(tmp);

/**
 * Restore `dir` with a pidfile and send `signal` at `moment`. Returns 'none' (nothing of it lives) or
 * 'whole' (the whole tree runs); throws on anything in between or left behind.
 */
async function interruptRestore(
  dir: string,
  pids: number[],
  moment: Moment,
  signal: NodeJS.Signals,
): Promise<'none' | 'whole'> {
  const pfDir = tempDir('criu-ts-core-pidfile-');
  const pidfile = path.join(pfDir, 'pid');
  const before = new Set(ourChildren());
  const tmp = TMP();
  const child = spawn(process.execPath, [CRIU_TS_NODE, 'restore', '-D', dir, '-d', '--pidfile', pidfile], {
    cwd: REPO,
    stdio: 'ignore',
    env: { ...process.env, TMPDIR: tmp },
  });
  let ended = false;
  const done = new Promise<void>((r) =>
    child.on('close', () => {
      ended = true;
      r();
    }),
  );
  const deadline = performance.now() + 15_000;
  while (!ended && performance.now() < deadline) {
    if ('after' in moment) {
      busyWait(moment.after);
      child.kill(signal);
      break;
    }
    if (moment.pidsAppear.every(alive)) {
      busyWait(moment.andThen);
      child.kill(signal);
      break;
    }
    await new Promise((r) => setImmediate(r));
  }
  await done;
  // Whatever of the tree is left is either running or being killed by the kernel (PTRACE_O_EXITKILL):
  // give the kills a moment to end, then tell which (a half tree stays half and fails below).
  await waitFor(
    () => [0, pids.length].includes(pids.filter(alive).length),
    'all or none of the restored tasks',
    3000,
  ).catch(() => {});
  const living = pids.filter(alive);
  const files = fs.readdirSync(pfDir);
  expect(stubTempFiles(tmp), 'files in criu-ts temp dir').toEqual([]);
  if (living.length === 0) {
    // Reap the zombies re-parented to us; no stub or helper may be left running.
    for (const p of pids) killAndReap(p);
    // What criu-ts had started and not seized yet (its `sh -c` of startTraceable, the stub) ends by
    // itself: the stub watches criu-ts through a pidfd. Anything still running after that is left behind.
    const strays = ourChildren().filter((p) => !before.has(p) && alive(p));
    await waitFor(() => strays.every((p) => !alive(p)), 'strays gone', 3000).catch(() => {});
    const left = strays.filter(alive);
    const what = left.map(
      (p) => `${p} ${fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ')}`,
    );
    for (const p of strays) killAndReap(p);
    if (what.length) throw new Error(`processes left running: ${what.join('; ')}`);
    expect(files, 'files in the pidfile dir').toEqual([]);
    return 'none';
  }
  expect(living.sort(), 'a half-restored tree').toEqual([...pids].sort());
  if (files.length > 0) {
    expect(files).toEqual(['pid']);
    expect(fs.readFileSync(pidfile, 'utf8')).toBe(String(pids[0]));
  }
  return 'whole';
}

/** Kill the whole restored tree (it must be gone before its pids can be restored again). */
function killTree(pids: number[]): void {
  for (const p of [...pids].reverse()) killAndReap(p);
}

const MOMENTS = (pids: number[]): Moment[] => [
  ...[0, 200, 600].map((after) => ({ after })),
  { pidsAppear: pids.slice(0, 1), andThen: 0 },
  ...[0, 10, 30, 80, 160, 320, 640].map((andThen) => ({ pidsAppear: pids, andThen })),
];
const SIGNALS: NodeJS.Signals[] = ['SIGKILL', 'SIGINT', 'SIGTERM'];

async function loop(dir: string): Promise<{ none: number; whole: number }> {
  const pids = ImageDir.open(dir)
    .pstree()
    .map((e) => e.pid);
  const counts = { none: 0, whole: 0 };
  const moments = MOMENTS(pids);
  for (const [i, m] of moments.entries()) {
    const sig = SIGNALS[i % SIGNALS.length] as NodeJS.Signals;
    const r = await interruptRestore(dir, pids, m, sig).catch((e: Error) => {
      killTree(pids);
      throw new Error(`restore killed by ${sig} at ${JSON.stringify(m)}: ${e.message}`);
    });
    counts[r]++;
    if (r === 'whole') killTree(pids);
  }
  return counts;
}

describe('criu-ts restore interrupted by SIGKILL, SIGINT, SIGTERM', () => {
  it('a tree of 5 tasks: 11 interruptions leave nothing or the whole tree; then a restore works', async () => {
    const w = startWorkload('tree');
    await waitForLine(w.report, /^TREE /, { pid: w.pid });
    const dir = await cliDump(w.pid);
    const counts = await loop(dir);
    expect(counts.none, JSON.stringify(counts)).toBeGreaterThanOrEqual(3);
    // The images are untouched and every pid is free again: a restore runs the tree.
    const pids = ImageDir.open(dir)
      .pstree()
      .map((e) => e.pid);
    const lines = readLines(w.report).length;
    const r = await new Promise<number>((res) =>
      spawn(process.execPath, [CRIU_TS_NODE, 'restore', '-D', dir, '-d'], { cwd: REPO, stdio: 'ignore' }).on(
        'close',
        (c) => res(c ?? 1),
      ),
    );
    for (const p of pids) track(p);
    expect(r).toBe(0);
    expect(pids.every(alive)).toBe(true);
    expect(
      readLines(w.report)
        .slice(lines)
        .filter((l) => l.startsWith('FAIL')),
    ).toEqual([]);
  }, 60_000);

  it('a threaded workload: 11 interruptions leave nothing or the whole process', async () => {
    const w = startWorkload('threads', ['2']);
    await waitForLine(w.report, /^TICK /, { pid: w.pid });
    const dir = await cliDump(w.pid);
    const counts = await loop(dir);
    expect(counts.none, JSON.stringify(counts)).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('the stub exits by itself when criu-ts dies before seizing it (its pidfd of criu-ts in poll())', async () => {
    const dir = tempDir('criu-ts-core-stub-');
    const stand = startTraceable(['/bin/sleep', '1000']); // stands for criu-ts
    track(stand);
    const exe = path.join(dir, 'stub');
    fs.writeFileSync(exe, stubElf(stand), { mode: 0o700 });
    const stub = startTraceable([exe]);
    track(stub);
    await waitFor(() => fs.readFileSync(`/proc/${stub}/syscall`, 'utf8').startsWith('7 '), 'stub in poll()');
    expect(procState(stub)).toBe('S');
    killAndReap(stand);
    await waitFor(() => !alive(stub), 'stub gone');
    // criu-ts gone before the stub even looked: it exits at once.
    const late = startTraceable([exe]);
    track(late);
    await waitFor(() => !alive(late), 'late stub gone');
  });
});
