// The progress line of a long dump or restore (src/criu/progress.ts): shown on a terminal only (run
// here under a pseudo-terminal with util-linux's `script`), with the step and the pages written of the
// pages to write; gone at the end, so that what stays on the screen is what a run without a terminal
// prints; nothing at -v0, nothing when stderr is no terminal. CRIU_TS_PROGRESS_AFTER_MS=0 shows the
// line from the start, so that a dump of any size shows it (the 1 s delay is a matter of time, which
// tests do not assert). And --display-stats: CRIU's lines, compared with CRIU 4.2's when it is built.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import type { CriuLog as CliLog } from '@criu-ts/core';
import { ImageDir, type StatsEntry } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { progressDisplay } from '../src/criu/progress.js';
import {
  buildWorkloads,
  CRIU_TS,
  cleanup,
  dumpAndKill,
  procState,
  runCli,
  startInShellSession,
  startPythonCounter,
  startWorkload,
  tempDir,
  track,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const SCRIPT = '/usr/bin/script';
const CRIU = process.env.CRIU_BIN ?? '/tmp/criu-zdtm-main/criu/criu';

/** `criu-ts ARGS` on a pseudo-terminal: its exit code and every byte it wrote there. */
function onTerminal(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; raw: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  // 200 columns: the line is cut to the terminal's width (80 when a pty says 0).
  const line = `stty cols 200 rows 50; exec ${[CRIU_TS, ...args].map(quote).join(' ')}`;
  return new Promise((resolve, reject) => {
    // -e: script exits with the command's status; -f: flushed as written; the log goes nowhere else.
    const child = spawn(SCRIPT, ['-qfec', line, '/dev/null'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let raw = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      raw += d;
    });
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, raw }));
  });
}

/**
 * What stays on the screen after `raw`: a terminal of the sequences criu-ts and cli-progress write
 * (CR, LF, ESC[nG, ESC[nK, ESC 7 / ESC 8). Any other sequence fails the test: none is expected.
 */
function screen(raw: string): string[] {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  let saved = { row: 0, col: 0 };
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      lines[row] ??= [];
    } else if (ch === '\x1b') {
      const rest = raw.slice(i + 1);
      if (rest[0] === '7') {
        saved = { row, col };
        i += 1;
        continue;
      }
      if (rest[0] === '8') {
        ({ row, col } = saved);
        i += 1;
        continue;
      }
      const m = /^\[(\d*)([GK])/.exec(rest);
      if (!m) throw new Error(`unexpected escape sequence ${JSON.stringify(rest.slice(0, 8))}`);
      const n = m[1] === '' ? undefined : Number(m[1]);
      const cur = lines[row]!;
      if (m[2] === 'G') col = (n ?? 1) - 1;
      else if (n === 2) cur.length = 0;
      else if ((n ?? 0) === 0) cur.length = Math.min(cur.length, col);
      else cur.splice(0, col, ...' '.repeat(col));
      i += m[0].length;
    } else {
      const cur = lines[row]!;
      while (cur.length < col) cur.push(' ');
      cur[col++] = ch;
    }
  }
  return lines.map((l) => l.join('').trimEnd()).filter((l, i, all) => l !== '' || i < all.length - 1);
}

