// `criu-ts restore` options as CRIU has them: without -d it waits for the restored root and exits with
// its status; --pidfile (relative to -W), -v4 -o (the log), --display-stats, --shell-job.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ioctl, O_CLOEXEC, O_NOCTTY, O_RDWR, open } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  CRIU_TS,
  cleanup,
  counterNumbers,
  dumpAndKill,
  isConsecutiveFromOne,
  onCleanup,
  PYTHON,
  procStat,
  procState,
  readLines,
  runCli,
  startWorkload,
  tempDir,
  waitFor,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

describe('criu-ts restore: options', () => {
  it('without -d: waits for the root task and exits with its status', async () => {
    const w = startWorkload('sleeper', ['2500']);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'S', 'sleeper asleep');
    const dir = await dumpAndKill(w.pid);
    const r = await runCli(['restore', '-D', dir]);
    expect(r).toMatchObject({ code: 0, stderr: '', stdout: '' });
    // criu-ts returned only once the root had finished its sleep (the time it had left) and exited.
    expect(readLines(w.report).filter((l) => l.startsWith('SLEPT '))).toHaveLength(1);
    expect(procState(w.pid)).toBe('gone');
  });

  it('--restore-sibling: the root is the child of whoever ran criu-ts, which reaps its exit status', async () => {
    const w = startWorkload('sleeper', ['2500']);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'S', 'sleeper asleep');
    const dir = await dumpAndKill(w.pid);
    // A python3 parent runs criu-ts, then looks at the root's parent and waits for it as its own child.
    const parent = [
      'import os, subprocess, sys',
      'r = subprocess.run(sys.argv[1:])',
      'pid = int(os.environ["ROOT"])',
      "ppid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])",
      'print(r.returncode, ppid == os.getpid(), flush=True)',
      'print(os.waitpid(pid, 0)[1], flush=True)',
    ].join('\n');
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(PYTHON, ['-c', parent, CRIU_TS, 'restore', '-D', dir, '--restore-sibling'], {
        env: { ...process.env, ROOT: String(w.pid) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        text += d;
      });
      child.on('error', reject);
      child.on('close', () => resolve(text));
    });
    expect(out).toBe('0 True\n0\n'); // criu-ts exit 0 at once, root's parent = python, root exit 0
    expect(readLines(w.report).filter((l) => l.startsWith('SLEPT '))).toHaveLength(1);
  });

  it('without -d: a root killed by SIGTERM makes criu-ts exit 143', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid);
    const run = runCli(['restore', '-D', dir]);
    await waitForMoreLines(w.report, 3, w.pid).catch(() => {});
    await waitFor(() => procState(w.pid) === 'S' || procState(w.pid) === 'R', 'restored');
    process.kill(w.pid, 'SIGTERM');
    expect((await run).code).toBe(143);
  });

  it('--pidfile (relative to -W), -v4 -o (the log in the work dir), --display-stats', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid);
    const work = tempDir('criu-ts-restore-work-');
    const r = await runCli([
      'restore',
      '-D',
      dir,
      '-d',
      '-W',
      work,
      '--pidfile',
      'root.pid',
      '-v4',
      '-o',
      'restore.log',
      '--display-stats',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.readFileSync(path.join(work, 'root.pid'), 'utf8')).toBe(String(w.pid));
    const log = fs.readFileSync(path.join(work, 'restore.log'), 'utf8');
    // CRIU's text layout, which zdtm and scripts grep: a timestamp on every line, debug lines at -v4.
    expect(
      log
        .split('\n')
        .filter(Boolean)
        .every((l) => /^\(\d{2,}\.\d{6}\) /.test(l)),
      log,
    ).toBe(true);
    expect(log).toMatch(/^\(\d{2}\.\d{6}\) created \d+/m); // a debug line
    expect(log).toMatch(/Restore finished successfully/);
    expect(log).not.toMatch(/Error|Warn/);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('Displaying restore stats:');
    expect(lines.slice(1).map((l) => l.replace(/0x[0-9a-f]+/g, '0xN').replace(/\b\d+\b/g, 'N'))).toEqual([
      'Pages compared: N (0xN)',
      'Pages skipped COW: N (0xN)',
      'Pages restored: N (0xN)',
      'Restore time: N us',
      'Forking time: N us',
    ]);
    // stats-restore goes to the work dir, as CRIU keeps it.
    expect(fs.existsSync(path.join(work, 'stats-restore'))).toBe(true);
    await waitForMoreLines(w.report, 5, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });

  it('--pidfile that exists already: refused before anything is created', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid);
    const pidfile = path.join(tempDir('criu-ts-restore-pf-'), 'pid');
    fs.writeFileSync(pidfile, 'x');
    const r = await runCli(['restore', '-D', dir, '-d', '--pidfile', pidfile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^criu-ts: cannot create pidfile .*EEXIST\n$/);
    expect(procState(w.pid)).toBe('gone');
  });

  it('--shell-job: a task of our session comes back in criu-ts session and group', async () => {
    const w = startWorkload('counter', ['5'], { setsid: false });
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid, { extra: ['--shell-job'] });
    const refused = await runCli(['restore', '-D', dir, '-d']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--shell-job/);
    const r = await runCli(['restore', '-D', dir, '-d', '--shell-job']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const me = procStat(process.pid);
    const it = procStat(w.pid);
    expect(it.f(6)).toBe(me.f(6)); // session
    expect(it.f(5)).toBe(me.f(5)); // process group
    await waitForMoreLines(w.report, 5, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });

  it('--shell-job with a terminal: the restored task gets the terminal criu-ts runs in', async () => {
    const { master, slave } = openPty();
    onCleanup(() => fs.closeSync(master));
    const w = startWorkload('counter', ['5'], { setsid: false, stdin: slave, stdout: slave, stderr: slave });
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    expect(fs.readlinkSync(`/proc/${w.pid}/fd/0`)).toBe(slave);
    const dir = await dumpAndKill(w.pid, { extra: ['--shell-job'] });
    // Without a terminal of its own, criu-ts has none to give.
    const none = await runCli(['restore', '-D', dir, '-d', '--shell-job']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/criu-ts has none/);
    expect(procState(w.pid)).toBe('gone');
    const fd = fs.openSync(slave, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(CRIU_TS, ['restore', '-D', dir, '-d', '--shell-job'], {
        stdio: [fd, 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
    fs.closeSync(fd);
    expect(r).toEqual({ code: 0, stderr: '' });
    for (const n of [0, 1, 2]) expect(fs.readlinkSync(`/proc/${w.pid}/fd/${n}`)).toBe(slave);
    await waitForMoreLines(w.report, 5, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });
});

/** A new pseudo-terminal: the master fd (held by us) and the slave's path. */
function openPty(): { master: number; slave: string } {
  const master = open('/dev/ptmx', O_RDWR | O_NOCTTY | O_CLOEXEC);
  const unlock = Buffer.alloc(4);
  ioctl(master, 0x40045431 /* TIOCSPTLCK */, unlock);
  const n = Buffer.alloc(4);
  ioctl(master, 0x80045430 /* TIOCGPTN */, n);
  return { master, slave: `/dev/pts/${n.readUInt32LE(0)}` };
}
