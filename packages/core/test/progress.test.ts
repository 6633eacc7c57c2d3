// DumpOptions.progress: what dump() tells its hook, as it goes (progress/progress.ts). The steps in
// their order, every task counted, the pages written counted up to the pages to write (both what
// stats-dump says at the end), the inet sockets counted as connections. Dumps with -R (leaveRunning).
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dump, type Progress, type ProgressKind, type ProgressPhase } from '../src/index.js';
import {
  buildWorkloads,
  cleanup,
  startPythonCounter,
  startWorkload,
  tempDir,
  track,
  treeOf,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

type Call = { phase: ProgressPhase } | { kind: ProgressKind; done: number; total: number | undefined };

function recorder(): Progress & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    phase: (phase) => calls.push({ phase }),
    count: (kind, done, total) => calls.push({ kind, done, total }),
  };
}

const counts = (calls: Call[], kind: ProgressKind) =>
  calls.filter((c): c is Extract<Call, { kind: ProgressKind }> => 'kind' in c && c.kind === kind);
/** The steps in order, each once where it repeats back to back. */
const phases = (calls: Call[]) =>
  calls
    .filter((c): c is { phase: ProgressPhase } => 'phase' in c)
    .map((c) => c.phase)
    .filter((p, i, all) => p !== all[i - 1]);

describe('dump(): the progress hook', () => {
  it('a tree of 5 tasks: every step, every task, the pages written of the pages to write', async () => {
    const w = startWorkload('tree');
    await waitForLine(w.report, /^TREE /, { pid: w.pid });
    for (const p of treeOf(w.pid)) track(p); // startWorkload tracks the root only
    const p = recorder();
    const r = await dump({
      pid: w.pid,
      imagesDir: path.join(tempDir('criu-ts-progress-'), 'images'),
      leaveRunning: true,
      progress: p,
    });
    expect(r.tasks).toBe(5);
    const ph = phases(p.calls);
    expect(ph[0]).toBe('freezing');
    expect(ph.at(-1)).toBe('writing images');
    expect(ph.filter((x) => x === 'writing memory')).toHaveLength(5);
    // writing memory comes inside dumping tasks, one task at a time
    expect(new Set(ph)).toEqual(new Set(['freezing', 'dumping tasks', 'writing memory', 'writing images']));

    const tasks = counts(p.calls, 'tasks');
    expect(tasks.map((c) => c.done)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(tasks.every((c) => c.total === 5)).toBe(true);

    const pages = counts(p.calls, 'pages');
    for (const [i, c] of pages.entries()) {
      expect(c.total).toBeDefined();
      expect(c.done).toBeLessThanOrEqual(c.total!);
      if (i > 0) expect(c.done).toBeGreaterThanOrEqual(pages[i - 1]!.done);
    }
    expect(pages.at(-1)).toEqual({ kind: 'pages', done: r.pagesWritten, total: r.pagesWritten });
    expect(Number(r.stats.pages_written)).toBe(r.pagesWritten);
    expect(counts(p.calls, 'connections')).toEqual([]);
  });

  it('a big task: its pages counted chunk by chunk; an inet socket counted as a connection', async () => {
    // 48 MiB in one task: the copier goes chunk by chunk (8 MiB each), so the count rises in steps.
    const w = await startPythonCounter(
      'import socket\nls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen()\nbig = bytearray(b"x" * (48 << 20))',
    );
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const p = recorder();
    const r = await dump({
      pid: w.pid,
      imagesDir: path.join(tempDir('criu-ts-progress-'), 'images'),
      leaveRunning: true,
      shellJob: true,
      progress: p,
    });
    const pages = counts(p.calls, 'pages');
    expect(pages.length).toBeGreaterThan(4);
    expect(pages.at(-1)).toEqual({ kind: 'pages', done: r.pagesWritten, total: r.pagesWritten });
    expect(counts(p.calls, 'connections')).toEqual([{ kind: 'connections', done: 1, total: undefined }]);
  });
});
