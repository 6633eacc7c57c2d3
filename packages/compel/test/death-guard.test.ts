// DeathGuard: what criu-ts changed outside is undone when criu-ts dies (SIGKILL) before settling it, and
// left alone once settled. The dying "criu-ts" is a node child that makes the guard (or freezes a cgroup
// through CgroupFreezer) and is SIGKILLed by the test.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cgroup2Mount } from '../src/index.js';
import {
  buildWorkloads,
  cleanup,
  onCleanup,
  procState,
  readLines,
  startWorkload,
  tempDir,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const COMPEL = path.resolve(import.meta.dirname, '../dist/index.js');

/**
 * Run `body` (module code with `compel` imported) in a node child that prints `ready <guard pid>` when
 * done, and stays. Returns its pid and the guard's.
 */
async function dyingChild(body: string): Promise<{ pid: number; guard: number }> {
  const code = `import * as compel from ${JSON.stringify(COMPEL)};\n${body}\nsetInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pid = child.pid as number;
  onCleanup(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (c) => {
    out += c;
  });
  await waitFor(() => /^ready \d+\n/m.test(out), 'the child ready', 20_000);
  return { pid, guard: Number(/^ready (\d+)/m.exec(out)?.[1]) };
}

const gone = (pid: number) => ['gone', 'Z', 'X'].includes(procState(pid));

describe('DeathGuard', () => {
  it('undoes when its maker dies, and only then', async () => {
    const dir = tempDir('criu-ts-compel-guard-');
    const undone = path.join(dir, 'undone');
    const { pid, guard } = await dyingChild(
      `const g = new compel.DeathGuard('test'); g.undoWith(['touch', ${JSON.stringify(undone)}]); console.log('ready', g.pid);`,
    );
    expect(gone(guard)).toBe(false);
    expect(fs.existsSync(undone)).toBe(false);
    process.kill(pid, 'SIGKILL');
    await waitFor(() => fs.existsSync(undone), 'the undo command to run', 10_000);
  });

  it('does nothing once disarmed', async () => {
    const dir = tempDir('criu-ts-compel-guard-');
    const undone = path.join(dir, 'undone');
    const { pid, guard } = await dyingChild(
      `const g = new compel.DeathGuard('test'); g.undoWith(['touch', ${JSON.stringify(undone)}]); g.disarm(); console.log('ready', g.pid);`,
    );
    process.kill(pid, 'SIGKILL');
    await waitFor(() => gone(guard), 'the disarmed guard to exit', 10_000);
    expect(fs.existsSync(undone)).toBe(false);
  });

  it('whileRunning: undoes only if one of the tasks still runs', async () => {
    const dir = tempDir('criu-ts-compel-guard-');
    const w = startWorkload('counter', ['20']);
    await waitForLine(w.report, /^1$/, { pid: w.pid });
    const make = (file: string) =>
      `const g = new compel.DeathGuard('test', { whileRunning: [${w.pid}] }); g.undoWith(['touch', ${JSON.stringify(file)}]); console.log('ready', g.pid);`;
    const whileAlive = await dyingChild(make(path.join(dir, 'alive')));
    process.kill(whileAlive.pid, 'SIGKILL');
    await waitFor(() => fs.existsSync(path.join(dir, 'alive')), 'the undo while the task runs', 10_000);

    const afterDeath = await dyingChild(make(path.join(dir, 'dead')));
    process.kill(w.pid, 'SIGKILL');
    await waitFor(() => gone(w.pid), 'the task dead');
    process.kill(afterDeath.pid, 'SIGKILL');
    await waitFor(() => gone(afterDeath.guard), 'the guard to exit', 10_000);
    expect(fs.existsSync(path.join(dir, 'dead'))).toBe(false);
  });

  it('CgroupFreezer: a cgroup frozen by a process that is SIGKILLed is thawed, and its tasks go on', async () => {
    const cg = path.join(cgroup2Mount(), `criu-ts-test-guard-${process.pid}`);
    fs.mkdirSync(cg);
    const w = startWorkload('counter', ['5']);
    onCleanup(() => {
      fs.writeFileSync(path.join(cg, 'cgroup.freeze'), '0');
      try {
        fs.writeFileSync(path.join(cgroup2Mount(), 'cgroup.procs'), String(w.pid));
      } catch {
        // gone already
      }
      fs.rmdirSync(cg);
    });
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    fs.writeFileSync(path.join(cg, 'cgroup.procs'), String(w.pid));
    const frozen = () => /^frozen 1$/m.test(fs.readFileSync(path.join(cg, 'cgroup.events'), 'utf8'));
    const { pid } = await dyingChild(
      `const f = new compel.CgroupFreezer(${JSON.stringify(cg)}); f.freeze(); console.log('ready 0');`,
    );
    expect(frozen()).toBe(true);
    const n = readLines(w.report).length;
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !frozen(), 'the cgroup thawed', 10_000);
    await waitFor(() => readLines(w.report).length > n + 5, 'the counter to go on', 10_000);
  });
});
