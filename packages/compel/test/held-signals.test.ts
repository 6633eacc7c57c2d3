// A signal that arrives while compel runs injected code is held back by the tracer and delivered when
// the task is released. If the tracer dies first (SIGKILL), a guard sends it again: a task waiting for
// it in pause() wakes up all the same. The tracer is a separate node process that seizes, infects, runs
// a batch during which the test sends the signal, says how many signals it holds, and waits.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  onCleanup,
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

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/index.js');

const TRACER = `
import { writeSync } from 'node:fs';
import { Parasite, seizeTree } from ${JSON.stringify(DIST)};
const pid = Number(process.argv.at(-1));
const say = (s) => writeSync(1, s + '\\n');
const tree = seizeTree(pid);
const p = Parasite.infect(tree, pid);
const ts = Buffer.alloc(16);
ts.writeBigInt64LE(400_000_000n, 8);
const at = p.writeScratch(0, ts);
say('RUNNING');
p.runBatch([[35, at, 0], [39]]); // nanosleep(400 ms): the signal comes meanwhile
say('HELD ' + tree.tasks[0].threads.reduce((n, t) => n + t.signals.length, 0));
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
`;

describe('signals held back while the tracer runs injected code', () => {
  it('the tracer SIGKILLed while it holds a SIGUSR1: the task still gets it (waiter wakes from pause())', async () => {
    const w = startWorkload('waiter', ['pause']);
    await waitForLine(w.report, /^WAITING pause$/, { pid: w.pid });
    await waitFor(() => procSyscall(w.pid) === 34, 'the waiter in pause()');
    const tracer = spawn(process.execPath, ['--input-type=module', '-e', TRACER, String(w.pid)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    onCleanup(() => tracer.kill('SIGKILL'));
    let out = '';
    tracer.stdout.on('data', (c) => {
      out += c;
    });
    await waitFor(() => out.includes('RUNNING\n'), 'the batch to start', 20_000);
    process.kill(w.pid, 'SIGUSR1');
    await waitFor(() => /HELD \d+\n/.test(out), 'the batch to end', 20_000);
    expect(out).toContain('HELD 1\n');
    expect(readLines(w.report)).not.toContain('WOKE pause');
    tracer.kill('SIGKILL');
    await waitForLine(w.report, /^WOKE pause$/, { pid: w.pid, timeoutMs: 10_000 });
  });
});
