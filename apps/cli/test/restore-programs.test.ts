// Programs that are not ours (Debian's bash, perl, gcc, sort, java), each dumped, killed and restored
// in the middle of its work; what they produce afterwards must be what they would have produced
// without the interruption, checked from outside (their output, a binary gcc built, a sorted file).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  dumpAndKill,
  procState,
  restoreDetached,
  spawnClean,
  tempDir,
  track,
  treeOf,
  waitFor,
} from './helpers.js';

afterEach(() => cleanup());

/** Start argv in its own session, stdout and stderr to `out`, in `cwd`. Tracked for cleanup. */
const start = (argv: string[], out: string, cwd: string) =>
  spawnClean(argv, { stdout: out, stderr: out, cwd });

/** Dump the tree (killed by the dump), reap it, restore it detached; returns the restored pids. */
async function dumpKillRestore(root: number): Promise<number[]> {
  // Every task the dump saw (a shell's short-lived children too): killed by the dump, reaped here.
  await restoreDetached(await dumpAndKill(root, { kill: 'images' }));
  const back = treeOf(root);
  track(...back);
  return back;
}

const lines = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);

describe('criu-ts restore: programs that are not ours', () => {
  it('a bash loop that forks `sleep` each round counts on without a gap or a repeat', async () => {
    const d = tempDir('criu-ts-bash-');
    const out = path.join(d, 'out');
    const pid = start(['/bin/bash', '-c', 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done'], out, d);
    await waitFor(() => fs.existsSync(out) && lines(out).length >= 10, 'bash counting');
    await dumpKillRestore(pid);
    const n = lines(out).length;
    await waitFor(() => lines(out).length >= n + 10, 'bash counting after restore');
    const all = lines(out).map(Number);
    expect(all.every((v, i) => v === i + 1)).toBe(true);
  });

  it('python multiprocessing (3 workers, Queues, a Lock and a shared Value, its semaphores unlinked files in /dev/shm) goes on', async () => {
    const d = tempDir('criu-ts-mp-');
    const out = path.join(d, 'out');
    const script = [
      'import multiprocessing as mp, sys, time',
      'def work(qi, qo):',
      '    while True:',
      '        x = qi.get()',
      '        qo.put((x, x * x))',
      "if __name__ == '__main__':",
      '    qi, qo = mp.Queue(), mp.Queue()',
      '    for _ in range(3): mp.Process(target=work, args=(qi, qo), daemon=True).start()',
      "    lock, val = mp.Lock(), mp.Value('i', 0)",
      '    for i in range(1, 10**9):',
      '        qi.put(i)',
      '        x, y = qo.get()',
      '        with lock: val.value += 1',
      "        print(i if y == x * x and val.value == i else 'BAD %d' % i, flush=True)",
      '        time.sleep(0.005)',
    ].join('\n');
    const pid = start(['/usr/bin/python3', '-c', script], out, d);
    await waitFor(() => fs.existsSync(out) && lines(out).length >= 20, 'the pool working');
    track(...treeOf(pid)); // the workers too: they would outlive a failed test otherwise
    expect(treeOf(pid).length).toBeGreaterThanOrEqual(4); // the main process and three workers
    await dumpKillRestore(pid);
    const n = lines(out).length;
    await waitFor(() => lines(out).length >= n + 50, 'the pool working after restore');
    const all = lines(out);
    expect(all.filter((l) => !/^\d+$/.test(l))).toEqual([]);
    expect(all.map(Number).every((v, i) => v === i + 1)).toBe(true);
  });

  it('perl keeps a hash it checks every round (self-check passes after restore)', async () => {
    const d = tempDir('criu-ts-perl-');
    const out = path.join(d, 'out');
    const script =
      '$|=1; my %h; for (my $i = 1; ; $i++) { $h{$i} = $i * 2; ' +
      'for my $k (1..$i) { if ($h{$k} != $k * 2) { print "FAIL $k\\n"; exit 1 } } ' +
      'print "$i\\n"; select(undef, undef, undef, 0.01) }';
    const pid = start(['/usr/bin/perl', '-e', script], out, d);
    await waitFor(() => fs.existsSync(out) && lines(out).length >= 20, 'perl counting');
    await dumpKillRestore(pid);
    const n = lines(out).length;
    await waitFor(() => lines(out).length >= n + 20, 'perl counting after restore');
    const all = lines(out);
    expect(all.filter((l) => l.startsWith('FAIL'))).toEqual([]);
    expect(all.map(Number).every((v, i) => v === i + 1)).toBe(true);
  });

  it('gcc (driver and cc1) restored in the middle of a compile builds a binary that gives the right answer', async () => {
    const d = tempDir('criu-ts-gcc-');
    const src = path.join(d, 'big.c');
    const n = 800;
    const fns = Array.from(
      { length: n },
      (_, i) => `int f${i}(int x){int s=0;for(int j=0;j<x;j++)s+=j*${i}^(s>>3);return s;}`,
    );
    const calls = Array.from({ length: n }, (_, i) => `t+=f${i}(${i % 50});`);
    fs.writeFileSync(
      src,
      `#include <stdio.h>\n${fns.join('\n')}\nint main(void){long t=0;${calls.join('')}printf("%ld\\n",t);return 0;}\n`,
    );
    const pid = start(['/usr/bin/gcc', '-O1', '-o', 'big', 'big.c'], path.join(d, 'out'), d);
    // Dump while cc1 works (the tree is gcc -> cc1).
    await waitFor(() => treeOf(pid).length >= 2, 'gcc to start cc1');
    await dumpKillRestore(pid);
    await waitFor(() => procState(pid) === 'gone' || procState(pid) === 'Z', 'gcc to finish', 120_000);
    const restoredBuild = execFileSync(path.join(d, 'big'), { encoding: 'utf8' });
    execFileSync('/usr/bin/gcc', ['-O1', '-o', 'ref', 'big.c'], { cwd: d });
    expect(restoredBuild).toBe(execFileSync(path.join(d, 'ref'), { encoding: 'utf8' }));
  }, 180_000);

  it('sort stopped half-way (temporary files open) and restored writes the fully sorted file', async () => {
    const d = tempDir('criu-ts-sort-');
    const input = path.join(d, 'in.txt');
    const words = Array.from({ length: 1_000_000 }, (_, i) => ((i * 7919) % 1_000_000).toString(36));
    fs.writeFileSync(input, `${words.join('\n')}\n`);
    const pid = start(
      ['/usr/bin/sort', '-S', '256K', '-T', d, input, '-o', path.join(d, 'sorted')],
      '/dev/null',
      d,
    );
    // Stopped once it has temporary files, so that the dump sees it at work whatever the machine's speed.
    await waitFor(
      () => fs.readdirSync(d).some((f) => f.startsWith('sort')),
      'sort to write a temporary file',
    );
    process.kill(pid, 'SIGSTOP');
    await waitFor(() => procState(pid) === 'T', 'sort stopped');
    await dumpKillRestore(pid);
    expect(procState(pid)).toBe('T');
    process.kill(pid, 'SIGCONT');
    await waitFor(() => procState(pid) === 'gone' || procState(pid) === 'Z', 'sort to finish', 120_000);
    const expected = execFileSync('/usr/bin/sort', ['-S', '100M', input], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    expect(fs.readFileSync(path.join(d, 'sorted'), 'utf8')).toBe(expected);
  }, 180_000);

  it.skipIf(!fs.existsSync('/usr/bin/java'))(
    'a JVM (its own threads, GC, JIT) counts on and its array sum stays right',
    async () => {
      const d = tempDir('criu-ts-java-');
      fs.writeFileSync(
        path.join(d, 'Count.java'),
        `public class Count { public static void main(String[] a) throws Exception {
  long[] arr = new long[1 << 16];
  for (long i = 1; ; i++) { arr[(int) (i % arr.length)] = i; long s = 0; for (long v : arr) s += v;
    long want = 0; for (long k = Math.max(1, i - arr.length + 1); k <= i; k++) want += k;
    System.out.println((s == want ? "" : "FAIL ") + i); Thread.sleep(20); } } }\n`,
      );
      execFileSync('/usr/bin/javac', ['Count.java'], { cwd: d });
      const out = path.join(d, 'out');
      const pid = start(['/usr/bin/java', '-Xmx64m', '-cp', d, 'Count'], out, d);
      await waitFor(() => fs.existsSync(out) && lines(out).length >= 10, 'java counting', 60_000);
      await dumpKillRestore(pid);
      const n = lines(out).length;
      await waitFor(() => lines(out).length >= n + 10, 'java counting after restore', 60_000);
      const all = lines(out);
      expect(all.filter((l) => l.startsWith('FAIL'))).toEqual([]);
      expect(all.map(Number).every((v, i) => v === i + 1)).toBe(true);
    },
    120_000,
  );
});
