// Incremental dumps through core's API: pre-dumps of a process that writes its memory without pause,
// then the final dump with --track-mem; the final images (read with @criu-ts/images' PageMap, which
// follows `parent`) are compared byte by byte with the task's memory read at the final freeze (the
// post-dump hook runs with the tree frozen and the images written). Also the life of the tracking:
// the keeper between runs, and nothing left in the task when tracking ends.
import fs from 'node:fs';
import path from 'node:path';
import { PageMap } from '@criu-ts/images';
import { kill, processVmReadv, SIGKILL, SIGUSR2 } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dump, preDump, readKeeperState } from '../src/index.js';
import type { Logger } from '../src/log/logger.js';
import { endKeeperOf, KEEPER_COMM, writePlan } from '../src/mm/track/index.js';
import {
  buildWorkloads,
  cleanup,
  onCleanup,
  readLines,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

const PAGE = 4096;

beforeAll(async () => {
  await buildWorkloads();
}, 120_000);
afterEach(() => cleanup());

interface Area {
  area: bigint;
  pages: number;
  gens: bigint;
}

async function areaOf(report: string, pid: number): Promise<Area> {
  const line = await waitForLine(report, /^AREA /, { pid });
  const [, a, n, g] = line.split(' ');
  return { area: BigInt(`0x${a}`), pages: Number(n), gens: BigInt(`0x${g}`) };
}

/** A logger that keeps its lines (to look for warnings). */
function keepLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const l = {
    lines,
    error: (m: string) => lines.push(`E ${m}`),
    warn: (m: string) => lines.push(`W ${m}`),
    info: (m: string) => lines.push(`I ${m}`),
    debug: (m: string) => lines.push(`D ${m}`),
    child: () => l,
  };
  return l as unknown as Logger & { lines: string[] };
}

/** A directory for one run's images; its keeper (if any) ends at cleanup. */
function imagesDir(root: string, name: string): string {
  const d = path.join(root, name);
  onCleanup(() => endKeeperOf(d));
  return d;
}

function readLive(pid: number, at: bigint, len: number): Buffer {
  const b = Buffer.alloc(len);
  const got = processVmReadv(pid, [{ local: b, remote: at, len }]);
  expect(got).toBe(len);
  return b;
}

/** Pages of [at, at+len) whose bytes differ between the images in `dir` and `live`. */
function differingPages(dir: string, pid: number, at: bigint, live: Buffer): number[] {
  const pm = PageMap.forTask(dir, pid);
  try {
    const img = pm.read(at, live.length);
    const bad: number[] = [];
    for (let i = 0; i < live.length / PAGE; i++)
      if (img.compare(live, i * PAGE, (i + 1) * PAGE, i * PAGE, (i + 1) * PAGE) !== 0) bad.push(i);
    return bad;
  } finally {
    pm.close();
  }
}

/** For a failure message: where each differing page comes from in the chain, its words in image and memory. */
function explain(dir: string, pid: number, at: bigint, live: Buffer, bad: number[]): string {
  const out: string[] = [];
  for (const i of bad.slice(0, 4)) {
    const addr = at + BigInt(i * PAGE);
    const chain: string[] = [];
    for (
      let d = dir, depth = 0;
      depth < 4 && fs.existsSync(path.join(d, `pagemap-${pid}.img`));
      d = path.join(d, 'parent'), depth++
    ) {
      const run = PageMap.forTask(d, pid).findRun(addr);
      chain.push(
        `${path.basename(fs.realpathSync(d))}:${run ? `${run.vaddr.toString(16)}+${run.pages} f${run.flags}` : 'none'}`,
      );
    }
    const img = PageMap.forTask(dir, pid).read(addr, PAGE);
    let first = 0;
    while (first < PAGE && img[first] === live[i * PAGE + first]) first++;
    out.push(
      `page ${i} (${addr.toString(16)}): ${chain.join(' <- ')}; image w0 ${img.readBigUInt64LE(0)} w1 ${img.readBigUInt64LE(8)}, memory w0 ${live.readBigUInt64LE(i * PAGE)} w1 ${live.readBigUInt64LE(i * PAGE + 8)}; first difference at byte ${first}`,
    );
  }
  return out.join('\n');
}

function expectSame(dir: string, pid: number, at: bigint, live: Buffer, log?: { lines: string[] }): void {
  const bad = differingPages(dir, pid, at, live);
  if (bad.length)
    expect.fail(
      `pid ${pid}: ${bad.length} pages differ\n${explain(dir, pid, at, live, bad)}\n${log?.lines.join('\n') ?? ''}`,
    );
}

/**
 * The workload's own invariant, in the images: page i starts with i and the generation the table gives.
 * One page may be caught between `gens[i]++` and its rewrite at the freeze (in memory as in the images).
 */
