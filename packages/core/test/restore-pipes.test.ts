// Pipes and FIFOs through dump -> kill -> restore, with bytes in flight: a three-stage shell pipeline,
// a pipe each way between a parent and its child (O_NONBLOCK on one end, a 1 MiB pipe), a FIFO
// between two tasks. Checked from outside: what the programs report they read (every byte, once), the
// pipes seen through /proc after the restore (size, queued bytes, flags), and crit's reading of
// pipes-data.img, fifo-data.img and files.img. A dump with -R must leave every byte in its pipe.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  critDecodeAll,
  entries,
  failLines,
  haveCrit,
  num,
  obj,
  PYTHON,
  procState,
  readLines,
  runCli,
  startCommand,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';
import {
  CONSUMER_PY,
  FIFO_PY,
  FILTER_PY,
  fdFlags,
  fields,
  inodeOf,
  PRODUCER_PY,
  pipeFromOutside,
  TWO_WAY_PY,
  WRITER_CHILD_PY,
} from './pipes-helpers.js';

afterEach(() => cleanup());

const O_ACCMODE = 0o3;
const O_WRONLY = 0o1;
const O_NONBLOCK = 0o4000;
const MiB = 1 << 20;
const DEFAULT_PIPE_SIZE = 65536;

/** `criu-ts dump` of the tree of `pid` (extra options: -R...); expects success; the images dir. */
async function dumpTree(pid: number, extra: string[] = []): Promise<string> {
  const dir = path.join(tempDir('criu-ts-pipes-'), 'images');
  const r = await runCli(['dump', '-t', String(pid), '-D', dir, ...extra]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return dir;
}

/** Dump (the tree is killed), then reap every pid so that all are free for the restore. */
async function dumpAndKill(pid: number, pids: number[]): Promise<string> {
  const dir = await dumpTree(pid);
  for (const p of pids) killAndReap(p);
  for (const p of pids) expect(procState(p)).toBe('gone');
  return dir;
}

async function restoreDetached(dir: string): Promise<void> {
  const r = await runCli(['restore', '-D', dir, '-d']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

/** The children of `pid` (its main thread's). */
function childrenOf(pid: number): number[] {
  const text = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text ? text.split(' ').map(Number) : [];
}

/** The line of the report that starts with `prefix` (the first one). */
const lineOf = (report: string, prefix: string) => readLines(report).find((l) => l.startsWith(prefix))!;

/** A python3 program started in its own session, with its report and "go" file paths. */
async function startPython(script: string, args: (dir: string) => string[] = () => []) {
  const dir = tempDir('criu-ts-pipes-run-');
  const report = path.join(dir, 'report');
  const go = path.join(dir, 'go');
  const pid = await startCommand([PYTHON, '-c', script, report, ...args(dir)]);
  return { pid, report, go, dir };
}

/** The two-way program, once both sides wrote their bytes: pids and fd numbers. */
async function startTwoWay() {
  const run = await startPython(TWO_WAY_PY, (dir) => [path.join(dir, 'go')]);
  const parentLine = await waitForLine(run.report, /^PARENT \d+ /, { pid: run.pid });
  const childLine = await waitForLine(run.report, /^CHILD \d+ /, { pid: run.pid });
  const child = Number(childLine.split(' ')[1]);
  track(child);
  expect(fields(parentLine).wrote).toBe(300000);
  return { ...run, child, parentFds: fields(parentLine), childFds: fields(childLine) };
}

describe('pipes and FIFOs with bytes in flight', () => {
  it('producer | filter | consumer under /bin/sh -c: restored with both pipes full, nothing lost or doubled', async () => {
    const report = path.join(tempDir('criu-ts-pipes-run-'), 'report');
    const line = `${PYTHON} -c "$1" | ${PYTHON} -c "$2" | ${PYTHON} -c "$3" "$4"`;
    const sh = await startCommand(['/bin/sh', '-c', line, 'sh', PRODUCER_PY, FILTER_PY, CONSUMER_PY, report]);
    await waitForLine(report, /^OK 20000$/, { pid: sh, timeoutMs: 60_000 });
    const kids = childrenOf(sh);
    expect(kids).toHaveLength(3);
    track(...kids);
    const dir = await dumpAndKill(sh, [sh, ...kids]);
    const okLines = readLines(report).filter((l) => l.startsWith('OK '));
    const lastOk = Number(okLines.at(-1)!.split(' ')[1]);

    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['pipes-data.img', 'files.img']);
      expect(failures).toEqual([]);
      const data = entries(decoded.get('pipes-data.img'));
      expect(data).toHaveLength(2);
      for (const d of data) {
        expect(num(d.bytes)).toBeGreaterThan(0);
        expect(num(d.size)).toBe(DEFAULT_PIPE_SIZE);
      }
      // Each pipe: one read end and one write end in files.img.
      const pipes = entries(decoded.get('files.img')).filter((e) => e.type === 'PIPE');
      for (const d of data) {
        const ends = pipes.filter((e) => num(obj(e.pipe).pipe_id) === num(d.pipe_id));
        expect(ends.map((e) => num(obj(e.pipe).flags) & O_ACCMODE).sort()).toEqual([0, 1]);
      }
    }

    await restoreDetached(dir);
    // The consumer goes on through everything that was in the pipes and far beyond it, checking each
    // line; a lost or doubled line would be a FAIL.
    await waitForLine(report, new RegExp(`^OK ${lastOk + 60000}$`), { pid: sh, timeoutMs: 90_000 });
    expect(failLines(report)).toEqual([]);
    expect(childrenOf(sh).sort()).toEqual([...kids].sort());
  });

  it('a pipe each way between parent and child: bytes, O_NONBLOCK and the 1 MiB size come back; EOF works', async () => {
    const t = await startTwoWay();
    const { p2c_w, c2p_r } = t.parentFds as { p2c_w: number; c2p_r: number };
    const { p2c_r, c2p_w } = t.childFds as { p2c_r: number; c2p_w: number };
    const before = {
      p2c: inodeOf(t.pid, p2c_w),
      c2p: inodeOf(t.pid, c2p_r),
    };
    expect(pipeFromOutside(t.child, p2c_r)).toEqual({ size: MiB, queued: 300000 });
    const dir = await dumpAndKill(t.pid, [t.pid, t.child]);

    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['pipes-data.img', 'files.img']);
      expect(failures).toEqual([]);
      const data = entries(decoded.get('pipes-data.img')).map((d) => ({
        pipe_id: num(d.pipe_id),
        bytes: num(d.bytes),
        size: num(d.size),
      }));
      expect(data.sort((a, b) => a.bytes - b.bytes)).toEqual([
        { pipe_id: before.c2p, bytes: 5000, size: DEFAULT_PIPE_SIZE },
        { pipe_id: before.p2c, bytes: 300000, size: MiB },
      ]);
      const pipes = entries(decoded.get('files.img'))
        .filter((e) => e.type === 'PIPE')
        .map((e) => ({ pipe_id: num(obj(e.pipe).pipe_id), flags: num(obj(e.pipe).flags) }));
      expect(pipes).toHaveLength(4);
      expect(pipes).toEqual(
        expect.arrayContaining([
          { pipe_id: before.p2c, flags: O_WRONLY },
          { pipe_id: before.p2c, flags: 0 },
          { pipe_id: before.c2p, flags: O_NONBLOCK },
          { pipe_id: before.c2p, flags: O_WRONLY },
        ]),
      );
    }

    await restoreDetached(dir);
    // Seen from outside before anyone reads: same pipes on both sides, sizes, bytes, flags.
    expect(fs.readlinkSync(`/proc/${t.pid}/fd/${p2c_w}`)).toBe(
      fs.readlinkSync(`/proc/${t.child}/fd/${p2c_r}`),
    );
    expect(fs.readlinkSync(`/proc/${t.pid}/fd/${c2p_r}`)).toBe(
      fs.readlinkSync(`/proc/${t.child}/fd/${c2p_w}`),
    );
    expect(pipeFromOutside(t.child, p2c_r)).toEqual({ size: MiB, queued: 300000 });
    expect(pipeFromOutside(t.pid, c2p_r)).toEqual({ size: DEFAULT_PIPE_SIZE, queued: 5000 });
    expect(fdFlags(t.pid, c2p_r) & (O_ACCMODE | O_NONBLOCK)).toBe(O_NONBLOCK);
    expect(fdFlags(t.pid, p2c_w) & (O_ACCMODE | O_NONBLOCK)).toBe(O_WRONLY);
    expect(fdFlags(t.child, p2c_r) & (O_ACCMODE | O_NONBLOCK)).toBe(0);
    expect(fdFlags(t.child, c2p_w) & (O_ACCMODE | O_NONBLOCK)).toBe(O_WRONLY);

    fs.writeFileSync(t.go, '');
    await waitForLine(t.report, /^CHILD EXIT /, { pid: t.pid });
    expect(lineOf(t.report, 'CHILD GOT')).toBe('CHILD GOT 300000 same');
    expect(lineOf(t.report, 'PARENT GOT')).toBe(`PARENT GOT 5000 same nonblock=True size=${MiB}`);
    expect(lineOf(t.report, 'CHILD EXIT')).toBe('CHILD EXIT 0');
  });

  it('a FIFO between two tasks with unread bytes: fifo-data.img, then the reader gets them all and EOF', async () => {
    const run = await startPython(FIFO_PY, (dir) => {
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      return [fifo, path.join(dir, 'go')];
    });
    const fifo = path.join(run.dir, 'fifo');
    const parentLine = await waitForLine(run.report, /^PARENT \d+ /, { pid: run.pid });
    const childLine = await waitForLine(run.report, /^CHILD \d+ /, { pid: run.pid });
    const child = Number(childLine.split(' ')[1]);
    track(child);
    const r = fields(parentLine).r as number;
    const w = fields(childLine).w as number;
    const ino = inodeOf(run.pid, r);
    const dir = await dumpAndKill(run.pid, [run.pid, child]);

    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['fifo-data.img', 'files.img']);
      expect(failures).toEqual([]);
      const data = entries(decoded.get('fifo-data.img'));
      expect(data.map((d) => [num(d.pipe_id), num(d.bytes), num(d.size)])).toEqual([
        [ino, 1000, DEFAULT_PIPE_SIZE],
      ]);
      const files = entries(decoded.get('files.img'));
      const fifos = files.filter((e) => e.type === 'FIFO').map((e) => obj(e.fifo));
      expect(fifos).toHaveLength(2);
      for (const f of fifos) {
        expect(num(f.pipe_id)).toBe(ino);
        const reg = files.find((e) => num(e.id) === num(f.regf_id));
        expect(reg?.type).toBe('REG');
        expect(obj(reg!.reg).name).toBe(fifo);
      }
    }

    await restoreDetached(dir);
    expect(fs.readlinkSync(`/proc/${run.pid}/fd/${r}`)).toBe(fifo);
    expect(fs.readlinkSync(`/proc/${child}/fd/${w}`)).toBe(fifo);
    expect(pipeFromOutside(run.pid, r).queued).toBe(1000);
    fs.writeFileSync(path.join(run.dir, 'go'), '');
    await waitForLine(run.report, /^CHILD EXIT /, { pid: run.pid });
    expect(lineOf(run.report, 'PARENT GOT')).toBe('PARENT GOT 1004 same');
    expect(lineOf(run.report, 'CHILD EXIT')).toBe('CHILD EXIT 0');
  });

  it('a missing FIFO is refused at restore, naming its path; nothing is left running', async () => {
    const run = await startPython(FIFO_PY, (dir) => {
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      return [fifo, path.join(dir, 'go')];
    });
    await waitForLine(run.report, /^PARENT \d+ /, { pid: run.pid });
    const childLine = await waitForLine(run.report, /^CHILD \d+ /, { pid: run.pid });
    const child = Number(childLine.split(' ')[1]);
    track(child);
    const dir = await dumpAndKill(run.pid, [run.pid, child]);
    const fifo = path.join(run.dir, 'fifo');
    fs.unlinkSync(fifo);
    const r = await runCli(['restore', '-D', dir, '-d']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(fifo);
    expect(r.stderr).toMatch(/missing/);
    expect(procState(run.pid)).toBe('gone');
    expect(procState(child)).toBe('gone');
  });

  it('dump -R takes no byte from the pipes: both sides still read everything', async () => {
    const t = await startTwoWay();
    const dir = await dumpTree(t.pid, ['-R']);
    await waitFor(() => procState(t.pid) === 'S' && procState(t.child) === 'S', 'both asleep again');
    expect(pipeFromOutside(t.child, t.childFds.p2c_r)).toEqual({ size: MiB, queued: 300000 });
    expect(pipeFromOutside(t.pid, t.parentFds.c2p_r)).toEqual({ size: DEFAULT_PIPE_SIZE, queued: 5000 });
    expect(fs.statSync(path.join(dir, 'pipes-data.img')).size).toBeGreaterThan(305000);
    fs.writeFileSync(t.go, '');
    await waitForLine(t.report, /^CHILD EXIT /, { pid: t.pid });
    expect(lineOf(t.report, 'CHILD GOT')).toBe('CHILD GOT 300000 same');
    expect(lineOf(t.report, 'PARENT GOT')).toMatch(/^PARENT GOT 5000 same /);
  });

  it('dump -R of a child holding only the write end (reader outside the tree): bytes copied, none taken', async () => {
    const run = await startPython(WRITER_CHILD_PY, (dir) => [path.join(dir, 'go'), '3000']);
    const childLine = await waitForLine(run.report, /^CHILD \d+ /, { pid: run.pid });
    const child = Number(childLine.split(' ')[1]);
    track(child);
    const w = fields(childLine).w as number;
    const ino = inodeOf(child, w);
    // The child is in its parent's session: --shell-job.
    const dir = await dumpTree(child, ['-R', '--shell-job']);
    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['pipes-data.img', 'files.img']);
      expect(failures).toEqual([]);
      const data = entries(decoded.get('pipes-data.img'));
      expect(data.map((d) => [num(d.pipe_id), num(d.bytes)])).toEqual([[ino, 3000]]);
      const pipes = entries(decoded.get('files.img')).filter((e) => e.type === 'PIPE');
      expect(pipes.map((e) => [num(obj(e.pipe).pipe_id), num(obj(e.pipe).flags)])).toEqual([[ino, O_WRONLY]]);
    }
    fs.writeFileSync(run.go, '');
    await waitForLine(run.report, /^PARENT GOT /, { pid: run.pid });
    expect(lineOf(run.report, 'PARENT GOT')).toBe('PARENT GOT 3000 same');
  });
});
