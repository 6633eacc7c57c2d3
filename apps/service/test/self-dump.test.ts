// A client that dumps itself (criu_req DUMP without a pid: the peer from SO_PEERCRED), as CRIU's clients
// do it: Debian's pycriu (self_dump.py) starts swrk detached, or talks to the service. Checked from outside:
// the client's report, its exit, its pid after the restore, the images (its RPC socket dumped closed and
// marked USK_SERVICE, as CRIU dumps it). The restored client wakes in its recv() and reads, from the same
// socket, the answer restore put there: success, restored = true.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { type FileEntry, ImageDir } from '@criu-ts/images';
import { CriuReqType } from '@criu-ts/rpc';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkPycriu, expectNoSwrkLeft, RPC_BINARY } from './clients/clients.js';
import {
  cleanup,
  onCleanup,
  PYTHON,
  procState,
  readLines,
  type Service,
  startService,
  startSwrk,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

const SELF_DUMP = path.join(import.meta.dirname, 'self_dump.py');
const USK_SERVICE = 2;
const TCP_CLOSE = 7;

beforeAll(() => checkPycriu());
afterEach(() => cleanup());

interface Run {
  pid: number;
  report: string;
  images: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** self_dump.py in a session of its own, stdio on /dev/null (nothing outside its tree is held). */
async function startSelfDump(target: string[], leaveRunning: boolean): Promise<Run> {
  const dir = tempDir();
  const images = path.join(dir, 'images');
  fs.mkdirSync(images);
  const report = path.join(dir, 'report');
  const argv = [SELF_DUMP, ...target, '--dir', images, '--report', report];
  if (leaveRunning) argv.push('--leave-running');
  const child = spawn(PYTHON, argv, { detached: true, stdio: 'ignore' });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const pid = child.pid as number;
  onCleanup(() => {
    // Only while libuv has not reaped it: once reaped, the pid may be anyone's (the restored client's
    // is tracked on its own).
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  await waitForLine(report, /^READY /, { pid, timeoutMs: 30_000 });
  return { pid, report, images, exited };
}

/** The unix socket entries of files.img. */
function unixSockets(images: string): FileEntry[] {
  return ImageDir.open(images)
    .read('files')
    .map((e) => e.message as unknown as FileEntry)
    .filter((f) => f.usk !== undefined);
}

/** The client's RPC socket as the images hold it: closed, no peer, marked USK_SERVICE, as CRIU's. */
function expectServiceSocketDumped(images: string): void {
  const marked = unixSockets(images).filter((f) => ((f.usk?.uflags ?? 0) & USK_SERVICE) !== 0);
  expect(marked, 'one unix socket marked USK_SERVICE').toHaveLength(1);
  expect(marked[0]?.usk).toMatchObject({ state: TCP_CLOSE, peer: 0, uflags: USK_SERVICE });
}

const dumpLog = (images: string) => {
  try {
    return fs.readFileSync(path.join(images, 'dump.log'), 'utf8');
  } catch {
    return '(no dump.log)';
  }
};

/** The client was killed by its own dump: no answer came, its images are complete. */
async function expectKilledByItsDump(run: Run): Promise<void> {
  const how = await run.exited;
  expect(how, `${readLines(run.report).join('\n')}\n${dumpLog(run.images)}`).toEqual({
    code: null,
    signal: 'SIGKILL',
  });
  expect(readLines(run.report)).toEqual([`READY ${run.pid}`]);
  // The log is written once the dump returns, which is after the client died.
  await waitFor(
    () => dumpLog(run.images).includes('Dumping finished successfully'),
    () => `the dump's log to end: ${dumpLog(run.images)}`,
  );
  expectServiceSocketDumped(run.images);
}

/** The restored client (same pid) read the answer restored = true and said so; then it ends. */
async function expectRestoredClient(run: Run, rootPid: number | undefined): Promise<void> {
  expect(rootPid).toBe(run.pid);
  track(run.pid);
  await waitForLine(run.report, /^restored$/, { timeoutMs: 30_000 });
  expect(readLines(run.report)).toEqual([
    `READY ${run.pid}`,
    `DUMP success=True restored=True pid=${run.pid}`,
    'restored',
  ]);
  // It exits 0 after that (an orphan: this subreaper's zombie).
  await waitFor(() => ['Z', 'gone'].includes(procState(run.pid)), `restored client ${run.pid} to exit`);
  killAndReap(run.pid);
}

describe('a client that dumps itself (DUMP without pid), through Debian pycriu', () => {
  it('swrk, leave_running: the client gets success with restored false and runs on', async () => {
    const run = await startSelfDump(['--binary', RPC_BINARY], true);
    expect(await run.exited, `${readLines(run.report).join('\n')}\n${dumpLog(run.images)}`).toEqual({
      code: 0,
      signal: null,
    });
    expect(readLines(run.report)).toEqual([
      `READY ${run.pid}`,
      `DUMP success=True restored=False pid=${run.pid}`,
    ]);
    expectServiceSocketDumped(run.images);
    // pycriu's detached swrk ended on its own (re-parented to this subreaper).
    await expectNoSwrkLeft();
  });

  it('swrk, killed by its dump, restored by a second request: wakes with restored true', async () => {
    const run = await startSelfDump(['--binary', RPC_BINARY], false);
    await expectKilledByItsDump(run);
    await expectNoSwrkLeft();
    const rs = startSwrk();
    const dirFd = fs.openSync(run.images, 'r');
    try {
      const r = rs.client.call({
        type: CriuReqType.RESTORE,
        opts: { images_dir_fd: dirFd, log_level: 4, log_file: 'restore.log' },
      });
      expect(r, r.cr_errmsg).toMatchObject({ type: CriuReqType.RESTORE, success: true });
      await expectRestoredClient(run, r.restore?.pid);
    } finally {
      fs.closeSync(dirFd);
    }
    expect(await rs.proc.exited).toEqual({ code: 0, signal: null });
  });

  it('swrk started as a child of the client: refused (criu itself is in the tree), the client runs on', async () => {
    const run = await startSelfDump(['--swrk-child', RPC_BINARY], false);
    expect(await run.exited).toEqual({ code: 1, signal: null });
    const lines = readLines(run.report);
    expect(lines[0]).toBe(`READY ${run.pid}`);
    expect(lines[1]).toMatch(/^FAIL DUMP failed/);
    expect(dumpLog(run.images)).toContain('The criu itself is within dumped tree');
    await expectNoSwrkLeft();
  });

  it('notify_scripts with a self-dump is refused by name (post-dump would wait on a frozen client)', () => {
    const { client } = startSwrk();
    const r = client.call({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: -1, images_dir: tempDir(), notify_scripts: true },
    });
    expect(r).toMatchObject({ type: CriuReqType.DUMP, success: false, cr_errno: 56 });
    expect(r.cr_errmsg).toMatch(/^criu_opts\.notify_scripts: a client that dumps itself/);
  });

  it('service: killed by its dump, restored through the service: wakes with restored true', async () => {
    const svc: Service = await startService(tempDir());
    const run = await startSelfDump(['--service', svc.address], false);
    await expectKilledByItsDump(run);
    const r = svc.connect().call({
      type: CriuReqType.RESTORE,
      opts: { images_dir_fd: -1, images_dir: run.images, log_level: 4, log_file: 'restore.log' },
    });
    expect(r, r.cr_errmsg).toMatchObject({ type: CriuReqType.RESTORE, success: true });
    await expectRestoredClient(run, r.restore?.pid);
  });
});
