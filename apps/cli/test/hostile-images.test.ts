// Hostile and inconsistent image directories, made by the test from a real dump of the counter workload:
// each is refused with exit 1 and one line naming the file (and field), before any task exists, without
// hanging (FIFOs, devices, sockets in place of images), and without writing through a symlink planted
// in the directory (a sentinel file outside it must stay untouched). Dumps into such a directory are
// refused the same way, and leave the tree running.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { ImageDir, type MmEntry, type PagemapHead, type PagemapRun } from '@criu-ts/images';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  counterNumbers,
  isConsecutiveFromOne,
  procState,
  REPO,
  restoreStubs,
  runCli,
  startWorkload,
  tempDir,
  waitFor,
  waitForLine,
  waitForMoreLines,
  workloadPath,
} from './helpers.js';

const T = 30_000;
let keep: string;
let pristine: string;
let pid: number;

beforeAll(async () => {
  await buildWorkloads();
  // Outside tempDir(): the images and the counter's report (an fd of the task) live for the whole file,
  // while cleanup() runs after each test.
  keep = fs.mkdtempSync('/tmp/criu-ts-hostile-pristine-');
  pristine = path.join(keep, 'images');
  const report = path.join(keep, 'report');
  const p = startTraceable([workloadPath('counter'), report, '5'], { setsid: true });
  try {
    await waitForLine(report, /^5$/, { pid: p });
    const r = await runCli(['dump', '-t', String(p), '-D', pristine]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  } finally {
    killAndReap(p);
  }
  pid = p;
}, 60_000);
afterAll(() => {
  if (keep) fs.rmSync(keep, { recursive: true, force: true });
});
afterEach(() => cleanup());

/** A fresh copy of the dump to spoil. */
function copy(): { dir: string; img: ImageDir } {
  const dir = path.join(tempDir('criu-ts-hostile-'), 'images');
  fs.cpSync(pristine, dir, { recursive: true });
  return { dir, img: ImageDir.open(dir) };
}

/** A file outside the images dir that nothing may write to. */
function sentinel(): { file: string; intact: () => void } {
  const file = path.join(tempDir('criu-ts-sentinel-'), 'sentinel');
  fs.writeFileSync(file, 'untouched\n', { mode: 0o644 });
  const before = fs.statSync(file);
  return {
    file,
    intact: () => {
      expect(fs.readFileSync(file, 'utf8')).toBe('untouched\n');
      expect(fs.statSync(file).mtimeMs).toBe(before.mtimeMs);
    },
  };
}

/** One line on stderr, starting with criu-ts: and matching every pattern; exit 1. */
function expectOneLine(r: { code: number; stderr: string }, ...res: RegExp[]): string {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.code).toBe(1);
  const line = lines[0] as string;
  expect(line).toMatch(/^criu-ts: /);
  for (const re of res) expect(line).toMatch(re);
  if (process.env.SHOW_ERRORS) console.log(line);
  return line;
}

/** A restore refused before any task exists: one line, no stub, the dumped pid not taken. */
async function expectRefused(dir: string, ...res: RegExp[]): Promise<string> {
  const r = await runCli(['restore', '-D', dir, '-d']);
  const line = expectOneLine(r, ...res);
  expect(procState(pid)).toBe('gone');
  expect(restoreStubs()).toEqual([]);
  return line;
}

const pagemapFile = () => `pagemap-${pid}\\.img`;

/** The pagemap of the copy: head and runs, to rewrite. */
function runs(img: ImageDir): { head: object; runs: PagemapRun[] } {
  const [head, ...rest] = img.messages<object>('pagemap-%lu', pid);
  return { head: head as object, runs: rest as PagemapRun[] };
}

function writeRuns(img: ImageDir, head: object, list: PagemapRun[]): void {
  img.write('pagemap-%lu', pid, [head as PagemapHead, ...list]);
}