function selfConsistent(dir: string, pid: number, a: Area): number[] {
  const pm = PageMap.forTask(dir, pid);
  try {
    const gens = pm.read(a.gens, a.pages * 8);
    const bad: number[] = [];
    for (let i = 0; i < a.pages; i++) {
      const page = pm.read(a.area + BigInt(i * PAGE), 16);
      if (page.readBigUInt64LE(0) !== BigInt(i) || page.readBigUInt64LE(8) !== gens.readBigUInt64LE(i * 8))
        bad.push(i);
    }
    return bad;
  } finally {
    pm.close();
  }
}

const keeperAlive = (pid: number | undefined) => {
  if (pid === undefined) return false;
  try {
    return (
      fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === KEEPER_COMM &&
      !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    );
  } catch {
    return false;
  }
};

/** VMAs of `pid` that userfaultfd write-protect tracks ('uw' in VmFlags). */
const trackedVmas = (pid: number) =>
  (fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').match(/^VmFlags:.*\buw\b/gm) ?? []).length;

/** Dumps (trackMem, parent `prev`) and reads `ranges` of `pids` while the tree is still frozen. */
async function finalDump(
  pid: number,
  dir: string,
  prev: string | undefined,
  reads: Array<{ pid: number; at: bigint; len: number }>,
  extra: Partial<Parameters<typeof dump>[0]> = {},
) {
  const live: Buffer[] = [];
  const r = await dump({
    pid,
    imagesDir: dir,
    trackMem: true,
    ...(prev ? { prevImagesDir: prev } : {}),
    notify: (stage) => {
      if (stage === 'post-dump') for (const x of reads) live.push(readLive(x.pid, x.at, x.len));
    },
    ...extra,
  });
  return { r, live };
}

describe('pre-dump and dump --track-mem', () => {
  it('never loses a write: a task writing without pause, pre-dumped twice, then dumped; the images are its memory at the final freeze', async () => {
    const w = startWorkload('dirtier', ['32', 'loop']);
    const a = await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const log = keepLog();
    const p1 = await preDump({ pid: w.pid, imagesDir: imagesDir(root, 'pre1'), logger: log });
    expect(p1.pagesWritten).toBeGreaterThanOrEqual(a.pages);
    expect(keeperAlive(p1.keeperPid)).toBe(true);
    track(p1.keeperPid!);
    const p2 = await preDump({
      pid: w.pid,
      imagesDir: imagesDir(root, 'pre2'),
      prevImagesDir: '../pre1',
      logger: log,
    });
    expect(keeperAlive(p1.keeperPid)).toBe(false); // taken over
    track(p2.keeperPid!);
    const dir = imagesDir(root, 'dump');
    const { r, live } = await finalDump(
      w.pid,
      dir,
      '../pre2',
      [
        { pid: w.pid, at: a.area, len: a.pages * PAGE },
        { pid: w.pid, at: a.gens, len: a.pages * 8 },
      ],
      { logger: log },
    );
    expect(fs.readlinkSync(path.join(dir, 'parent'))).toBe('../pre2');
    expectSame(dir, w.pid, a.area, live[0]!, log);
    expect(
      PageMap.forTask(dir, w.pid)
        .read(a.gens, a.pages * 8)
        .equals(live[1]!),
    ).toBe(true);
    expect(selfConsistent(dir, w.pid, a).length).toBeLessThanOrEqual(1);
    expect(r.stats.pages_written).toBeGreaterThan(0n);
    // the final dump (the tree killed) ends the tracking: no keeper, no state file
    expect(keeperAlive(p2.keeperPid)).toBe(false);
    expect(readKeeperState(path.join(root, 'pre2'))).toBeUndefined();
  }, 120_000);

  it('writes only what changed: 2% of the pages rewritten between runs, the rest PE_PARENT through two parents', async () => {
    const w = startWorkload('dirtier', ['32', 'burst', '2']);
    const a = await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const burst = async () => {
      const n = readLines(w.report).length;
      kill(w.pid, SIGUSR2);
      const line = await waitForLine(w.report, /^BURST /, { pid: w.pid, fromLine: n });
      return Number(line.split(' ')[1]);
    };
    const p1 = await preDump({ pid: w.pid, imagesDir: imagesDir(root, 'pre1') });
    track(p1.keeperPid!);
    const b1 = await burst();
    const p2 = await preDump({ pid: w.pid, imagesDir: imagesDir(root, 'pre2'), prevImagesDir: '../pre1' });
    track(p2.keeperPid!);
    // the area's pages not rewritten (and the gens table's not touched) come from pre1
    expect(p2.pagesSkippedParent).toBeGreaterThanOrEqual(a.pages - b1 - 64);
    expect(p2.pagesWritten).toBeLessThan(b1 + 200);
    const b2 = await burst();
    const dir = imagesDir(root, 'dump');
    const { r, live } = await finalDump(w.pid, dir, '../pre2', [
      { pid: w.pid, at: a.area, len: a.pages * PAGE },
      { pid: w.pid, at: a.gens, len: a.pages * 8 },
    ]);
    expect(Number(r.stats.pages_skipped_parent)).toBeGreaterThanOrEqual(a.pages - b2 - 64);
    expect(Number(r.stats.pages_written)).toBeLessThan(b2 + 200);
    expectSame(dir, w.pid, a.area, live[0]!);
    expect(
      PageMap.forTask(dir, w.pid)
        .read(a.gens, a.pages * 8)
        .equals(live[1]!),
    ).toBe(true);
    expect(selfConsistent(dir, w.pid, a).length).toBeLessThanOrEqual(1);
  }, 120_000);

  it('follows a fork, an unmap and a new mapping between the pre-dump and the dump: new VMAs and the new task are dumped whole', async () => {
    const w = startWorkload('dirtier', ['16', 'loop']);
    const a = await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const log = keepLog();
    const p1 = await preDump({ pid: w.pid, imagesDir: imagesDir(root, 'pre1'), logger: log });
    track(p1.keeperPid!);
    const n = readLines(w.report).length;
    process.kill(w.pid, 'SIGHUP');
    const child = Number((await waitForLine(w.report, /^CHILD /, { pid: w.pid, fromLine: n })).split(' ')[1]);
    track(child);
    const extra = BigInt(
      `0x${
        readLines(w.report)
          .find((l) => l.startsWith('EXTRA '))!
          .split(' ')[1]
      }`,
    );
    const dir = imagesDir(root, 'dump');
    const reads = [w.pid, child].flatMap((pid) => [
      { pid, at: a.area, len: a.pages * PAGE },
      { pid, at: a.gens, len: a.pages * 8 },
      { pid, at: extra, len: 1 << 20 },
    ]);
    const { live } = await finalDump(w.pid, dir, '../pre1', reads, { logger: log });
    expect(log.lines.some((l) => l.includes(`pid ${child}: no memory tracking`))).toBe(true);
    for (const [i, pid] of [w.pid, child].entries()) {
      expectSame(dir, pid, a.area, live[i * 3]!, log);
      expect(
        PageMap.forTask(dir, pid)
          .read(a.gens, a.pages * 8)
          .equals(live[i * 3 + 1]!),
      ).toBe(true);
      expectSame(dir, pid, extra, live[i * 3 + 2]!);
      expect(selfConsistent(dir, pid, a).length).toBeLessThanOrEqual(1);
    }
  }, 120_000);

  it('a pre-dump leaves out pages unmapped before it could read them, and writes no garbage for them', async () => {
    const w = startWorkload('dirtier', ['4', 'burst']);
    const a = await areaOf(w.report, w.pid);
    const dir = tempDir('criu-ts-incr-');
    const { ImageDir } = await import('@criu-ts/images');
    const pm = ImageDir.create(dir).pageMapWriter(w.pid, 1);
    // two good pages, then a run far above the area (unmapped), then the last page of the area
    const hole = a.area + BigInt(a.pages * PAGE) + (1n << 30n);
    const r = await writePlan(
      w.pid,
      [
        { start: a.area, end: a.area + 2n * BigInt(PAGE), parent: false, readable: true },
        { start: hole, end: hole + 3n * BigInt(PAGE), parent: false, readable: true },
        {
          start: a.area + BigInt((a.pages - 1) * PAGE),
          end: a.area + BigInt(a.pages * PAGE),
          parent: false,
          readable: true,
        },
      ],
      pm,
      { tolerant: true },
    );
    pm.close();
    expect(r).toEqual({ written: 3, parent: 0, dropped: 3 });
    const back = PageMap.forTask(dir, w.pid);
    expect(back.runs.map((x) => [x.vaddr, x.pages])).toEqual([
      [a.area, 2n],
      [a.area + BigInt((a.pages - 1) * PAGE), 1n],
    ]);
    expect(back.read(a.area + BigInt((a.pages - 1) * PAGE), 8).readBigUInt64LE(0)).toBe(BigInt(a.pages - 1));
    // a dump of a frozen task (not tolerant) fails instead
    const pm2 = ImageDir.create(tempDir('criu-ts-incr-')).pageMapWriter(w.pid, 1);
    await expect(
      writePlan(w.pid, [{ start: hole, end: hole + BigInt(PAGE), parent: false, readable: true }], pm2, {
        tolerant: false,
      }),
    ).rejects.toThrow(/cannot read the page/);
    pm2.close();
  }, 60_000);
});

describe('the tracking between runs', () => {
  it('a killed keeper means a full dump (logged), and the task is left with nothing tracked', async () => {
    const w = startWorkload('dirtier', ['8', 'burst']);
    await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const p1 = await preDump({ pid: w.pid, imagesDir: imagesDir(root, 'pre1') });
    track(p1.keeperPid!);
    expect(trackedVmas(w.pid)).toBeGreaterThan(0);
    kill(p1.keeperPid!, SIGKILL);
    await waitFor(
      () => !keeperAlive(p1.keeperPid) && trackedVmas(w.pid) === 0,
      'the tracking to go with the keeper',
    );
    const log = keepLog();
    const { r } = await finalDump(w.pid, imagesDir(root, 'dump'), '../pre1', [], {
      logger: log,
      leaveRunning: true,
    });
    expect(r.stats.pages_skipped_parent).toBe(0n);
    expect(
      log.lines.some((l) => /^W the tracking keeper \(pid \d+\) is gone: every page is dumped/.test(l)),
    ).toBe(true);
    // -R with --track-mem: armed again for a later dump
    const st = readKeeperState(path.join(root, 'dump'));
    expect(st).toBeDefined();
    track(st!.keeper.pid);
    expect(trackedVmas(w.pid)).toBeGreaterThan(0);
  }, 60_000);

  it('dump --track-mem -R keeps tracking for a later dump; a dump without --track-mem ends it', async () => {
    const w = startWorkload('dirtier', ['8', 'burst']);
    await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const p1 = await preDump({ pid: w.pid, imagesDir: imagesDir(root, 'pre1') });
    track(p1.keeperPid!);
    const d1 = imagesDir(root, 'dump1');
    await finalDump(w.pid, d1, '../pre1', [], { leaveRunning: true });
    const st = readKeeperState(d1);
    expect(st).toBeDefined();
    track(st!.keeper.pid);
    expect(keeperAlive(st!.keeper.pid)).toBe(true);
    expect(trackedVmas(w.pid)).toBeGreaterThan(0);
    const d2 = imagesDir(root, 'dump2');
    const r2 = await dump({ pid: w.pid, imagesDir: d2, prevImagesDir: '../dump1', leaveRunning: true });
    expect(r2.stats.pages_skipped_parent).toBe(0n);
    expect(keeperAlive(st!.keeper.pid)).toBe(false);
    expect(readKeeperState(d1)).toBeUndefined();
    expect(trackedVmas(w.pid)).toBe(0);
  }, 60_000);

  it('a final dump that fails (after taking the tracking over) leaves the task running with nothing tracked', async () => {
    const w = startWorkload('dirtier', ['8', 'burst']);
    await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const p1 = await preDump({ pid: w.pid, imagesDir: imagesDir(root, 'pre1') });
    track(p1.keeperPid!);
    expect(trackedVmas(w.pid)).toBeGreaterThan(0);
    await expect(
      dump({
        pid: w.pid,
        imagesDir: imagesDir(root, 'dump'),
        trackMem: true,
        prevImagesDir: '../pre1',
        notify: (stage) => {
          if (stage === 'post-dump') throw new Error('no, thanks');
        },
      }),
    ).rejects.toThrow(/no, thanks/);
    expect(keeperAlive(p1.keeperPid)).toBe(false);
    expect(readKeeperState(path.join(root, 'pre1'))).toBeUndefined();
    expect(trackedVmas(w.pid)).toBe(0);
    // and it runs on: it answers a burst
    const n = readLines(w.report).length;
    kill(w.pid, SIGUSR2);
    await waitForLine(w.report, /^BURST /, { pid: w.pid, fromLine: n });
  }, 60_000);

  it('the keeper exits by itself when the tracked task dies, and when its images directory goes', async () => {
    const w = startWorkload('dirtier', ['8', 'burst']);
    await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const p1 = await preDump({ pid: w.pid, imagesDir: imagesDir(root, 'pre1') });
    track(p1.keeperPid!);
    fs.rmSync(path.join(root, 'pre1'), { recursive: true });
    await waitFor(
      () => !keeperAlive(p1.keeperPid) && trackedVmas(w.pid) === 0,
      'the keeper to see its directory gone',
    );
    const p2 = await preDump({ pid: w.pid, imagesDir: imagesDir(root, 'pre2') });
    track(p2.keeperPid!);
    expect(keeperAlive(p2.keeperPid)).toBe(true);
    kill(w.pid, SIGKILL);
    await waitFor(() => !keeperAlive(p2.keeperPid), 'the keeper to see its task gone');
    expect(readKeeperState(path.join(root, 'pre2'))).toBeUndefined();
  }, 60_000);
});
