// `criu-ts dump` as a user runs it (node_modules/.bin/criu-ts at the repo root): what happens to the
// tree after a successful dump (killed by default, -R running, -s stopped), the log file (-v4 -o, -W),
// --display-stats, exit codes and the one-line error, modes of the directory and images, and a second
// dump into the same directory.
import fs from 'node:fs';
import path from 'node:path';
import { ImageDir, type StatsEntry } from '@criu-ts/images';
import { kill, SIGCONT } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  counterNumbers,
  critDecodeAll,
  entries,
  failLines,
  haveCrit,
  isConsecutiveFromOne,
  num,
  obj,
  procState,
  readLines,
  runCli,
  startInShellSession,
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

/** A fresh images directory path (not created yet) inside a temp dir. */
const newImagesDir = () => path.join(tempDir('criu-ts-core-cli-'), 'images');

/** The files a one-task dump writes. */
const oneTaskImages = (pid: number) => [
  `core-${pid}.img`,
  // fd table 2, as CRIU numbers it: 1 is the dumper's own (inventory.img's root_ids)
  'fdinfo-2.img',
  'files.img',
  `fs-${pid}.img`,
  `ids-${pid}.img`,
  'inventory.img',
  `mm-${pid}.img`,
  `pagemap-${pid}.img`,
  'pages-1.img',
  'pstree.img',
  'stats-dump',
];

const dumpStats = (dir: string) => ImageDir.open(dir).one<StatsEntry>('stats-%s', 'dump').dump!;

describe('criu-ts dump: what happens to the tree', () => {
  it('by default: exit 0, nothing printed, the tree killed; DIR created 0700, images 0600', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const dir = newImagesDir();
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir]);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    // Killed: a zombie until we (its parent) reap it.
    await waitFor(
      () => ['Z', 'gone'].includes(procState(w.pid)),
      () => `pid ${w.pid} killed (${procState(w.pid)})`,
    );
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const files = fs.readdirSync(dir).sort();
    expect(files).toEqual(oneTaskImages(w.pid).sort());
    for (const f of files) expect(fs.statSync(path.join(dir, f)).mode & 0o777, f).toBe(0o600);
    expect(failLines(w.report)).toEqual([]);
  });

  it('--leave-running: exit 0, the counter counts on without a gap, untraced', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const r = await runCli(['dump', '-t', String(w.pid), '-D', newImagesDir(), '--leave-running']);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(tracerPid(w.pid)).toBe(0);
    expect(['S', 'R']).toContain(procState(w.pid));
    await waitForMoreLines(w.report, 10, w.pid);
    expect(failLines(w.report)).toEqual([]);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });

  it('-s: the tree is left stopped (T), and counts on after SIGCONT', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const r = await runCli(['dump', '-t', String(w.pid), '-D', newImagesDir(), '-s']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    await waitFor(
      () => procState(w.pid) === 'T',
      () => `pid ${w.pid} stopped (${procState(w.pid)})`,
    );
    expect(tracerPid(w.pid)).toBe(0);
    const n = readLines(w.report).length;
    expect(procState(w.pid)).toBe('T');
    kill(w.pid, SIGCONT);
    await waitForLine(w.report, (_l, i) => i >= n + 5, { pid: w.pid, fromLine: n });
    expect(failLines(w.report)).toEqual([]);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });

  it('-s on a tree: all five tasks are left stopped', async () => {
    const w = startWorkload('tree');
    await waitForLine(w.report, /^TREE /, { pid: w.pid });
    const pids = readLines(w.report)
      .filter((l) => l.startsWith('TASK '))
      .map((l) => Number(l.split(' ')[1]));
    track(...pids);
    const r = await runCli(['dump', '-t', String(w.pid), '-D', newImagesDir(), '--leave-stopped']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    await waitFor(
      () => pids.every((p) => procState(p) === 'T'),
      () => `all stopped: ${pids.map((p) => `${p}:${procState(p)}`).join(' ')}`,
    );
    for (const p of pids) kill(p, SIGCONT);
    await waitFor(
      () => pids.every((p) => procState(p) === 'S' && tracerPid(p) === 0),
      () => `all asleep again: ${pids.map((p) => `${p}:${procState(p)}`).join(' ')}`,
    );
    expect(failLines(w.report)).toEqual([]);
  });
});