describe('inconsistent images: refused before any task exists', () => {
  it(
    'the unchanged images restore (the control)',
    async () => {
      const { dir } = copy();
      const r = await runCli(['restore', '-D', dir, '-d']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      await waitFor(() => procState(pid) !== 'gone', `pid ${pid} restored`);
      killAndReap(pid);
    },
    T,
  );

  it(
    'overlapping pagemap entries',
    async () => {
      const { dir, img } = copy();
      const { head, runs: list } = runs(img);
      const first = list.find((e) => Number(e.nr_pages) > 1)!;
      // A second entry inside the first one's pages.
      const i = list.indexOf(first);
      list.splice(i + 1, 0, { ...first, vaddr: first.vaddr + 0x1000n, nr_pages: 1n, compat_nr_pages: 1 });
      writeRuns(img, head, list);
      await expectRefused(dir, new RegExp(pagemapFile()), /entry \d+ .*overlaps/);
    },
    T,
  );

  it(
    'an unaligned pagemap entry',
    async () => {
      const { dir, img } = copy();
      const { head, runs: list } = runs(img);
      list[0] = { ...list[0]!, vaddr: list[0]!.vaddr + 0x10n };
      writeRuns(img, head, list);
      await expectRefused(dir, new RegExp(pagemapFile()), /entry 1 .*vaddr is not page-aligned/);
    },
    T,
  );

  it(
    'pagemap entries out of address order',
    async () => {
      const { dir, img } = copy();
      const { head, runs: list } = runs(img);
      expect(list.length).toBeGreaterThan(1);
      [list[0], list[1]] = [list[1]!, list[0]!];
      writeRuns(img, head, list);
      await expectRefused(dir, new RegExp(pagemapFile()), /entry 2 .*comes before the previous entry/);
    },
    T,
  );

  it(
    'a pagemap run outside every VMA',
    async () => {
      const { dir, img } = copy();
      const { head, runs: list } = runs(img);
      // Below the lowest VMA (mmap_min_addr keeps 0x10000 unmapped).
      list.unshift({ vaddr: 0x1000n, nr_pages: 1n, compat_nr_pages: 1, flags: 4 } as PagemapRun);
      writeRuns(img, head, list);
      await expectRefused(dir, new RegExp(pagemapFile()), /pages at 0x1000 are outside every VMA/);
    },
    T,
  );

  it(
    'a pagemap that needs more pages than pages-1.img holds (nr_pages grown inside its VMA)',
    async () => {
      const { dir, img } = copy();
      const mm = img.mm(pid) as MmEntry;
      const { head, runs: list } = runs(img);
      // The last run, grown to the end of its VMA when there is room, else the pages file cut.
      const last = list.at(-1)!;
      const vma = mm.vmas!.find((v) => v.start <= last.vaddr && last.vaddr < v.end)!;
      const room = (vma.end - last.vaddr) / 0x1000n;
      if (room > BigInt(last.nr_pages ?? last.compat_nr_pages)) {
        list[list.length - 1] = { ...last, nr_pages: room, compat_nr_pages: Number(room) };
        writeRuns(img, head, list);
      } else {
        fs.truncateSync(
          path.join(dir, 'pages-1.img'),
          fs.statSync(path.join(dir, 'pages-1.img')).size - 4096,
        );
      }
      await expectRefused(dir, /pages-1\.img holds \d+ bytes, pagemap-\d+\.img needs \d+: truncated/);
    },
    T,
  );

  it(
    'overlapping VMAs',
    async () => {
      const { dir, img } = copy();
      const mm = img.mm(pid) as MmEntry;
      const vmas = mm.vmas!;
      // Two neighbours that are plain memory (not the vDSO, whose size is checked against the kernel).
      const i = vmas.findIndex(
        (v, k) =>
          k + 1 < vmas.length &&
          !(v.status & ((1 << 3) | (1 << 12) | (1 << 2))) &&
          !(vmas[k + 1]!.status & ((1 << 3) | (1 << 12) | (1 << 2))),
      );
      vmas[i] = { ...vmas[i]!, end: vmas[i + 1]!.start + 0x1000n };
      img.write('mm-%u', pid, [mm]);
      await expectRefused(dir, new RegExp(`mm-${pid}\\.img: VMA 0x[0-9a-f]+-0x[0-9a-f]+ overlaps VMA`));
    },
    T,
  );

  it(
    'a pstree.img entry whose length runs past the end of the file',
    async () => {
      const { dir } = copy();
      const f = path.join(dir, 'pstree.img');
      const b = fs.readFileSync(f);
      b.writeUInt32LE(0x7fffff, 8); // the first entry's length word
      fs.writeFileSync(f, b);
      await expectRefused(dir, /pstree\.img: at byte \d+: .*needs 8388607 bytes but only \d+ remain/);
    },
    T,
  );
});

describe('image files that are not files: refused, named, without a hang', () => {
  it(
    'pages-1.img as a FIFO, a character device, a socket, a symlink to a copy and a dangling symlink',
    async () => {
      const kinds: Array<[string, (f: string) => unknown, RegExp]> = [
        ['fifo', (f) => execFileSync('mkfifo', [f]), /pages-1\.img: at byte 0: is a FIFO, not an image file/],
        [
          'chardev',
          (f) => execFileSync('mknod', [f, 'c', '1', '5']), // /dev/zero's numbers
          /pages-1\.img: at byte 0: is a character device, not an image file/,
        ],
        [
          'socket',
          // A bound unix socket leaves its file behind when the binder exits.
          (f) =>
            execFileSync('python3', [
              '-c',
              'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
              f,
            ]),
          /pages-1\.img: at byte 0: is a socket, not an image file/,
        ],
        [
          'symlink',
          (f) => {
            const out = path.join(tempDir('criu-ts-hostile-out-'), 'pages');
            fs.copyFileSync(path.join(pristine, 'pages-1.img'), out);
            fs.symlinkSync(out, f);
          },
          /pages-1\.img: at byte 0: is a symlink, not an image file/,
        ],
        ['dangling', (f) => fs.symlinkSync('/nonexistent/pages', f), /pages-1\.img: at byte 0: is a symlink/],
      ];
      for (const [, make, re] of kinds) {
        const { dir } = copy();
        const f = path.join(dir, 'pages-1.img');
        fs.rmSync(f);
        await make(f);
        await expectRefused(dir, re);
      }
    },
    T,
  );

  it(
    'core-PID.img as a FIFO and inventory.img as a symlink to /dev/zero',
    async () => {
      let { dir } = copy();
      fs.rmSync(path.join(dir, `core-${pid}.img`));
      execFileSync('mkfifo', [path.join(dir, `core-${pid}.img`)]);
      await expectRefused(dir, new RegExp(`core-${pid}\\.img: at byte 0: is a FIFO, not an image file`));
      ({ dir } = copy());
      fs.rmSync(path.join(dir, 'inventory.img'));
      fs.symlinkSync('/dev/zero', path.join(dir, 'inventory.img'));
      await expectRefused(dir, /inventory\.img: at byte 0: is a symlink, not an image file/);
    },
    T,
  );

  it(
    'an image that is a directory is named as one, not as missing',
    async () => {
      const { dir } = copy();
      fs.rmSync(path.join(dir, `mm-${pid}.img`));
      fs.mkdirSync(path.join(dir, `mm-${pid}.img`));
      await expectRefused(dir, new RegExp(`mm-${pid}\\.img: at byte 0: is a directory, not an image file`));
    },
    T,
  );
});

describe('planted symlinks: nothing is written through them', () => {
  it(
    'restore: stats-restore and restore.log planted as symlinks to a sentinel',
    async () => {
      for (const name of ['stats-restore', 'restore.log']) {
        const { dir } = copy();
        const s = sentinel();
        fs.symlinkSync(s.file, path.join(dir, name));
        const r = await runCli(['restore', '-D', dir, '-d', '-o', 'restore.log', '-v4']);
        expectOneLine(
          r,
          new RegExp(`${name}: it exists and is a symlink: not replaced, not written through`),
        );
        s.intact();
        expect(procState(pid)).toBe('gone');
        expect(restoreStubs()).toEqual([]);
      }
    },
    T,
  );

  it(
    'dump: an image name, stats-dump or dump.log planted as a symlink to a sentinel; the tree runs on',
    async () => {
      const w = startWorkload('counter', ['5']);
      await waitForLine(w.report, /^3$/, { pid: w.pid });
      for (const name of [`core-${w.pid}.img`, 'pages-1.img', 'stats-dump', 'inventory.img', 'dump.log']) {
        const dir = path.join(tempDir('criu-ts-hostile-dump-'), 'images');
        fs.mkdirSync(dir, { mode: 0o700 });
        const s = sentinel();
        fs.symlinkSync(s.file, path.join(dir, name));
        const r = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-o', 'dump.log', '-v4']);
        expectOneLine(r, new RegExp(`${name.replace('.', '\\.')}: it exists and is a symlink`));
        s.intact();
        await waitForMoreLines(w.report, 3, w.pid);
      }
      expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
    },
    T,
  );

  it(
    'dump: a FIFO planted under an image name is refused without a hang; the tree runs on',
    async () => {
      const w = startWorkload('counter', ['5']);
      await waitForLine(w.report, /^3$/, { pid: w.pid });
      const dir = path.join(tempDir('criu-ts-hostile-dump-'), 'images');
      fs.mkdirSync(dir, { mode: 0o700 });
      execFileSync('mkfifo', [path.join(dir, 'pstree.img')]);
      const r = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-R']);
      expectOneLine(r, /pstree\.img: it exists and is a FIFO/);
      await waitForMoreLines(w.report, 3, w.pid);
    },
    T,
  );

  it(
    'dump again into the same directory replaces its own images (and their hard links stay untouched)',
    async () => {
      const w = startWorkload('counter', ['5']);
      await waitForLine(w.report, /^3$/, { pid: w.pid });
      const dir = path.join(tempDir('criu-ts-hostile-dump-'), 'images');
      const first = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-R', '-o', 'dump.log']);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      // A hard link to an image, made between the dumps: replacing the image must not write into it.
      const outside = path.join(path.dirname(dir), 'linked');
      fs.linkSync(path.join(dir, 'inventory.img'), outside);
      fs.writeFileSync(outside, 'untouched\n');
      const again = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-o', 'dump.log']);
      expect(again.stderr).toBe('');
      expect(again.code).toBe(0);
      expect(fs.readFileSync(outside, 'utf8')).toBe('untouched\n');
      expect(ImageDir.open(dir).inventory().img_version).toBe(2);
      expect(fs.statSync(path.join(dir, 'inventory.img')).ino).not.toBe(fs.statSync(outside).ino);
      killAndReap(w.pid);
    },
    T,
  );
});

describe('directories and users that cannot work: one line before anything is created', () => {
  it(
    '-D under /proc or /sys',
    async () => {
      const w = startWorkload('counter', ['5']);
      await waitForLine(w.report, /^3$/, { pid: w.pid });
      for (const d of ['/proc/self/criu-ts-images', '/sys/kernel/criu-ts-images', '/proc']) {
        const r = await runCli(['dump', '-t', String(w.pid), '-D', d]);
        expectOneLine(r, new RegExp(`${d}: .*is on (procfs|sysfs), not a place for images`));
        const r2 = await runCli(['restore', '-D', d]);
        expectOneLine(r2, /is on (procfs|sysfs), not a place for images/);
      }
      await waitForMoreLines(w.report, 3, w.pid);
    },
    T,
  );

  it(
    'a relative -D in a deleted current directory',
    async () => {
      const gone = tempDir('criu-ts-hostile-cwd-');
      const bin = path.join(REPO, 'apps/cli/bin/criu-ts.cjs');
      // cd into the dir, remove it, then run criu-ts there (node directly: a shell wrapper would complain first).
      const script = `cd "${gone}" && rmdir "${gone}" && exec "${process.execPath}" "${bin}" "$@"`;
      for (const args of [
        ['restore', '-D', 'images'],
        ['dump', '-t', '1', '-D', 'images'],
      ]) {
        const r = await runSh(script, args);
        expectOneLine(r, /-D images is relative and the current directory cannot be found/);
        fs.mkdirSync(gone);
      }
    },
    T,
  );

  it(
    'a non-root user: dump and restore refused at the start, nothing created, the tree runs on',
    async () => {
      const w = startWorkload('counter', ['5']);
      await waitForLine(w.report, /^3$/, { pid: w.pid });
      const base = tempDir('criu-ts-hostile-nobody-');
      fs.chmodSync(base, 0o777);
      const bin = path.join(REPO, 'apps/cli/bin/criu-ts.cjs');
      const asNobody = ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, bin];
      const dumpDir = path.join(base, 'dump');
      const d = await runProgram('setpriv', [
        ...asNobody,
        'dump',
        '-t',
        String(w.pid),
        '-D',
        dumpDir,
        '-o',
        'x.log',
      ]);
      expectOneLine(d, /dump must run as root \(euid 0\), not as uid 65534/);
      expect(fs.existsSync(dumpDir)).toBe(false);
      await waitForMoreLines(w.report, 3, w.pid);
      const r = await runProgram('setpriv', [...asNobody, 'restore', '-D', pristine, '-d', '-o', 'y.log']);
      expectOneLine(r, /restore must run as root \(euid 0\), not as uid 65534/);
      expect(fs.existsSync(path.join(pristine, 'y.log'))).toBe(false);
      expect(restoreStubs()).toEqual([]);
      expect(procState(pid)).toBe('gone');
    },
    T,
  );
});

function runSh(script: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return runProgram('/bin/sh', ['-c', script, 'sh', ...args]);
}

function runProgram(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    import('node:child_process').then(({ spawn }) => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: '/' });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? 128, stderr }));
    }, reject);
  });
}
