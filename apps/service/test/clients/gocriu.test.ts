// go-criu (Debian's golang-github-checkpoint-restore-go-criu-dev, v5) drives the binary under test
// through `BINARY swrk FD` as runc and podman do: MakeCriu, SetCriuPath, Dump and Restore with
// images_dir_fd, pid, leave_running, log_file, log_level and a Notify that records its callbacks, and
// GetCriuVersion. The client (go/main.go) is built offline from Debian's sources before the tests; a
// machine without the toolchain fails here with what to install. Checked from outside: /proc and the
// counter's report; the callbacks from the client's lines, in order.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildGoClient,
  buildWorkloads,
  type ClientRun,
  checkRpcBinary,
  cleanup,
  counterNumbers,
  describeRun,
  expectAsBefore,
  expectVersionAnswer,
  isConsecutiveFromOne,
  RPC_BINARY,
  result,
  runGoClient,
  snapshot,
} from './clients.js';
import {
  expectDead,
  expectImages,
  expectKilledByDump,
  expectRestored,
  expectRunningFree,
  imagesDir,
  startCounter,
} from './scenario.js';

let buildDir = '';
let client = '';

beforeAll(async () => {
  checkRpcBinary();
  buildDir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-gocriu-'));
  client = buildGoClient(buildDir);
  await buildWorkloads();
}, 180_000);
afterAll(() => {
  if (buildDir) fs.rmSync(buildDir, { recursive: true, force: true });
});
afterEach(() => cleanup());

/** The notify scripts the client's callbacks saw, in order ("post-restore:PID" with its pid). */
function notifications(r: ClientRun): string[] {
  return r.lines
    .filter((l) => l.event === 'notify')
    .map((l) => (l.pid === undefined ? String(l.script) : `${l.script}:${l.pid}`));
}

