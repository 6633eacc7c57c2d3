// The tracer dies (SIGKILL) at each stage of an injection: the task runs on as if nothing happened. No
// thread resumes in compel's code with borrowed registers, no scratch area stays mapped, the interrupted
// syscall of a sleeping thread is restarted, signal masks and dispositions are unchanged.
// The tracer is a separate node process (a tracer's death is what is tested) that seizes, infects, runs
// what the stage says, prints `STAGE <name>` and waits; the test SIGKILLs it when it reads the line.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  procState,
  readLines,
  startWorkload,
  tempDir,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/index.js');

const TRACER = `
import { Parasite, seizeTree } from ${JSON.stringify(DIST)};
const [pid, stage, mode] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
const say = (s) => process.stdout.write(s + '\\n');
const tree = seizeTree(pid);
if (stage !== 'seized') {
  const p = Parasite.infect(tree, pid, { syscallMarker: mode === 'syscall' });
  if (stage === 'batch') p.runBatch([[39], [110], [39]]);
  if (stage === 'failed') p.runBatch([[39], [3, -1], [39]]);
  if (stage === 'syscall') p.syscall(39);
  if (stage === 'cured') p.cure();
  if (stage === 'running') {
    const ts = Buffer.alloc(16);
    ts.writeBigInt64LE(300_000_000n, 8);
    const at = p.writeScratch(0, ts);
    say('STAGE running');
    p.runBatch([[35, at, 0], [39]]); // nanosleep(300 ms): killed while the task runs it
  }
}
say('STAGE ' + stage);
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
`;

/** Run the tracer on `pid` up to `stage`, SIGKILL it there. */
async function killTracerAt(pid: number, stage: string, mode: string): Promise<void> {
  const dir = tempDir('criu-ts-compel-tracer-');
  const script = path.join(dir, 'tracer.mjs');
  fs.writeFileSync(script, TRACER);
  const child = spawn(process.execPath, [script, String(pid), stage, mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes(`STAGE ${stage}\n`)) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('close', () => reject(new Error(`tracer ended before stage ${stage}: ${err}`)));
  });
  await closed;
}

function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = l.indexOf(':');
    if (i > 0) out[l.slice(0, i)] = l.slice(i + 1).trim();
  }
  return out;
}
const signalState = (pid: number) => {
  const s = status(pid);
  return [s.SigBlk, s.SigIgn, s.SigCgt, s.SigPnd, s.ShdPnd];
};
const maps = (pid: number) => fs.readFileSync(`/proc/${pid}/maps`, 'utf8');

async function untraced(pid: number): Promise<void> {
  const until = Date.now() + 5000;
  while (status(pid).TracerPid !== '0') {
    if (Date.now() > until) throw new Error(`${pid} still traced`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const STAGES = ['seized', 'infected', 'batch', 'failed', 'syscall', 'running', 'cured'];
// The end of a run marked by a signal the task ignores (SIGWINCH here), or by syscall stops.
const CASES = ['signal', 'syscall'].flatMap((mode) => STAGES.map((stage) => [mode, stage]));

describe('the tracer killed in the middle of an injection', () => {
  it.each(CASES)(
    '%s marker, %s: a sleeping counter counts on, same maps and signal state',
    async (mode, stage) => {
      const w = startWorkload('counter', ['5']);
      await waitForLine(w.report, /^3$/, { pid: w.pid });
      const before = { maps: maps(w.pid), sig: signalState(w.pid) };
      await killTracerAt(w.pid, stage as string, mode as string);
      await untraced(w.pid);
      const n = readLines(w.report).length;
      await waitForLine(w.report, (_l, i) => i >= n + 3, { pid: w.pid, fromLine: n });
      expect(procState(w.pid)).toMatch(/[RS]/);
      expect(maps(w.pid)).toBe(before.maps);
      expect(signalState(w.pid)).toEqual(before.sig);
      expect(readLines(w.report).filter((l) => l.startsWith('FAIL'))).toEqual([]);
    },
  );

  it.each(CASES)('%s marker, %s: busy threads run on, no compel code page left', async (mode, stage) => {
    const w = startWorkload('threads', ['2']);
    await waitForLine(w.report, /^TICK /, { pid: w.pid });
    const sig = signalState(w.pid);
    await killTracerAt(w.pid, stage as string, mode as string);
    await untraced(w.pid);
    const n = readLines(w.report).length;
    await waitForLine(w.report, (_l, i) => i >= n + 2, { pid: w.pid, fromLine: n });
    expect(maps(w.pid)).not.toMatch(/ r-xp 00000000 00:00 0 *\n/);
    expect(signalState(w.pid)).toEqual(sig);
    expect(readLines(w.report).filter((l) => l.startsWith('FAIL'))).toEqual([]);
  });

  it('the text patch a killed tracer leaves in padding is found again and zeroed by the next cure', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const before = maps(w.pid);
    const padding = () => {
      // the last 320 bytes of every executable file mapping and of the vDSO
      const fd = fs.openSync(`/proc/${w.pid}/mem`, 'r');
      try {
        return before
          .split('\n')
          .filter((l) => / ..x. /.test(l) && (/ \//.test(l) || l.endsWith('[vdso]')))
          .map((l) => {
            const end = BigInt(`0x${l.split('-')[1]?.split(' ')[0]}`);
            const b = Buffer.alloc(320);
            fs.readSync(fd, b, 0, 320, Number(end) - 320);
            return b.every((x) => x === 0);
          });
      } finally {
        fs.closeSync(fd);
      }
    };
    const clean = padding();
    for (let i = 0; i < clean.length + 1; i++) await killTracerAt(w.pid, 'infected', 'signal');
    expect(padding().filter((z) => !z).length, 'paddings holding a patch').toBeGreaterThan(0);
    await killTracerAt(w.pid, 'cured', 'signal');
    await untraced(w.pid);
    expect(maps(w.pid)).toBe(before);
    const n = readLines(w.report).length;
    await waitForLine(w.report, (_l, i) => i >= n + 3, { pid: w.pid, fromLine: n });
    expect(readLines(w.report).filter((l) => l.startsWith('FAIL'))).toEqual([]);
    // Every kill reused the same padding (a stale patch is recognised), which the cure zeroed.
    expect(padding()).toEqual(clean);
  });
});
