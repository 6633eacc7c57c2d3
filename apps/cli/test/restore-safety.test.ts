// A restore that cannot be done fails with one clear line and harms nothing: missing or corrupt images,
// pids in use or a vDSO that differs are found before any process is created; an error in the middle
// kills and reaps every task criu-ts created; the images directory is never modified (but for
// stats-restore and logs). Pids still held by a dying (zombie) task are waited for.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { type CoreEntry, ImageDir, type MmEntry } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  counterNumbers,
  isConsecutiveFromOne,
  procState,
  readLines,
  restoreStubs,
  runCli,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

async function dumpCounter(opts: { reap?: boolean; leaveRunning?: boolean } = {}) {
  const w = startWorkload('counter', ['5']);
  await waitForLine(w.report, /^5$/, { pid: w.pid });
  const dir = path.join(tempDir('criu-ts-restore-'), 'images');
  const r = await runCli(['dump', '-t', String(w.pid), '-D', dir, ...(opts.leaveRunning ? ['-R'] : [])]);
  expect(r.code).toBe(0);
  if (opts.reap !== false && !opts.leaveRunning) killAndReap(w.pid);
  return { ...w, dir };
}

/** name -> sha256 of every file of the images dir. */
function digest(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of fs.readdirSync(dir).sort())
    m.set(
      f,
      createHash('sha256')
        .update(fs.readFileSync(path.join(dir, f)))
        .digest('hex'),
    );
  return m;
}

/** A failed restore: exit 1, one line on stderr matching `re`, nothing created. */
async function expectFailure(dir: string, re: RegExp, pids: number[]): Promise<string> {
  const before = digest(dir);
  const r = await runCli(['restore', '-D', dir, '-d']);
  expect(r.code).toBe(1);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^criu-ts: /);
  expect(lines[0]).toMatch(re);
  for (const p of pids)
    await waitFor(
      () => procState(p) === 'gone',
      () => `pid ${p} gone (${procState(p)})`,
      5000,
    );
  expect(restoreStubs()).toEqual([]);
  expect(digest(dir)).toEqual(before);
  if (process.env.SHOW_ERRORS) console.log(lines[0]);
  return lines[0] as string;
}

describe('criu-ts restore: errors before anything is created', () => {
  it('a missing image names the file', async () => {
    const w = await dumpCounter();
    fs.rmSync(path.join(w.dir, `mm-${w.pid}.img`));
    await expectFailure(w.dir, new RegExp(`missing image .*mm-${w.pid}\\.img`), [w.pid]);
  });

  it('a corrupt image names the file', async () => {
    const w = await dumpCounter();
    const f = path.join(w.dir, `core-${w.pid}.img`);
    const b = fs.readFileSync(f);
    b.fill(0xff, 8, 24);
    fs.writeFileSync(f, b);
    await expectFailure(w.dir, new RegExp(`core-${w.pid}\\.img`), [w.pid]);
  });

  it('a truncated pages image', async () => {
    const w = await dumpCounter();
    const f = path.join(w.dir, 'pages-1.img');
    fs.truncateSync(f, 4096);
    await expectFailure(w.dir, /pages-1\.img.*truncated/, [w.pid]);
  });

  it('a not-an-images directory', async () => {
    const dir = tempDir('criu-ts-restore-empty-');
    await expectFailure(dir, /missing image .*inventory\.img/, []);
  });

  it('a pid in use by a live task: refused at once, naming it; the task runs on', async () => {
    const w = await dumpCounter({ leaveRunning: true });
    const t0 = Date.now();
    await expectFailure(w.dir, new RegExp(`pid ${w.pid} is in use by counter`), []);
    expect(Date.now() - t0).toBeLessThan(3000);
    await waitForMoreLines(w.report, 5, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });

  it('a vDSO of another size than this kernel has: refused', async () => {
    const w = await dumpCounter();
    const img = ImageDir.open(w.dir);
    const mm = img.mm(w.pid) as MmEntry;
    const vdso = mm.vmas!.find((v) => v.status & (1 << 3))!;
    vdso.end += 0x1000n;
    img.write('mm-%u', w.pid, [mm]);
    await expectFailure(w.dir, /vDSO of .* differs from this kernel/, [w.pid]);
  });

  it('a file that changed since the dump', async () => {
    const d = tempDir('criu-ts-restore-changed-');
    const file = path.join(d, 'numbers');
    fs.writeFileSync(file, Array.from({ length: 500 }, (_, i) => `${i + 1}\n`).join(''));
    const w = startWorkload('reader', [file]);
    await waitForLine(w.report, /^LINE 3$/, { pid: w.pid });
    const dir = path.join(tempDir('criu-ts-restore-'), 'images');
    expect((await runCli(['dump', '-t', String(w.pid), '-D', dir])).code).toBe(0);
    killAndReap(w.pid);
    fs.appendFileSync(file, '501\n');
    await expectFailure(dir, new RegExp(`${file} has size \\d+, the images have \\d+`), [w.pid]);
  });
});

describe('criu-ts restore: pids held by dying tasks', () => {
  it('waits for the dumped task to be reaped, then restores', async () => {
    const w = await dumpCounter({ reap: false });
    expect(procState(w.pid)).toBe('Z');
    // The restore logs "restoring N tasks" (a JSON log is written at once) just before it waits for the
    // pids to be free: then it has found ours held by the zombie, which only we can reap.
    const log = path.join(tempDir('criu-ts-restore-log-'), 'restore.log');
    const run = runCli(['restore', '-D', w.dir, '-d', '-v4', '--log-format', 'json', '-o', log]);
    await waitFor(
      () => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes(`"restoring 1 tasks of ${w.dir}"`),
      () => `"restoring 1 tasks" in ${log}`,
    );
    expect(procState(w.pid)).toBe('Z');
    killAndReap(w.pid); // we are its parent: reaping it frees the pid
    const r = await run;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await waitForMoreLines(w.report, 5, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });
});

describe('criu-ts restore: an error half way kills what it created', () => {
  it('bad registers in the last task of a tree: every task killed and reaped, exit 1', async () => {
    const w = startWorkload('tree');
    await waitForLine(w.report, /^TREE /, { pid: w.pid });
    const pids = readLines(w.report)
      .filter((l) => l.startsWith('TASK '))
      .map((l) => Number(l.split(' ')[1]));
    track(...pids);
    const dir = path.join(tempDir('criu-ts-restore-'), 'images');
    expect((await runCli(['dump', '-t', String(w.pid), '-D', dir])).code).toBe(0);
    for (const p of pids) killAndReap(p);
    // A user code segment the kernel refuses: found only when the registers are loaded, at the very end.
    const img = ImageDir.open(dir);
    const last = pids.at(-1)!;
    const core = img.core(last) as CoreEntry;
    core.thread_info!.gpregs.cs = 0x10n;
    img.write('core-%u', last, [core]);
    const line = await expectFailure(dir, /EIO|registers|cs/i, pids);
    expect(line).toMatch(new RegExp(String(last)));
  });
});