describe('criu-ts dump: log, stats, exit codes', () => {
  it('-v4 -o FILE -W DIR: the log is written in the work dir', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const dir = newImagesDir();
    const work = path.join(tempDir('criu-ts-core-work-'), 'work');
    fs.mkdirSync(work);
    const r = await runCli([
      'dump',
      '-t',
      String(w.pid),
      '-D',
      dir,
      '-W',
      work,
      '-R',
      '-v4',
      '-o',
      'dump.log',
    ]);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const log = path.join(work, 'dump.log');
    expect(fs.existsSync(log)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'dump.log'))).toBe(false);
    const text = fs.readFileSync(log, 'utf8');
    expect(text).toContain(String(w.pid));
    expect(text.split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(2);
    // The images are complete; stats-dump goes to the work dir with the log, as CRIU keeps it.
    expect(fs.readdirSync(dir).sort()).toEqual(
      oneTaskImages(w.pid)
        .filter((f) => f !== 'stats-dump')
        .sort(),
    );
    expect(fs.readdirSync(work).sort()).toEqual(['dump.log', 'stats-dump']);
  });

  it('-v4 -o FILE: the log of a failed dump records the error', async () => {
    const dir = newImagesDir();
    const r = await runCli(['dump', '-t', '2', '-D', dir, '-v4', '-o', 'dump.log']);
    expect(r.code).toBe(1);
    const text = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
    expect(text).toMatch(/EPERM/);
  });

  it('--display-stats prints CRIU stats block, with the values of stats-dump', async () => {
    const w = startWorkload('memhog', ['4']);
    await waitForLine(w.report, /^SUM /, { pid: w.pid });
    const dir = newImagesDir();
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-R', '--display-stats']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const s = dumpStats(dir);
    const hex = (v: bigint | number) => `${v} (0x${BigInt(v).toString(16)})`;
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([
      'Displaying dump stats:',
      `Freezing time: ${s.freezing_time} us`,
      `Frozen time: ${s.frozen_time} us`,
      `Memory dump time: ${s.memdump_time} us`,
      `Memory write time: ${s.memwrite_time} us`,
      // CRIU 4.2 writes irmap_resolve always, so it always prints this line
      `IRMAP resolve time: ${s.irmap_resolve} us`,
      `Memory pages scanned: ${hex(s.pages_scanned)}`,
      `Memory pages skipped from parent: ${hex(s.pages_skipped_parent)}`,
      `Memory pages written: ${hex(s.pages_written)}`,
      `Lazy memory pages: ${hex(s.pages_lazy ?? 0n)}`,
    ]);
    expect(Number(s.pages_written)).toBeGreaterThanOrEqual(1024);
    expect(s.frozen_time).toBeGreaterThan(0);
    expect(s.irmap_resolve).toBe(0); // no watched inode needed a path looked for
  });

  it.each([
    ['a pid that does not exist', ['-t', '999999999'], /999999999/],
    ['a pid that is not a number', ['-t', 'abc'], /abc/],
    ['no -t', [], /-t|--tree/],
  ])('failure (%s): exit 1, one line on stderr', async (_what, args, names) => {
    const dir = newImagesDir();
    const r = await runCli(['dump', ...args, '-D', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(names);
  });
});

describe('criu-ts dump --shell-job', () => {
  it('a task of an outside session: exit 1 naming the leader, untouched; --shell-job dumps it', async () => {
    const w = await startInShellSession('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const sid = Number(fs.readFileSync(`/proc/${w.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[3]);
    expect(sid).toBe(w.leader);
    const r = await runCli(['dump', '-t', String(w.pid), '-D', newImagesDir()]);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(String(sid));
    expect(lines[0]).toContain('--shell-job');
    expect(tracerPid(w.pid)).toBe(0);
    await waitForMoreLines(w.report, 3, w.pid);

    const dir = newImagesDir();
    const ok = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-R', '--shell-job']);
    expect(ok).toMatchObject({ code: 0, stderr: '' });
    const [e] = ImageDir.open(dir).pstree();
    expect([e!.pid, e!.sid]).toEqual([w.pid, sid]);
    await waitForMoreLines(w.report, 3, w.pid);
    expect(failLines(w.report)).toEqual([]);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });
});

describe('criu-ts dump: the same DIR twice', () => {
  it.skipIf(!haveCrit)('a second dump replaces the images of the first one', async () => {
    const dir = newImagesDir();
    const big = startWorkload('memhog', ['16']);
    await waitForLine(big.report, /^SUM /, { pid: big.pid });
    expect((await runCli(['dump', '-t', String(big.pid), '-D', dir, '-R'])).code).toBe(0);
    const firstPages = fs.statSync(path.join(dir, 'pages-1.img')).size;
    expect(firstPages).toBeGreaterThanOrEqual(16 << 20);

    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    // pages-1.img, pstree, inventory, stats, fdinfo-2, files: rewritten (truncated), not appended to.
    const s = dumpStats(dir);
    expect(fs.statSync(path.join(dir, 'pages-1.img')).size).toBe(Number(s.pages_written) * 4096);
    const { decoded, failures } = critDecodeAll(
      dir,
      oneTaskImages(w.pid).filter((f) => f !== 'pages-1.img'),
    );
    expect(failures).toEqual([]);
    const pstree = entries(decoded.get('pstree.img'));
    expect(pstree.map((e) => num(e.pid))).toEqual([w.pid]);
    const files = entries(decoded.get('files.img'));
    const exe = files.find((f) => String(obj(f.reg).name).endsWith('/counter'));
    expect(exe, 'the counter executable in files.img').toBeDefined();
    expect(files.some((f) => String(obj(f.reg).name).endsWith('/memhog'))).toBe(false);
    const stats = obj(entries(decoded.get('stats-dump'))[0]!.dump);
    expect(num(stats.pages_written)).toBe(Number(s.pages_written));
    for (const f of fs.readdirSync(dir)) expect(fs.statSync(path.join(dir, f)).mode & 0o777, f).toBe(0o600);
  });
});
