// `criu-ts pre-dump` and `criu-ts dump --track-mem --prev-images-dir` from the command line: the chained
// images as CRIU's crit reads them (PE_PARENT runs, parent links, the pre-dump's inventory and stats),
// the final images against the task's memory (the dump leaves it stopped: -s), the keeper gone with the
// task, the refusals. The restore of such a chain (pre-dump, pre-dump, dump, restore, every byte) is at
// the end, enabled once restore reads PE_PARENT runs (CHAIN_RESTORE).
import fs from 'node:fs';
import path from 'node:path';
import { PageMap } from '@criu-ts/images';
import { kill, processVmReadv, SIGKILL, SIGUSR1, SIGUSR2 } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  critDecodeAll,
  entries,
  haveCrit,
  killAndReapSafe,
  num,
  onCleanup,
  oneLineFailure,
  procState,
  readLines,
  restoreDetached,
  runCli,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './pre-dump-helpers.js';

/** Restore of PE_PARENT chains (h/chain): flip to true once restore reads them. */
const CHAIN_RESTORE = true;

const PAGE = 4096;

beforeAll(async () => {
  await buildWorkloads();
}, 120_000);
afterEach(() => cleanup());

async function areaOf(report: string, pid: number) {
  const [, a, n, g] = (await waitForLine(report, /^AREA /, { pid })).split(' ');
  return { area: BigInt(`0x${a}`), pages: Number(n), gens: BigInt(`0x${g}`) };
}

async function burst(pid: number, report: string): Promise<number> {
  const n = readLines(report).length;
  kill(pid, SIGUSR2);
  return Number((await waitForLine(report, /^BURST /, { pid, fromLine: n })).split(' ')[1]);
}

async function check(pid: number, report: string): Promise<bigint> {
  const n = readLines(report).length;
  kill(pid, SIGUSR1);
  return BigInt((await waitForLine(report, /^CHECK OK /, { pid, fromLine: n })).split(' ')[2]!);
}

const keeperOf = (dir: string): number | undefined => {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'criu-ts-track.json'), 'utf8')).keeper.pid;
  } catch {
    return undefined;
  }
};

/** A run's images dir; a keeper left there ends at cleanup. */
function runDir(root: string, name: string): string {
  const d = path.join(root, name);
  onCleanup(() => {
    const k = keeperOf(d);
    if (k) killAndReapSafe(k);
  });
  return d;
}

