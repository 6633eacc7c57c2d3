// Debian's pycriu (the `criu` package's Python module, system Python) drives the binary under test
// through `BINARY swrk FD` as a pycriu user does: criu().use_binary(BINARY), opts with images_dir_fd,
// pid, leave_running, log_file, log_level; dump(), restore() (the restored pid), check(), and VERSION
// through pycriu's own request path. pycriu execs the binary with fds 0-2 closed after sending the
// worker's pid on the socket. Everything is checked from outside: /proc and the counter's report.
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  checkPycriu,
  checkRpcBinary,
  cleanup,
  counterNumbers,
  describeRun,
  expectAsBefore,
  expectVersionAnswer,
  isConsecutiveFromOne,
  killAndReap,
  procState,
  RPC_BINARY,
  result,
  runPycriu,
  snapshot,
  startService,
  tempDir,
} from './clients.js';
import {
  expectImages,
  expectKilledByDump,
  expectRestored,
  expectRunningFree,
  imagesDir,
  lastCount,
  startCounter,
} from './scenario.js';

const ESRCH = 3;
const EEXIST = 17;

beforeAll(async () => {
  checkRpcBinary();
  checkPycriu();
  await buildWorkloads();
});
afterEach(() => cleanup());

describe(`pycriu drives ${RPC_BINARY} through swrk`, () => {
  it("check() succeeds; VERSION answers the binary's CRIU version", async () => {
    const c = await runPycriu(['check']);
    expect(result(c, 'check'), describeRun(c)).toMatchObject({ ok: true });
    expect(c.code).toBe(0);

    const v = await runPycriu(['version']);
    const a = result(v, 'version');
    expect(a, describeRun(v)).toMatchObject({ ok: true });
    expect(v.code).toBe(0);
    // gitid: go-criu's and runc's rule, the next minor for a git build
    const n = Number(a.major) * 10000 + Number(a.minor) * 100 + Number(a.sublevel ?? 0);
    expectVersionAnswer({ number: a.gitid ? n - (n % 100) + 100 : n, name: a.name });
  });

  it('dump kills the tree and writes the images and the log; restore brings it back with its pid and its count', async () => {
    const w = await startCounter();
    const dir = imagesDir();
    const d = await runPycriu([
      'dump',
      '--dir',
      dir,
      '--pid',
      String(w.pid),
      '--log-file',
      'dump.log',
      '--log-level',
      '4',
    ]);
    expect(result(d, 'dump'), describeRun(d, dir)).toMatchObject({ ok: true, restored: false });
    expect(d.code).toBe(0);
    await expectKilledByDump(w.pid);
    expectImages(dir, w.pid, 'dump.log');
    const numbers = counterNumbers(w.report);
    expect(isConsecutiveFromOne(numbers)).toBe(true);

    const r = await runPycriu(['restore', '--dir', dir, '--log-file', 'restore.log', '--log-level', '4']);
    expect(result(r, 'restore'), describeRun(r, dir)).toMatchObject({ ok: true });
    expect(r.code).toBe(0);
    await expectRestored(w, result(r, 'restore').pid, numbers.length, numbers[numbers.length - 1]!);
    expectImages(dir, w.pid, 'restore.log');
  });

  it('dump with leave_running leaves the tree running untouched; restore after a kill brings back the state of the dump', async () => {
    const w = await startCounter();
    const dir = imagesDir();
    const lo = lastCount(w.report);
    const d = await runPycriu([
      'dump',
      '--dir',
      dir,
      '--pid',
      String(w.pid),
      '--leave-running',
      '--log-file',
      'dump.log',
    ]);
    expect(result(d, 'dump'), describeRun(d, dir)).toMatchObject({ ok: true });
    expect(d.code).toBe(0);
    const hi = lastCount(w.report);
    await expectRunningFree(w);
    expectImages(dir, w.pid);

    killAndReap(w.pid);
    expect(procState(w.pid)).toBe('gone');
    const linesBefore = counterNumbers(w.report).length;
    const r = await runPycriu(['restore', '--dir', dir, '--log-file', 'restore.log']);
    expect(result(r, 'restore'), describeRun(r, dir)).toMatchObject({ ok: true });
    await expectRestored(w, result(r, 'restore').pid, linesBefore, [lo, hi]);
  });

  it('restore while the pid is taken fails with EEXIST and leaves the running task alone', async () => {
    const w = await startCounter();
    const dir = imagesDir();
    const d = await runPycriu([
      'dump',
      '--dir',
      dir,
      '--pid',
      String(w.pid),
      '--leave-running',
      '--log-file',
      'dump.log',
    ]);
    expect(result(d, 'dump'), describeRun(d, dir)).toMatchObject({ ok: true });
    await expectRunningFree(w);
    const before = snapshot(w.pid);

    const r = await runPycriu(['restore', '--dir', dir, '--log-file', 'restore.log']);
    expect(result(r, 'restore'), describeRun(r, dir)).toMatchObject({
      ok: false,
      errno: EEXIST,
      kind: 'CRIUExceptionExternal',
    });
    expect(r.code).toBe(1);
    await expectAsBefore(w.pid, before);
    await expectRunningFree(w);
  });

  it('dump of a pid that is gone fails with ESRCH', async () => {
    const w = await startCounter();
    killAndReap(w.pid);
    expect(procState(w.pid)).toBe('gone');
    const dir = imagesDir();
    const d = await runPycriu(['dump', '--dir', dir, '--pid', String(w.pid), '--log-file', 'dump.log']);
    expect(result(d, 'dump'), describeRun(d, dir)).toMatchObject({
      ok: false,
      errno: ESRCH,
      kind: 'CRIUExceptionExternal',
    });
    expect(d.code).toBe(1);
  });
});

