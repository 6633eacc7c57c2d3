// Signals that arrive while code is injected: taken at their signal-delivery-stop, suppressed, and
// delivered again when the tree is released.
import { spawn } from 'node:child_process';
import { kill, raw, SI_QUEUE, SIGCONT, SIGSTOP, SIGUSR1, SYS } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Parasite, seizeTree } from '../src/index.js';
import {
  buildWorkloads,
  cleanup,
  failLines,
  procState,
  procSyscall,
  readLines,
  startWorkload,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const PYTHON = '/usr/bin/python3';

async function memhog() {
  const w = startWorkload('memhog', ['16']);
  const sum = await waitForLine(w.report, /^SUM /, { pid: w.pid });
  await waitFor(() => procSyscall(w.pid) === SYS.pause, 'pause()');
  return { ...w, sum };
}

/** rt_sigqueueinfo(pid, sig, {si_code SI_QUEUE, si_value}) from this process. */
function sigqueue(pid: number, sig: number, value: number): void {
  const info = Buffer.alloc(128);
  info.writeInt32LE(sig, 0);
  info.writeInt32LE(SI_QUEUE, 8);
  info.writeInt32LE(process.pid, 16);
  info.writeUInt32LE(0, 20);
  info.writeBigInt64LE(BigInt(value), 24);
  if (raw.syscall(SYS.rt_sigqueueinfo, pid, sig, info) !== 0)
    throw new Error(`rt_sigqueueinfo: errno ${raw.lastErrno()}`);
}

describe('signals during injection', () => {
  it('SIGUSR1 sent while seized is suppressed during the injection and delivered after release', async () => {
    const w = await memhog();
    const tree = seizeTree(w.pid);
    const p = Parasite.infect(tree, w.pid);
    kill(w.pid, SIGUSR1); // pending now; dequeued (and stopped for) as soon as the task runs our code
    expect(p.call(SYS.getpid)).toBe(BigInt(w.pid));
    expect(p.suppressedSignals.map((s) => [s.signo, s.code, s.pid])).toEqual([[SIGUSR1, 0, process.pid]]);
    expect(p.runBatch(Array.from({ length: 100 }, () => [SYS.getpid])).ok).toBe(true);
    p.cure();
    expect(readLines(w.report).filter((l) => l.startsWith('SUM'))).toHaveLength(1); // not handled yet
    tree.release();
    const lines = readLines(w.report).length;
    expect(await waitForLine(w.report, /^SUM /, { pid: w.pid, fromLine: lines - 1 })).toBe(w.sum);
    await waitFor(() => readLines(w.report).filter((l) => l.startsWith('SUM')).length === 2, 'second SUM');
    expect(failLines(w.report)).toEqual([]);
  });

  it('a sigqueue()d signal (SI_QUEUE) is queued again with its siginfo', async () => {
    const w = await memhog();
    const tree = seizeTree(w.pid);
    const p = Parasite.infect(tree, w.pid);
    sigqueue(w.pid, SIGUSR1, 4242);
    p.call(SYS.getpid);
    const [si] = p.suppressedSignals;
    expect(si?.signo).toBe(SIGUSR1);
    expect(si?.code).toBe(SI_QUEUE);
    expect(si?.value).toBe(4242n);
    p.cure();
    tree.release();
    await waitFor(() => readLines(w.report).filter((l) => l.startsWith('SUM')).length === 2, 'second SUM');
    expect(readLines(w.report).filter((l) => l.startsWith('SUM'))).toEqual([w.sum, w.sum]);
  });

  it('SIGSTOP during an injection: suppressed, then the task stops after release; SIGCONT resumes it', async () => {
    const w = await memhog();
    const tree = seizeTree(w.pid);
    const p = Parasite.infect(tree, w.pid);
    kill(w.pid, SIGSTOP);
    expect(p.call(SYS.getpid)).toBe(BigInt(w.pid));
    expect(p.suppressedSignals.map((s) => s.signo)).toEqual([SIGSTOP]);
    p.cure();
    tree.release();
    await waitFor(
      () => procState(w.pid) === 'T',
      () => `state T (is ${procState(w.pid)})`,
    );
    kill(w.pid, SIGCONT);
    await waitFor(() => procState(w.pid) === 'S' && procSyscall(w.pid) === SYS.pause, 'pause() again');
    kill(w.pid, SIGUSR1);
    await waitFor(() => readLines(w.report).filter((l) => l.startsWith('SUM')).length === 2, 'second SUM');
    expect(failLines(w.report)).toEqual([]);
  });

  it('a signal from another process while the batch sleeps: the sleep restarts, whole; the signal arrives later', async () => {
    const w = await memhog();
    const tree = seizeTree(w.pid);
    const p = Parasite.infect(tree, w.pid);
    const ts = Buffer.alloc(16);
    ts.writeBigInt64LE(1n, 0); // 1 s
    const tsAddr = p.writeScratch(0, ts);
    // The killer sends SIGUSR1 only once it sees the task inside the batch's nanosleep (memhog itself
    // sits in pause()), and says when (CLOCK_MONOTONIC, as process.hrtime): so the signal interrupts
    // that very sleep, whatever the scheduling.
    const killer = spawn(
      PYTHON,
      [
        '-c',
        `import os, signal, sys, time
pid = int(sys.argv[1])
print('READY', flush=True)
deadline = time.monotonic() + 30
while open('/proc/%d/syscall' % pid).read().split(' ')[0] != '${SYS.nanosleep}':
    if time.monotonic() > deadline: sys.exit(2)
    time.sleep(0.0005)
t = time.monotonic_ns()
os.kill(pid, signal.SIGUSR1)
print('SENT', t, flush=True)`,
        String(w.pid),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    killer.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const exited = new Promise<number | null>((resolve) => killer.on('exit', resolve));
    await waitFor(() => out.startsWith('READY\n'), 'the killer to start');
    const start = process.hrtime.bigint();
    const r = p.runBatch([[SYS.nanosleep, tsAddr, 0], [SYS.getpid]]);
    const end = process.hrtime.bigint();
    expect(await exited).toBe(0);
    const sent = BigInt(/^SENT (\d+)$/m.exec(out)?.[1] ?? '0');
    // The signal came while the batch ran, and the task took it (suppressed, for release).
    expect(sent > start && sent < end, `sent ${sent} in ${start}..${end}`).toBe(true);
    expect(p.suppressedSignals.map((s) => [s.signo, s.pid])).toEqual([[SIGUSR1, killer.pid]]);
    // The sleep was not cut short: nanosleep returned 0 (not -EINTR) after its whole second.
    expect(r.ok).toBe(true);
    expect(r.results).toEqual([0n, BigInt(w.pid)]);
    expect(end - start).toBeGreaterThanOrEqual(1_000_000_000n);
    p.cure();
    tree.release();
    await waitFor(() => readLines(w.report).filter((l) => l.startsWith('SUM')).length === 2, 'second SUM');
    expect(failLines(w.report)).toEqual([]);
  });
});
