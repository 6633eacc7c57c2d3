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

  it('a signal from another process during a batch of sleeps: the sleeps restart, the signal arrives later', async () => {
    const w = await memhog();
    const tree = seizeTree(w.pid);
    const p = Parasite.infect(tree, w.pid);
    const ts = Buffer.alloc(16);
    ts.writeBigInt64LE(10_000_000n, 8); // 10 ms
    const tsAddr = p.writeScratch(0, ts);
    // /bin/kill runs concurrently with the batch (about 300 ms of nanosleep in the task).
    const killer = spawn('/bin/kill', ['-USR1', String(w.pid)], { stdio: 'ignore' });
    const exited = new Promise((resolve) => killer.on('exit', resolve));
    const r = p.runBatch([
      ...Array.from({ length: 30 }, () => [SYS.nanosleep, tsAddr, 0] as const),
      [SYS.getpid],
    ]);
    expect(r.ok).toBe(true);
    expect(r.results.slice(0, 30).every((x) => x === 0n)).toBe(true);
    expect(r.results[30]).toBe(BigInt(w.pid));
    await exited; // the signal was sent (during the batch, or while the task sat stopped afterwards)
    p.cure();
    tree.release();
    await waitFor(() => readLines(w.report).filter((l) => l.startsWith('SUM')).length === 2, 'second SUM');
    expect(failLines(w.report)).toEqual([]);
  });
});
