// --action-script: the scripts run at each stage of a dump and a restore, last given first (as CRIU's
// list), with CRTOOLS_SCRIPT_ACTION, CRTOOLS_IMAGE_DIR and CRTOOLS_INIT_PID (from the first stage with a
// root task), their output in the -o log; a script that fails stops the dump with the tree running as it
// was, and the restore before any task exists (pre-restore) or with its tasks gone (post-restore).
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  expectAsBefore,
  expectCountsOn,
  oneLineFailure,
  procState,
  runCli,
  snapshot,
  startWorkload,
  tempDir,
  track,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** A script that appends "NAME ACTION INIT_PID IMAGE_DIR" to `log` and fails (exit 3) at `failAt`. */
function script(dir: string, name: string, log: string, failAt = ''): string {
  const file = path.join(dir, name);
  fs.writeFileSync(
    file,
    `#!/bin/sh
echo "${name} $CRTOOLS_SCRIPT_ACTION \${CRTOOLS_INIT_PID:--} $CRTOOLS_IMAGE_DIR" >> ${log}
echo "${name} says hello at $CRTOOLS_SCRIPT_ACTION"
[ "$CRTOOLS_SCRIPT_ACTION" = "${failAt}" ] && exit 3
exit 0
`,
    { mode: 0o755 },
  );
  return file;
}

async function counter() {
  const w = startWorkload('counter');
  await waitForLine(w.report, /^2$/, { pid: w.pid });
  return w;
}

const lines = (log: string) => fs.readFileSync(log, 'utf8').trim().split('\n');

describe('--action-script', () => {
  it('runs every script at each stage of a dump and a restore, with CRIU environment', async () => {
    const tmp = tempDir('criu-ts-scripts-');
    const log = path.join(tmp, 'calls');
    const a = script(tmp, 'a', log);
    const b = script(tmp, 'b', log);
    const w = await counter();
    const dir = path.join(tmp, 'images');
    const d = await runCli([
      'dump',
      '-t',
      String(w.pid),
      '-D',
      dir,
      '-o',
      'dump.log',
      '--action-script',
      a,
      '--action-script',
      b,
    ]);
    expect(d.code, d.stderr).toBe(0);
    const pid = w.pid;
    expect(lines(log)).toEqual([
      `b pre-dump ${pid} ${dir}`,
      `a pre-dump ${pid} ${dir}`,
      `b post-dump ${pid} ${dir}`,
      `a post-dump ${pid} ${dir}`,
    ]);
    // Their output is in the log, not on the terminal.
    expect(fs.readFileSync(path.join(dir, 'dump.log'), 'utf8')).toContain('a says hello at post-dump');
    expect(d.stdout).toBe('');
    fs.writeFileSync(log, '');
    killAndReap(pid); // the dump killed it: its zombie is ours
    const r = await runCli(['restore', '-D', dir, '-d', '-o', 'restore.log', '--action-script', a]);
    expect(r.code, r.stderr).toBe(0);
    track(pid);
    expect(lines(log)).toEqual([
      `a pre-restore - ${dir}`,
      `a post-restore ${pid} ${dir}`,
      `a pre-resume ${pid} ${dir}`,
      `a post-resume ${pid} ${dir}`,
    ]);
    await expectCountsOn(w.report, pid);
  });

  it('a script failing at post-dump fails the dump by name and leaves the tree running as it was', async () => {
    const tmp = tempDir('criu-ts-scripts-');
    const log = path.join(tmp, 'calls');
    const ok = script(tmp, 'ok', log);
    const bad = script(tmp, 'bad', log, 'post-dump');
    const w = await counter();
    const before = snapshot(w.pid);
    const dir = path.join(tmp, 'images');
    const d = await runCli([
      'dump',
      '-t',
      String(w.pid),
      '-D',
      dir,
      '-o',
      'dump.log',
      '--action-script',
      bad,
      '--action-script',
      ok,
    ]);
    expect(oneLineFailure(d)).toBe(`criu-ts: notify post-dump failed: action script ${bad} exited with 3`);
    // Both ran: every script of a stage runs, as CRIU's.
    expect(lines(log).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([
      'ok pre-dump',
      'bad pre-dump',
      'ok post-dump',
      'bad post-dump',
    ]);
    await expectAsBefore(w.pid, before);
    await expectCountsOn(w.report, w.pid);
  });

  it('a script failing at pre-restore stops the restore before any task exists', async () => {
    const tmp = tempDir('criu-ts-scripts-');
    const log = path.join(tmp, 'calls');
    const w = await counter();
    const dir = path.join(tmp, 'images');
    const d = await runCli(['dump', '-t', String(w.pid), '-D', dir]);
    expect(d.code, d.stderr).toBe(0);
    killAndReap(w.pid);
    const bad = script(tmp, 'bad', log, 'pre-restore');
    const r = await runCli(['restore', '-D', dir, '-d', '-o', 'restore.log', '--action-script', bad]);
    expect(oneLineFailure(r)).toBe(`criu-ts: notify pre-restore failed: action script ${bad} exited with 3`);
    expect(procState(w.pid)).toBe('gone');
    // A script that cannot be run at all is a failure too, named.
    const missing = path.join(tmp, 'nothing-here');
    const m = await runCli(['restore', '-D', dir, '-d', '-o', 'restore.log', '--action-script', missing]);
    expect(oneLineFailure(m)).toBe(
      `criu-ts: notify pre-restore failed: action script ${missing} could not be run: ENOENT`,
    );
    expect(procState(w.pid)).toBe('gone');
  });
});