describe(`pycriu drives \`${RPC_BINARY} service\` through its socket (use_sk)`, () => {
  it('check, VERSION, dump (the tree killed) and restore: one connection each, the service serving on', async () => {
    const svc = await startService(tempDir('criu-ts-clients-svc-'));
    const c = await runPycriu(['check'], svc);
    expect(result(c, 'check'), describeRun(c)).toMatchObject({ ok: true });
    const v = await runPycriu(['version'], svc);
    const a = result(v, 'version');
    expect(a, describeRun(v)).toMatchObject({ ok: true });
    const n = Number(a.major) * 10000 + Number(a.minor) * 100 + Number(a.sublevel ?? 0);
    expectVersionAnswer({ number: a.gitid ? n - (n % 100) + 100 : n, name: a.name });

    const w = await startCounter();
    const dir = imagesDir();
    const d = await runPycriu(
      ['dump', '--dir', dir, '--pid', String(w.pid), '--log-file', 'dump.log', '--log-level', '4'],
      svc,
    );
    expect(result(d, 'dump'), describeRun(d, dir)).toMatchObject({ ok: true, restored: false });
    await expectKilledByDump(w.pid);
    expectImages(dir, w.pid, 'dump.log');
    const numbers = counterNumbers(w.report);

    const r = await runPycriu(
      ['restore', '--dir', dir, '--log-file', 'restore.log', '--log-level', '4'],
      svc,
    );
    expect(result(r, 'restore'), describeRun(r, dir)).toMatchObject({ ok: true });
    // criu-ts: the restored root is the service's child (its worker serves on), reaped by the service;
    // CRIU: an orphan of its worker, adopted by this subreaper.
    const parent = path.basename(RPC_BINARY).startsWith('criu-ts') ? svc.pid : process.pid;
    await expectRestored(w, result(r, 'restore').pid, numbers.length, numbers[numbers.length - 1]!, parent);
    expectImages(dir, w.pid, 'restore.log');
    // ... and serves the next client.
    expect(['R', 'S']).toContain(procState(svc.pid));
    const again = await runPycriu(['check'], svc);
    expect(result(again, 'check'), describeRun(again)).toMatchObject({ ok: true });
  });
});
