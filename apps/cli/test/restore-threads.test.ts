// A process of 4 threads, each with state of its own (its name, its blocked signals, a counter on its
// own stack), dumped, killed and restored by the CLI: every thread comes back with its tid and its own
// state, checked from outside (/proc/PID/task/TID and what each thread writes), and each counter goes on
// from where it was, neither reset nor taken from another thread.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, dumpAndKill, restoreDetached, spawnClean, tempDir, track, waitFor } from './helpers.js';

afterEach(() => cleanup());

// Thread i (0 is the main thread) names itself t<i>-<pid>, blocks SIGRTMIN+i, then counts on its stack,
// writing `TICK i tid n` every 20 ms.
const PROGRAM = `
import ctypes, os, signal, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
out = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
def run(i):
    libc.prctl(15, b't%d-%d' % (i, os.getpid()), 0, 0, 0)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN + i])
    tid = threading.get_native_id()
    n = 1000 * i
    while True:
        n += 1
        os.write(out, b'TICK %d %d %d\\n' % (i, tid, n))
        time.sleep(0.02)
for i in (1, 2, 3):
    threading.Thread(target=run, args=(i,), daemon=True).start()
run(0)
`;

const SIGRTMIN = 34;

function ticks(file: string): Array<{ i: number; tid: number; n: number }> {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('TICK '))
    .map((l) => {
      const [, i, tid, n] = l.split(' ').map(Number);
      return { i: i!, tid: tid!, n: n! };
    });
}

/** Per thread of /proc/PID/task: its name and blocked signal mask. */
function threadsOf(pid: number): Map<number, { comm: string; blocked: bigint }> {
  const out = new Map<number, { comm: string; blocked: bigint }>();
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${t}`;
    const status = fs.readFileSync(`${dir}/status`, 'utf8');
    const blk = /^SigBlk:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0';
    out.set(Number(t), { comm: fs.readFileSync(`${dir}/comm`, 'utf8').trim(), blocked: BigInt(`0x${blk}`) });
  }
  return out;
}

describe('criu-ts restore: threads', () => {
  it('4 threads come back with their tids, names, signal masks and counters, each its own', async () => {
    const d = tempDir('criu-ts-threads-');
    const report = path.join(d, 'report');
    const pid = spawnClean(['/usr/bin/python3', '-c', PROGRAM, report]);
    await waitFor(() => new Set(ticks(report).map((t) => t.i)).size === 4, '4 threads counting');
    const before = threadsOf(pid);
    expect(before.size).toBe(4);
    const tidOf = new Map(ticks(report).map((t) => [t.i, t.tid]));
    for (const [i, tid] of tidOf) {
      expect(before.get(tid)?.comm).toBe(`t${i}-${pid}`);
      expect((before.get(tid)!.blocked >> BigInt(SIGRTMIN + i - 1)) & 1n).toBe(1n);
    }

    const dir = await dumpAndKill(pid);
    const seen = ticks(report).length;
    const lastBefore = new Map(ticks(report).map((t) => [t.i, t.n]));
    await restoreDetached(dir);
    track(pid);
    await waitFor(() => {
      const after = ticks(report).slice(seen);
      return [0, 1, 2, 3].every((i) => after.filter((t) => t.i === i).length >= 3);
    }, 'every thread counting after the restore');

    // The same threads, each with its own name and mask, read from outside.
    const after = threadsOf(pid);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [tid, st] of before) {
      expect(after.get(tid)!.comm).toBe(st.comm);
      expect(after.get(tid)!.blocked).toBe(st.blocked);
    }
    // Each counter goes on from its own last value, in its own thread (its tid unchanged).
    const ticksAfter = ticks(report).slice(seen);
    for (const i of [0, 1, 2, 3]) {
      const mine = ticksAfter.filter((t) => t.i === i);
      expect(mine.every((t) => t.tid === tidOf.get(i))).toBe(true);
      const first = mine[0]!.n;
      expect(first).toBeGreaterThan(1000 * i);
      expect(first).toBeLessThanOrEqual(lastBefore.get(i)! + 1);
      expect(first).toBeGreaterThanOrEqual(lastBefore.get(i)!); // the dump may catch a tick in flight
      expect(mine.every((t, k) => k === 0 || t.n === mine[k - 1]!.n + 1)).toBe(true);
    }
  });
});
