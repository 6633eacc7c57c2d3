// Pipes and FIFOs with bytes in flight, dumped, killed and restored: a shell pipeline keeps moving its
// numbers without losing or doubling one; two tasks with full pipes both ways, a resized pipe, a
// non-blocking end and a FIFO read every byte they were owed after restore (or after a dump -R).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ImageDir } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  cliDump,
  cliKillAndRestore,
  critDecodeAll,
  entries,
  haveCrit,
  num,
  PYTHON,
  procState,
  readLines,
  spawnClean,
  tempDir,
  track,
  treeOf,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

// producer | filter | consumer: bash counts, tr turns digits into letters, awk turns them back and
// checks that every number is the previous one plus one, reporting every 20000th.
const PIPELINE = [
  'i=0; while :; do i=$((i+1)); echo $i; done',
  'tr 0-9 a-j',
  `awk '{ n = $1; for (d = 0; d < 10; d++) gsub(sprintf("%c", 97 + d), d, n);
     if (n != prev + 1) { print "GAP", prev, n; fflush(); exit 1 }
     prev = n; if (prev % 20000 == 0) { print prev; fflush() } }'`,
].join(' | ');

// Two tasks with unread bytes in both directions (one pipe resized to 1 MiB, one end non-blocking) and
// a FIFO, all waiting for SIGUSR1 before they read and check what they are owed.
const OWED = `
import fcntl, os, signal, sys
out = open(sys.argv[1], 'a', buffering=1)
fifo = sys.argv[2]
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032
def pattern(tag, n): return (tag * (n // len(tag) + 1))[:n]
A, B, F = pattern(b'parent->child ', 300000), pattern(b'child->parent ', 40000), pattern(b'via fifo ', 20000)
def read_exactly(fd, n):
    got = b''
    while len(got) < n:
        chunk = os.read(fd, n - len(got))
        if not chunk: break
        got += chunk
    return got
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
a_r, a_w = os.pipe()
b_r, b_w = os.pipe()
fcntl.fcntl(a_w, F_SETPIPE_SZ, 1 << 20)
os.set_blocking(b_r, False)
fw = os.open(fifo, os.O_RDWR)
if os.fork() == 0:
    os.close(a_w); os.close(b_r)
    fr = os.open(fifo, os.O_RDONLY)
    os.write(b_w, B)
    out.write('CHILD READY %d\\n' % os.getpid())
    signal.sigwait([signal.SIGUSR1])
    ok = read_exactly(a_r, len(A)) == A and read_exactly(fr, len(F)) == F
    out.write('CHILD %s size=%d\\n' % ('OK' if ok else 'FAIL', fcntl.fcntl(a_r, F_GETPIPE_SZ)))
    sys.exit(0)
os.close(a_r); os.close(b_w)
os.write(a_w, A)
os.write(fw, F)
out.write('PARENT READY\\n')
signal.sigwait([signal.SIGUSR1])
got = b''
while len(got) < len(B):
    try: got += os.read(b_r, len(B) - len(got))
    except BlockingIOError: signal.sigtimedwait([], 0.01)
out.write('PARENT %s nonblock=%s\\n' % ('OK' if got == B else 'FAIL', not os.get_blocking(b_r)))
os.wait()
`;

async function startOwed(): Promise<{ parent: number; child: number; report: string }> {
  const d = tempDir('criu-ts-owed-');
  const report = path.join(d, 'report');
  const fifo = path.join(d, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const parent = spawnClean([PYTHON, '-c', OWED, report, fifo], { stdout: '/dev/null', stderr: '/dev/null' });
  const child = Number((await waitForLine(report, /^CHILD READY /, { pid: parent })).split(' ')[2]);
  track(child);
  await waitForLine(report, /^PARENT READY$/, { pid: parent });
  // Both asleep in sigwait (rt_sigtimedwait), their bytes in the pipes.
  await waitFor(() => procState(parent) === 'S' && procState(child) === 'S', 'both waiting');
  return { parent, child, report };
}

async function expectOwedPaid(w: { parent: number; child: number; report: string }): Promise<void> {
  process.kill(w.parent, 'SIGUSR1');
  process.kill(w.child, 'SIGUSR1');
  await waitForLine(w.report, /^CHILD (OK|FAIL)/, { pid: w.parent });
  await waitForLine(w.report, /^PARENT (OK|FAIL)/, { pid: w.parent, failOn: /^$/ });
  const lines = readLines(w.report);
  expect(lines).toContain('CHILD OK size=1048576');
  expect(lines).toContain('PARENT OK nonblock=True');
}

describe('criu-ts restore: pipes and FIFOs', () => {
  it('a three-stage shell pipeline moving numbers: none lost or doubled across dump and restore', async () => {
    const d = tempDir('criu-ts-pipeline-');
    const out = path.join(d, 'out');
    const sh = spawnClean(['/bin/bash', '-c', PIPELINE], { stdout: out, stderr: out });
    await waitFor(() => fs.existsSync(out) && readLines(out).length >= 3, 'the pipeline moving');
    await waitFor(() => treeOf(sh).length >= 4, 'all three stages');
    const dir = await cliDump(sh);
    const before = readLines(out).length;
    await cliKillAndRestore(dir);
    await waitFor(() => readLines(out).length >= before + 3, 'the pipeline moving again');
    const lines = readLines(out);
    expect(lines.filter((l) => l.startsWith('GAP'))).toEqual([]);
    expect(lines.map(Number).every((v, i) => v === (i + 1) * 20000)).toBe(true);
  });

  it('bytes owed both ways, a 1 MiB pipe, a non-blocking end and a FIFO: all paid after restore', async () => {
    const w = await startOwed();
    const dir = await cliDump(w.parent);
    const img = ImageDir.open(dir);
    const pipes = img.messages<{ pipe_id: number; bytes: number; size?: number }>('pipes-data');
    expect(pipes.map((p) => [p.bytes, p.size]).sort()).toEqual([
      [300000, 1048576],
      [40000, 65536],
    ]);
    expect(img.messages<{ bytes: number }>('fifo-data').map((p) => p.bytes)).toEqual([20000]);
    await cliKillAndRestore(dir);
    await expectOwedPaid(w);
  });

  it('dump -R takes nothing out of the pipes', async () => {
    const w = await startOwed();
    await cliDump(w.parent, ['-R']);
    await expectOwedPaid(w);
  });

  it.skipIf(!haveCrit)(
    'crit decodes pipes-data, fifo-data and the pipe and FIFO entries of files.img',
    async () => {
      const w = await startOwed();
      const dir = await cliDump(w.parent, ['-R']);
      const { decoded, failures } = critDecodeAll(dir, ['files.img', 'pipes-data.img', 'fifo-data.img']);
      expect(failures).toEqual([]);
      const files = entries(decoded.get('files.img'));
      const pipeIds = new Set(entries(decoded.get('pipes-data.img')).map((e) => num(e.pipe_id)));
      const pipeEntries = files.filter((f) => f.type === 'PIPE');
      expect(pipeEntries.length).toBeGreaterThanOrEqual(4);
      for (const id of pipeIds)
        expect(pipeEntries.some((f) => num((f.pipe as { pipe_id: number }).pipe_id) === id)).toBe(true);
      expect(files.filter((f) => f.type === 'FIFO').length).toBe(2);
    },
  );
});