async function cli(args: string[]): Promise<string> {
  const r = await runCli(args);
  if (r.code !== 0 || r.stderr) throw new Error(`criu-ts ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

describe('criu-ts pre-dump', () => {
  it('check --feature mem_dirty_track names the mechanism', async () => {
    const r = await runCli(['check', '--feature', 'mem_dirty_track']);
    expect(r).toMatchObject({ code: 0, stdout: 'mem_dirty_track is supported (uffd-wp)\n', stderr: '' });
  });

  it.skipIf(!haveCrit)(
    'pre-dump, pre-dump, dump --track-mem: crit reads the chain; PE_PARENT runs; the final images are the memory of the stopped task',
    async () => {
      const w = startWorkload('dirtier', ['16', 'burst', '2']);
      const a = await areaOf(w.report, w.pid);
      const root = tempDir('criu-ts-incr-');
      const [pre1, pre2, dump] = ['pre1', 'pre2', 'dump'].map((n) => runDir(root, n)) as [
        string,
        string,
        string,
      ];
      await cli(['pre-dump', '-t', String(w.pid), '-D', pre1]);
      expect(procState(w.pid)).not.toBe('gone');
      await burst(w.pid, w.report);
      await cli(['pre-dump', '-t', String(w.pid), '-D', pre2, '--prev-images-dir', '../pre1', '--track-mem']);
      const written = await burst(w.pid, w.report);
      const out = await cli([
        'dump',
        '-t',
        String(w.pid),
        '-D',
        dump,
        '--prev-images-dir',
        '../pre2',
        '--track-mem',
        '-s',
        '--display-stats',
      ]);
      expect(out).toMatch(/^Memory pages skipped from parent: [1-9]/m);
      // left stopped: its memory is the memory at the freeze
      await waitFor(() => procState(w.pid) === 'T', 'the task stopped');
      const live = Buffer.alloc(a.pages * PAGE);
      expect(processVmReadv(w.pid, [{ local: live, remote: a.area, len: live.length }])).toBe(live.length);
      const img = PageMap.forTask(dump, w.pid).read(a.area, live.length);
      const bad: number[] = [];
      for (let i = 0; i < a.pages; i++)
        if (img.compare(live, i * PAGE, (i + 1) * PAGE, i * PAGE, (i + 1) * PAGE)) bad.push(i);
      expect(bad).toEqual([]);
      expect(fs.readlinkSync(path.join(pre2, 'parent'))).toBe('../pre1');
      expect(fs.readlinkSync(path.join(dump, 'parent'))).toBe('../pre2');

      // crit 3.17 (CRIU's reader) on the three levels
      const flagsOf = (dir: string) => {
        const { decoded, failures } = critDecodeAll(dir, [
          `pagemap-${w.pid}.img`,
          'inventory.img',
          'stats-dump',
        ]);
        expect(failures).toEqual([]);
        const pm = entries(decoded.get(`pagemap-${w.pid}.img`));
        return {
          flags: new Set(pm.slice(1).map((e) => num(e.flags))),
          inventory: entries(decoded.get('inventory.img'))[0]!,
          stats: (entries(decoded.get('stats-dump'))[0]!.dump ?? {}) as Record<string, unknown>,
          parentPages: pm
            .slice(1)
            .filter((e) => num(e.flags) === 1)
            .reduce((n, e) => n + num(e.nr_pages ?? e.compat_nr_pages), 0),
        };
      };
      const l1 = flagsOf(pre1);
      const l2 = flagsOf(pre2);
      const l3 = flagsOf(dump);
      expect([...l1.flags]).toEqual([4]);
      expect(l2.flags).toEqual(new Set([1, 4]));
      expect(l3.flags).toEqual(new Set([1, 4]));
      expect(num(l2.inventory.pre_dump_mode)).toBe(2);
      expect(num(l2.stats.pages_skipped_parent as never)).toBe(l2.parentPages);
      expect(num(l3.stats.pages_skipped_parent as never)).toBe(l3.parentPages);
      expect(l3.parentPages).toBeGreaterThanOrEqual(a.pages - written - 64);
      // -s with --track-mem keeps tracking; the keeper goes with the task
      const keeper = keeperOf(dump);
      expect(keeper).toBeDefined();
      track(keeper!);
      kill(w.pid, SIGKILL);
      await waitFor(
        () => keeperOf(dump) === undefined && ['gone', 'Z'].includes(procState(keeper!)),
        'the keeper to go with its task',
      );
    },
    120_000,
  );

  it('refuses --pre-dump-mode splice by name, a missing -t, a parent that is not there', async () => {
    const w = startWorkload('dirtier', ['4', 'burst']);
    await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const dir = runDir(root, 'pre1');
    expect(
      oneLineFailure(await runCli(['pre-dump', '-t', String(w.pid), '-D', dir, '--pre-dump-mode', 'splice'])),
    ).toBe(
      'criu-ts: --pre-dump-mode splice is not supported by criu-ts (pages are not pinned with vmsplice): use --pre-dump-mode read, the default',
    );
    expect(oneLineFailure(await runCli(['pre-dump', '-D', dir]))).toMatch(/pre-dump needs -t/);
    expect(
      oneLineFailure(
        await runCli(['pre-dump', '-t', String(w.pid), '-D', dir, '--prev-images-dir', '../nowhere']),
      ),
    ).toMatch(/^criu-ts: Invalid parent image directory provided: \.\.\/nowhere: ENOENT$/);
    expect(
      oneLineFailure(await runCli(['pre-dump', '-t', String(w.pid), '-D', dir, '--pre-dump-mode', 'x'])),
    ).toMatch(/unable to parse value of --pre-dump-mode: x/);
    expect(keeperOf(dir)).toBeUndefined();
  });
});

// Restore of PE_PARENT chains comes with h/chain.
describe.skipIf(!CHAIN_RESTORE)('restore of a pre-dump chain', () => {
  it('pre-dump, pre-dump, dump, restore of a task writing without pause: every page checks against its generation', async () => {
    const w = startWorkload('dirtier', ['16', 'loop']);
    await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const [pre1, pre2, dump] = ['pre1', 'pre2', 'dump'].map((n) => runDir(root, n)) as [
      string,
      string,
      string,
    ];
    await cli(['pre-dump', '-t', String(w.pid), '-D', pre1]);
    await cli(['pre-dump', '-t', String(w.pid), '-D', pre2, '--prev-images-dir', '../pre1']);
    await cli(['dump', '-t', String(w.pid), '-D', dump, '--prev-images-dir', '../pre2', '--track-mem']);
    killAndReapSafe(w.pid);
    await restoreDetached(dump);
    // the workload checks every word of every page against its generation table
    await check(w.pid, w.report);
  }, 120_000);

  it('pre-dump, pre-dump, dump, restore of a task changing 2% between runs: the restored memory is the dumped memory, byte for byte', async () => {
    const w = startWorkload('dirtier', ['16', 'burst', '2']);
    const a = await areaOf(w.report, w.pid);
    const root = tempDir('criu-ts-incr-');
    const [pre1, pre2, dump] = ['pre1', 'pre2', 'dump'].map((n) => runDir(root, n)) as [
      string,
      string,
      string,
    ];
    await cli(['pre-dump', '-t', String(w.pid), '-D', pre1]);
    await burst(w.pid, w.report);
    await cli(['pre-dump', '-t', String(w.pid), '-D', pre2, '--prev-images-dir', '../pre1']);
    await burst(w.pid, w.report);
    const sum = await check(w.pid, w.report);
    const before = Buffer.alloc(a.pages * PAGE);
    processVmReadv(w.pid, [{ local: before, remote: a.area, len: before.length }]);
    await cli(['dump', '-t', String(w.pid), '-D', dump, '--prev-images-dir', '../pre2', '--track-mem']);
    killAndReapSafe(w.pid);
    await restoreDetached(dump);
    const after = Buffer.alloc(a.pages * PAGE);
    processVmReadv(w.pid, [{ local: after, remote: a.area, len: after.length }]);
    expect(after.equals(before)).toBe(true);
    expect(await check(w.pid, w.report)).toBe(sum);
  }, 120_000);
});