describe(`go-criu drives ${RPC_BINARY} through swrk`, () => {
  it("GetCriuVersion answers the binary's CRIU version; FeatureCheck is answered", async () => {
    const v = await runGoClient(client, ['version']);
    expect(result(v, 'version'), describeRun(v)).toMatchObject({ action: 'version', ok: true });
    expect(v.code).toBe(0);
    expectVersionAnswer({ number: Number(result(v, 'version').version) });

    const f = await runGoClient(client, ['features']);
    expect(result(f, 'features'), describeRun(f)).toEqual({ action: 'features', ok: true });
  });

  it('Dump and Restore with a Notify: the callbacks in order, the tree killed, restored with its pid and count', async () => {
    const w = await startCounter();
    const dir = imagesDir();
    const d = await runGoClient(client, [
      'dump',
      '-dir',
      dir,
      '-pid',
      String(w.pid),
      '-log-file',
      'dump.log',
      '-log-level',
      '4',
    ]);
    expect(result(d, 'dump'), describeRun(d, dir)).toMatchObject({ ok: true });
    expect(notifications(d)).toEqual(['pre-dump', 'post-dump']);
    await expectKilledByDump(w.pid);
    expectImages(dir, w.pid, 'dump.log');
    const numbers = counterNumbers(w.report);
    expect(isConsecutiveFromOne(numbers)).toBe(true);

    const r = await runGoClient(client, [
      'restore',
      '-dir',
      dir,
      '-log-file',
      'restore.log',
      '-log-level',
      '4',
    ]);
    expect(result(r, 'restore'), describeRun(r, dir)).toMatchObject({ ok: true });
    expect(notifications(r)).toEqual(['pre-restore', `post-restore:${w.pid}`, 'post-resume']);
    await expectRestored(w, result(r, 'restore').pid, numbers.length, numbers[numbers.length - 1]!);
    expectImages(dir, w.pid, 'restore.log');
  });

  it('Dump with leave_running: pre-dump and post-dump, the tree left running untouched', async () => {
    const w = await startCounter();
    const dir = imagesDir();
    const before = snapshot(w.pid);
    const d = await runGoClient(client, [
      'dump',
      '-dir',
      dir,
      '-pid',
      String(w.pid),
      '-leave-running',
      '-log-file',
      'dump.log',
    ]);
    expect(result(d, 'dump'), describeRun(d, dir)).toMatchObject({ ok: true });
    expect(notifications(d)).toEqual(['pre-dump', 'post-dump']);
    await expectAsBefore(w.pid, before);
    await expectRunningFree(w);
    expectImages(dir, w.pid);
  });

  it('Dump and Restore without a Notify (notify_scripts unset): no NOTIFY is sent, the tree comes back', async () => {
    const w = await startCounter();
    const dir = imagesDir();
    const d = await runGoClient(client, [
      'dump',
      '-dir',
      dir,
      '-pid',
      String(w.pid),
      '-no-notify',
      '-log-file',
      'dump.log',
    ]);
    // go-criu fails with "unexpected notify" on a NOTIFY it did not ask for.
    expect(result(d, 'dump'), describeRun(d, dir)).toEqual({ action: 'dump', ok: true });
    expect(notifications(d)).toEqual([]);
    await expectKilledByDump(w.pid);
    const numbers = counterNumbers(w.report);

    const r = await runGoClient(client, ['restore', '-dir', dir, '-no-notify', '-log-file', 'restore.log']);
    expect(result(r, 'restore'), describeRun(r, dir)).toMatchObject({ action: 'restore', ok: true });
    expect(notifications(r)).toEqual([]);
    // Without callbacks go-criu does not learn the pid: it is checked from outside.
    await expectRestored(w, w.pid, numbers.length, numbers[numbers.length - 1]!);
  });

  for (const script of ['pre-dump', 'post-dump']) {
    it(`a ${script} callback that fails (go-criu hangs up) aborts the dump: the tree runs on as before`, async () => {
      const w = await startCounter();
      const dir = imagesDir();
      const before = snapshot(w.pid);
      const d = await runGoClient(client, [
        'dump',
        '-dir',
        dir,
        '-pid',
        String(w.pid),
        '-fail-at',
        script,
        '-log-file',
        'dump.log',
      ]);
      expect(result(d, 'dump'), describeRun(d, dir)).toMatchObject({
        ok: false,
        error: `notify ${script} refused by the client`,
      });
      expect(d.code).toBe(1);
      const seen = notifications(d);
      expect(seen[seen.length - 1]).toBe(script);
      await expectAsBefore(w.pid, before);
      await expectRunningFree(w);
    });
  }

  for (const script of ['pre-restore', 'post-restore']) {
    it(`a ${script} callback that fails aborts the restore: no task left with the pid; a second restore works`, async () => {
      const w = await startCounter();
      const dir = imagesDir();
      const d = await runGoClient(client, [
        'dump',
        '-dir',
        dir,
        '-pid',
        String(w.pid),
        '-log-file',
        'dump.log',
      ]);
      expect(result(d, 'dump'), describeRun(d, dir)).toMatchObject({ ok: true });
      await expectKilledByDump(w.pid);
      const numbers = counterNumbers(w.report);

      const bad = await runGoClient(client, [
        'restore',
        '-dir',
        dir,
        '-fail-at',
        script,
        '-log-file',
        'restore-aborted.log',
      ]);
      expect(result(bad, 'restore'), describeRun(bad, dir)).toMatchObject({
        ok: false,
        error: `notify ${script} refused by the client`,
      });
      const seen = notifications(bad);
      expect(seen[seen.length - 1]?.split(':')[0]).toBe(script);
      // Whatever the aborted restore made is dead (at most a zombie left to us, its reaper) and never ran.
      await expectDead(w.pid, `the restore aborted at ${script}`);
      expect(counterNumbers(w.report)).toEqual(numbers);

      const r = await runGoClient(client, ['restore', '-dir', dir, '-log-file', 'restore.log']);
      expect(result(r, 'restore'), describeRun(r, dir)).toMatchObject({ ok: true });
      await expectRestored(w, result(r, 'restore').pid, numbers.length, numbers[numbers.length - 1]!);
    });
  }
});