/** The lines cli-progress drew (each redraw starts at column 1). */
const drawn = (raw: string) =>
  raw
    .split('\x1b[1G')
    .map((s) => s.replace(/\x1b\[0K.*$/s, ''))
    .filter((s) => /\[[=-]+\]/.test(s));

const dumpStats = (dir: string) => ImageDir.open(dir).one<StatsEntry>('stats-%s', 'dump').dump!;
const newImagesDir = () => path.join(tempDir('criu-ts-progress-'), 'images');
const SHOW_NOW = { CRIU_TS_PROGRESS_AFTER_MS: '0' };

async function memhog(mib: number) {
  const w = startWorkload('memhog', [String(mib)]);
  await waitForLine(w.report, /^SUM /, { pid: w.pid });
  return w;
}

describe.skipIf(!fs.existsSync(SCRIPT))('the progress line on a terminal', () => {
  it('a dump shows its step and pages written of pages to write, then clears the line', async () => {
    const w = await memhog(64);
    const dir = newImagesDir();
    const r = await onTerminal(['dump', '-t', String(w.pid), '-D', dir, '-R', '--display-stats'], SHOW_NOW);
    expect(r.code, r.raw).toBe(0);
    const lines = drawn(r.raw);
    const written = Number(dumpStats(dir).pages_written);
    expect(lines.some((l) => /^writing memory \[[=-]+\] \d+% \| 0\/1 tasks, \d+\/\d+ pages$/.test(l))).toBe(
      true,
    );
    // The last one drawn says all of them, as stats-dump counts them.
    expect(lines.at(-1)).toMatch(
      new RegExp(`^writing images .* \\| 1/1 tasks, ${written}/${written} pages$`),
    );
    // What stays: the stats, as without a terminal (the line was cleared before them).
    const left = screen(r.raw);
    expect(left[0]).toBe('Displaying dump stats:');
    expect(left.slice(1).map((l) => l.split(':')[0])).toEqual(DUMP_STATS_NAMES);
  });

  it('a restore shows filling memory with pages filled of pages to fill, then clears the line', async () => {
    const w = await memhog(64);
    const dir = await dumpAndKill(w.pid);
    const r = await onTerminal(['restore', '-D', dir, '-d'], SHOW_NOW);
    for (const e of ImageDir.open(dir).pstree()) track(e.pid);
    expect(r.code, r.raw).toBe(0);
    const lines = drawn(r.raw);
    expect(lines.some((l) => /^filling memory \[[=-]+\] \d+% \| 0\/1 tasks, \d+\/\d+ pages$/.test(l))).toBe(
      true,
    );
    // The last one: every page of the images done (filled, or the vDSO's, which the kernel maps).
    expect(lines.at(-1)).toMatch(/^resuming \[=+\] 100% \| 1\/1 tasks, (\d+)\/\1 pages$/);
    expect(screen(r.raw)).toEqual([]);
    expect(procState(w.pid)).not.toBe('gone');
  });

  it('a restore with an inet socket counts it among the connections', async () => {
    const w = await startPythonCounter(
      'import socket\nls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen()',
    );
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid, { extra: ['--shell-job'] });
    const r = await onTerminal(['restore', '-D', dir, '-d', '--shell-job'], SHOW_NOW);
    for (const e of ImageDir.open(dir).pstree()) track(e.pid);
    expect(r.code, r.raw).toBe(0);
    const lines = drawn(r.raw);
    expect(
      lines.some((l) => /^connections \[.* \| 0\/1 tasks, 0\/\d+ pages, 0\/1 connections$/.test(l)),
    ).toBe(true);
    expect(lines.at(-1)).toMatch(/, (\d+)\/\1 pages, 1\/1 connections$/);
    expect(screen(r.raw)).toEqual([]);
  });

  it('-v0: nothing at all', async () => {
    const w = await memhog(16);
    const r = await onTerminal(['dump', '-t', String(w.pid), '-D', newImagesDir(), '-R', '-v0'], SHOW_NOW);
    expect(r).toEqual({ code: 0, raw: '' });
  });

  it('before the delay: nothing (a short command never shows a line)', async () => {
    const w = await memhog(16);
    const r = await onTerminal(['dump', '-t', String(w.pid), '-D', newImagesDir(), '-R'], {
      CRIU_TS_PROGRESS_AFTER_MS: '3600000',
    });
    expect(r).toEqual({ code: 0, raw: '' });
  });

  it('-v4 -o: the line shows, the log file has none of it', async () => {
    const w = await memhog(16);
    const dir = newImagesDir();
    const r = await onTerminal(
      ['dump', '-t', String(w.pid), '-D', dir, '-R', '-v4', '-o', 'dump.log'],
      SHOW_NOW,
    );
    expect(r.code, r.raw).toBe(0);
    expect(drawn(r.raw).length).toBeGreaterThan(0);
    expect(screen(r.raw)).toEqual([]);
    const log = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
    expect(log).toMatch(/Dumping finished successfully/);
    expect(log).not.toMatch(/\x1b|\[[=-]{4,}\]/);
  });

  it('-v4 with the log on the terminal: no line between its messages', async () => {
    const w = await memhog(16);
    const r = await onTerminal(['dump', '-t', String(w.pid), '-D', newImagesDir(), '-R', '-v4'], SHOW_NOW);
    expect(r.code, r.raw).toBe(0);
    expect(r.raw).not.toMatch(/\x1b/);
    expect(r.raw).toMatch(/Dumping finished successfully/);
  });

  it('a failed dump: the line goes, and the error reads as without a terminal', async () => {
    const w = await startInShellSession('memhog', ['16']);
    await waitForLine(w.report, /^SUM /, { pid: w.pid });
    const args = ['dump', '-t', String(w.pid), '-D', newImagesDir()];
    const plain = await runCli(args);
    expect(plain.code).toBe(1);
    const r = await onTerminal(args, SHOW_NOW);
    expect(r.code).toBe(1);
    expect(drawn(r.raw)[0]).toMatch(/^freezing \[/); // it was shown
    expect(screen(r.raw)).toEqual(plain.stderr.trimEnd().split('\n'));
    expect(procState(w.pid)).not.toBe('gone'); // left running, as without a terminal
  });
});

/** A terminal for progressDisplay: every byte written, in order. */
function fakeTerminal(): NodeJS.WriteStream & { raw: string } {
  const t = {
    raw: '',
    isTTY: true,
    columns: 200,
    write(s: string) {
      t.raw += s;
      return true;
    },
  };
  return t as unknown as NodeJS.WriteStream & { raw: string };
}

/** A CliLog whose lines go to the same terminal. */
function logOn(tty: { write(s: string): boolean }, toFile = false): CliLog {
  const line = (what: string) => (m: string) => {
    tty.write(`${what}: ${m}\n`);
  };
  const log: CliLog = {
    error: line('Error'),
    warn: line('Warn'),
    info: line('Info'),
    debug: line('Debug'),
    child: () => log,
    toFile,
    fd: toFile ? -1 : 2,
    flush: () => {},
  };
  return log;
}

describe('progressDisplay (in this process, on a terminal of its own)', () => {
  it('is made only for a terminal, above -v0, and when the log does not go to the terminal line by line', () => {
    const tty = fakeTerminal();
    const pipe = { ...tty, isTTY: false } as unknown as NodeJS.WriteStream;
    expect(progressDisplay({ verbosity: 2 }, { toFile: false }, tty)).toBeDefined();
    expect(progressDisplay({ verbosity: 4 }, { toFile: true }, tty)).toBeDefined();
    expect(progressDisplay({ verbosity: 2 }, { toFile: false }, pipe)).toBeUndefined();
    expect(progressDisplay({ verbosity: 0 }, { toFile: true }, tty)).toBeUndefined();
    expect(progressDisplay({ verbosity: 3 }, { toFile: false }, tty)).toBeUndefined();
    for (const d of [progressDisplay({ verbosity: 2 }, { toFile: false }, tty)]) d?.end();
  });

  it('a warning while the line shows: the line goes first, the warning stays, the line comes back below', () => {
    const before = process.env.CRIU_TS_PROGRESS_AFTER_MS;
    process.env.CRIU_TS_PROGRESS_AFTER_MS = '0';
    try {
      const tty = fakeTerminal();
      const d = progressDisplay({ verbosity: 2 }, { toFile: false }, tty)!;
      const log = d.wrapLog(logOn(tty));
      // Counts are drawn at most 10 times a second, a new step at once.
      d.count('tasks', 0, 2);
      d.phase('dumping tasks');
      expect(screen(tty.raw)).toEqual(['dumping tasks [--------------------] 0% | 0/2 tasks']);
      log.warn('something odd');
      d.count('pages', 0, 100);
      d.phase('writing memory');
      expect(screen(tty.raw)).toEqual([
        'Warn: something odd',
        'writing memory [--------------------] 0% | 0/2 tasks, 0/100 pages',
      ]);
      d.end();
      d.count('pages', 100, 100); // after the end: nothing more
      expect(screen(tty.raw)).toEqual(['Warn: something odd']);
    } finally {
      if (before === undefined) delete process.env.CRIU_TS_PROGRESS_AFTER_MS;
      else process.env.CRIU_TS_PROGRESS_AFTER_MS = before;
    }
  });

  it('before the delay nothing is drawn, and the library is not loaded', () => {
    const before = process.env.CRIU_TS_PROGRESS_AFTER_MS;
    process.env.CRIU_TS_PROGRESS_AFTER_MS = '3600000';
    try {
      const tty = fakeTerminal();
      const d = progressDisplay({ verbosity: 2 }, { toFile: false }, tty)!;
      d.phase('freezing');
      d.count('pages', 10, 100);
      d.end();
      expect(tty.raw).toBe('');
    } finally {
      if (before === undefined) delete process.env.CRIU_TS_PROGRESS_AFTER_MS;
      else process.env.CRIU_TS_PROGRESS_AFTER_MS = before;
    }
  });
});

describe('no terminal: nothing extra', () => {
  it('a dump and a restore print what they printed before, even with the line due at once', async () => {
    const before = process.env.CRIU_TS_PROGRESS_AFTER_MS;
    process.env.CRIU_TS_PROGRESS_AFTER_MS = '0';
    try {
      const w = await memhog(16);
      const dir = newImagesDir();
      expect(await runCli(['dump', '-t', String(w.pid), '-D', dir])).toMatchObject({
        code: 0,
        stdout: '',
        stderr: '',
      });
      killAndReap(w.pid); // the dump killed it: reaped here, its parent
      const r = await runCli(['restore', '-D', dir, '-d']);
      for (const e of ImageDir.open(dir).pstree()) track(e.pid);
      expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    } finally {
      if (before === undefined) delete process.env.CRIU_TS_PROGRESS_AFTER_MS;
      else process.env.CRIU_TS_PROGRESS_AFTER_MS = before;
    }
  });
});

/** CRIU 4.2's --display-stats lines (criu/stats.c), by name, in order; irmap_resolve is always set. */
const DUMP_STATS_NAMES = [
  'Freezing time',
  'Frozen time',
  'Memory dump time',
  'Memory write time',
  'IRMAP resolve time',
  'Memory pages scanned',
  'Memory pages skipped from parent',
  'Memory pages written',
  'Lazy memory pages',
];
const RESTORE_STATS_NAMES = [
  'Pages compared',
  'Pages skipped COW',
  'Pages restored',
  'Restore time',
  'Forking time',
];

/** "Name: 123 us" / "Name: 12 (0xc)" lines as shapes: numbers become N. */
const shapes = (stdout: string) =>
  stdout
    .trimEnd()
    .split('\n')
    .map((l) => l.replace(/0x[0-9a-f]+/g, '0xN').replace(/\b\d+\b/g, 'N'));

describe('--display-stats: CRIU lines', () => {
  it('dump and restore print CRIU 4.2 lines, in its order and format', async () => {
    const w = startWorkload('sleeper', ['600000']);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    const dir = newImagesDir();
    const d = await runCli(['dump', '-t', String(w.pid), '-D', dir, '--display-stats']);
    expect(d).toMatchObject({ code: 0, stderr: '' });
    expect(shapes(d.stdout)).toEqual([
      'Displaying dump stats:',
      ...DUMP_STATS_NAMES.map((n) => `${n}: ${n.endsWith('time') ? 'N us' : 'N (0xN)'}`),
    ]);
    killAndReap(w.pid); // the dump killed it: reaped here, its parent
    const r = await runCli(['restore', '-D', dir, '-d', '--display-stats']);
    for (const e of ImageDir.open(dir).pstree()) track(e.pid);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(shapes(r.stdout)).toEqual([
      'Displaying restore stats:',
      ...RESTORE_STATS_NAMES.map((n) => `${n}: ${n.endsWith('time') ? 'N us' : 'N (0xN)'}`),
    ]);
  });

  it.skipIf(!fs.existsSync(CRIU))('the same lines as CRIU 4.2 itself prints', async () => {
    const run = (bin: string, args: string[]) =>
      new Promise<{ code: number; stdout: string }>((resolve, reject) => {
        const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'ignore'] });
        let stdout = '';
        c.stdout.setEncoding('utf8').on('data', (x: string) => {
          stdout += x;
        });
        c.on('error', reject);
        c.on('close', (code) => resolve({ code: code ?? 1, stdout }));
      });
    const lines = async (bin: string) => {
      const w = startWorkload('sleeper', ['600000']);
      await waitForLine(w.report, /^READY /, { pid: w.pid });
      const dir = newImagesDir();
      fs.mkdirSync(dir, { recursive: true });
      const d = await run(bin, ['dump', '-t', String(w.pid), '-D', dir, '-o', 'dump.log', '--display-stats']);
      expect(d.code, `${bin} dump`).toBe(0);
      killAndReap(w.pid); // the dump killed it: reaped here, its parent
      const r = await run(bin, ['restore', '-D', dir, '-d', '-o', 'restore.log', '--display-stats']);
      for (const e of ImageDir.open(dir).pstree()) track(e.pid);
      expect(r.code, `${bin} restore`).toBe(0);
      return { dump: shapes(d.stdout), restore: shapes(r.stdout) };
    };
    expect(await lines(CRIU_TS)).toEqual(await lines(CRIU));
  });
});
