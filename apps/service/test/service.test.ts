// `criu-ts service` with clients written here: several clients, bad datagrams, a client that hangs up
// mid-dump, a worker killed, notify exchanges, process titles, a socket passed by the caller, -d.
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { CriuReqType, encodeRequest } from '@criu-ts/rpc';
import {
  AF_UNIX,
  bind,
  close,
  encodeSockaddrUn,
  listen,
  SO_SNDBUFFORCE,
  SOCK_SEQPACKET,
  SOL_SOCKET,
  setsockopt,
  socket,
} from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  type Client,
  childrenOf,
  cleanup,
  cmdline,
  connectTo,
  REPO,
  readLines,
  runNode,
  serviceAt,
  startService,
  startWorkload,
  stateOf,
  tempDir,
  track,
  waitFor,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** Whether core calls the notify hook yet (h/notify): the notify tests need stages to answer. */
const coreNotifies = fs
  .readFileSync(path.join(REPO, 'packages/core/dist/dump/dump.js'), 'utf8')
  .includes('notify');

function expectEmptyError(c: Client, what: RegExp): void {
  const r = c.receive();
  expect(r).toMatchObject({ type: CriuReqType.EMPTY, success: false });
  expect(r?.cr_errmsg).toMatch(what);
  expect(c.receive()).toBeUndefined();
}

function version(c: Client, keepOpen = false) {
  return c.call({ type: CriuReqType.VERSION, keep_open: keepOpen });
}

describe('criu-ts service', () => {
  it('serves two clients at once, each with keep_open, in two workers', async () => {
    const svc = await startService(tempDir());
    const a = svc.connect();
    expect(version(a, true)).toMatchObject({ success: true, version: { major_number: 4, minor_number: 2 } });
    const b = svc.connect();
    expect(version(b, true)).toMatchObject({ success: true });
    expect(svc.workers().length).toBeGreaterThanOrEqual(2);
    expect(a.call({ type: CriuReqType.FEATURE_CHECK, keep_open: true, features: {} })).toMatchObject({
      type: CriuReqType.FEATURE_CHECK,
      success: true,
    });
    expect(b.call({ type: CriuReqType.CHECK })).toMatchObject({ type: CriuReqType.CHECK, success: true });
    expect(b.receive()).toBeUndefined();
    expect(version(a)).toMatchObject({ success: true });
    expect(a.receive()).toBeUndefined();
    // Idle workers are titled so; the connection's worker went back to the pool.
    await waitFor(
      () => svc.workers().length > 0 && svc.workers().every((w) => cmdline(w) === 'criu-ts service worker'),
      () => `idle workers: ${svc.workers().map(cmdline)}`,
    );
  });

  it('answers a malformed, a truncated, a huge datagram and an unknown type with EMPTY and an error, and serves on', async () => {
    const svc = await startService(tempDir());
    let c = svc.connect();
    c.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expectEmptyError(c, /malformed request/);

    const whole = encodeRequest({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: -1, images_dir: '/nonexistent' },
    });
    c = svc.connect();
    c.sendRaw(whole.subarray(0, whole.length - 3));
    expectEmptyError(c, /malformed request/);

    // A string field claiming 2 GiB.
    c = svc.connect();
    c.sendRaw(Buffer.from([0x08, 0x01, 0x12, 0x06, 0x8a, 0x04, 0x80, 0x80, 0x80, 0x80]));
    expectEmptyError(c, /malformed request/);

    // A datagram of 2 MiB (the sender's buffer forced up to carry it).
    c = svc.connect();
    setsockopt(c.fd, SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20);
    c.sendRaw(Buffer.alloc(2 << 20, 0x08));
    expectEmptyError(c, /datagram of 2097152 bytes is no criu_req/);

    // Type 77 is no criu_req_type: field 1, varint 77.
    c = svc.connect();
    c.sendRaw(Buffer.from([0x08, 77]));
    expectEmptyError(c, /^Invalid req: unknown request type 77$/);

    c = svc.connect();
    c.send({ type: CriuReqType.NOTIFY, notify_success: true });
    expectEmptyError(c, /NOTIFY is only an answer/);

    expect(version(svc.connect())).toMatchObject({ success: true });
  });

  it('leaves the tree running when the client hangs up mid-dump, and serves the next client', async () => {
    const svc = await startService(tempDir());
    const w = startWorkload('counter');
    await waitForMoreLines(w.report, 2, w.pid);
    const images = path.join(tempDir(), 'images');
    const c = svc.connect();
    // No leave_running: a dump that went through would kill the counter.
    c.send({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: -1, images_dir: images, pid: w.pid, log_level: 4 },
    });
    c.close();
    await waitFor(
      () =>
        fs.existsSync(path.join(images, 'criu.log')) &&
        /closed the connection/.test(fs.readFileSync(path.join(images, 'criu.log'), 'utf8')),
      'the dump to stop',
    );
    await waitFor(
      () => !/TracerPid:\s+[1-9]/.test(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8')),
      'the counter released',
    );
    expect(stateOf(w.pid)).not.toBe('Z');
    await waitForMoreLines(w.report, 3, w.pid);
    expect(fs.existsSync(path.join(images, 'stats-dump'))).toBe(false);
    expect(version(svc.connect())).toMatchObject({ success: true });
  });

  it('goes on when a worker is killed (SIGKILL), and leaves no zombie', async () => {
    const svc = await startService(tempDir());
    const c = svc.connect();
    expect(version(c, true)).toMatchObject({ success: true });
    const killed = svc.workers();
    for (const w of killed) process.kill(w, 'SIGKILL');
    expect(c.receive()).toBeUndefined();
    await waitFor(
      () => svc.workers().length > 0 && svc.workers().every((w) => !killed.includes(w) && stateOf(w) !== 'Z'),
      () => `fresh workers, no zombies: ${svc.workers().map((w) => `${w}:${stateOf(w)}`)}`,
    );
    expect(version(svc.connect())).toMatchObject({ success: true });
    expect(svc.proc.child.exitCode).toBeNull();
  });

  it("refuses rst_sibling (swrk only, as CRIU) with CRIU's words", async () => {
    const svc = await startService(tempDir());
    const dir = tempDir();
    const r = svc.connect().call({
      type: CriuReqType.RESTORE,
      opts: { images_dir_fd: -1, images_dir: dir, rst_sibling: true },
    });
    expect(r).toMatchObject({ type: CriuReqType.RESTORE, success: false, cr_errno: 56 });
    expect(r.cr_errmsg).toBe('rst_sibling is not allowed in standalone service');
  });

  it('keeps a worker that dumped in the pool: the next dump is served by a warm worker', async () => {
    const svc = await startService(tempDir());
    const w = startWorkload('counter');
    await waitForMoreLines(w.report, 2, w.pid);
    await waitFor(() => svc.workers().length === 1, 'the first worker');
    const first = svc.workers()[0] as number;
    for (const i of [1, 2]) {
      const r = svc.connect().call({
        type: CriuReqType.DUMP,
        opts: {
          images_dir_fd: -1,
          images_dir: path.join(tempDir(), `images${i}`),
          pid: w.pid,
          leave_running: true,
        },
      });
      expect(r, r.cr_errmsg).toMatchObject({ type: CriuReqType.DUMP, success: true });
    }
    // The first worker served (and survived) the dumps; the counter runs on.
    expect(svc.workers()).toContain(first);
    await waitForMoreLines(w.report, 2, w.pid);
  });

  it("closes each request's log: a worker that served dumps keeps no log file open", async () => {
    const svc = await startService(tempDir());
    const w = startWorkload('counter');
    await waitForMoreLines(w.report, 2, w.pid);
    const dirs = [1, 2, 3].map((i) => path.join(tempDir(), `images${i}`));
    for (const dir of dirs) {
      const r = svc.connect().call({
        type: CriuReqType.DUMP,
        opts: { images_dir_fd: -1, images_dir: dir, pid: w.pid, leave_running: true, log_level: 4 },
      });
      expect(r, r.cr_errmsg).toMatchObject({ type: CriuReqType.DUMP, success: true });
      expect(fs.readFileSync(path.join(dir, 'criu.log'), 'utf8')).toMatch(/Dumping finished successfully/);
    }
    const open = svc.workers().flatMap((p) =>
      fs.readdirSync(`/proc/${p}/fd`).flatMap((fd) => {
        try {
          return [fs.readlinkSync(`/proc/${p}/fd/${fd}`)];
        } catch {
          return [];
        }
      }),
    );
    expect(open.filter((f) => f.endsWith('criu.log') || f.endsWith('criu.log (deleted)'))).toEqual([]);
  });

  it("restores through a worker that stays in the pool; the tree is the service's child, reaped when it exits", async () => {
    const svc = await startService(tempDir());
    const w = startWorkload('counter');
    await waitForMoreLines(w.report, 2, w.pid);
    const images = path.join(tempDir(), 'images');
    const d = svc.connect().call({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: -1, images_dir: images, pid: w.pid },
    });
    expect(d, d.cr_errmsg).toMatchObject({ type: CriuReqType.DUMP, success: true });
    killAndReap(w.pid);
    const last = Number(readLines(w.report).at(-1));
    const before = svc.workers().sort();
    const c = svc.connect();
    const r = c.call({ type: CriuReqType.RESTORE, opts: { images_dir_fd: -1, images_dir: images } });
    expect(r, r.cr_errmsg).toMatchObject({
      type: CriuReqType.RESTORE,
      success: true,
      restore: { pid: w.pid },
    });
    track(w.pid);
    await waitForMoreLines(w.report, 3, w.pid);
    expect(Number(readLines(w.report).at(-1))).toBeGreaterThan(last);
    expect(c.receive()).toBeUndefined();
    // The root is the service's own child (not a worker's, whose exit would hand it on).
    expect(svc.trees()).toEqual([w.pid]);
    // The worker that restored serves the next request: no worker exits, none is started.
    const again = svc.connect().call({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: -1, images_dir: path.join(tempDir(), 'again'), pid: w.pid, leave_running: true },
    });
    expect(again, again.cr_errmsg).toMatchObject({ type: CriuReqType.DUMP, success: true });
    expect(svc.workers().sort()).toEqual(before);
    // Workers killed: the tree runs on.
    for (const p of svc.workers()) process.kill(p, 'SIGKILL');
    await waitFor(() => svc.workers().every((p) => !before.includes(p)), 'the workers killed');
    await waitForMoreLines(w.report, 2, w.pid);
    // The root exits: the service reaps it (killAndReap waits until it is gone: it is not our child).
    killAndReap(w.pid);
    expect(stateOf(w.pid)).toBe('gone');
    expect(svc.trees()).toEqual([]);
    expect(svc.proc.child.exitCode).toBeNull();
  });

  it("restores with keep_open as the worker's children: WAIT_PID reaps the root, then the worker exits", async () => {
    const svc = await startService(tempDir());
    const w = startWorkload('counter');
    await waitForMoreLines(w.report, 2, w.pid);
    const images = path.join(tempDir(), 'images');
    const d = svc.connect().call({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: -1, images_dir: images, pid: w.pid },
    });
    expect(d, d.cr_errmsg).toMatchObject({ type: CriuReqType.DUMP, success: true });
    killAndReap(w.pid);
    const before = svc.workers();
    const c = svc.connect();
    const r = c.call({
      type: CriuReqType.RESTORE,
      keep_open: true,
      opts: { images_dir_fd: -1, images_dir: images },
    });
    expect(r, r.cr_errmsg).toMatchObject({
      type: CriuReqType.RESTORE,
      success: true,
      restore: { pid: w.pid },
    });
    track(w.pid);
    await waitForMoreLines(w.report, 2, w.pid);
    expect(svc.trees()).toEqual([]);
    process.kill(w.pid, 'SIGTERM');
    const wp = c.call({ type: CriuReqType.WAIT_PID, pid: w.pid });
    expect(wp).toMatchObject({ type: CriuReqType.WAIT_PID, success: true });
    expect(stateOf(w.pid)).toBe('gone');
    expect(c.receive()).toBeUndefined();
    // The worker that restored (the tree was its children) is gone.
    await waitFor(() => before.some((p) => !svc.workers().includes(p)), 'the restoring worker to exit');
  });

  it.skipIf(!coreNotifies)(
    'notify: the worker shows `criu-ts dump --rpc -t PID` while it waits; a failure answer aborts the dump, the tree runs on',
    async () => {
      const svc = await startService(tempDir());
      const w = startWorkload('counter');
      await waitForMoreLines(w.report, 2, w.pid);
      const images = path.join(tempDir(), 'images');
      const c = svc.connect();
      c.send({
        type: CriuReqType.DUMP,
        opts: { images_dir_fd: -1, images_dir: images, pid: w.pid, notify_scripts: true },
      });
      const n = c.receive();
      expect(n).toMatchObject({ type: CriuReqType.NOTIFY, success: true, notify: { script: 'pre-dump' } });
      expect(svc.workers().map(cmdline)).toContain(`criu-ts dump --rpc -t ${w.pid}`);
      c.send({ type: CriuReqType.NOTIFY, notify_success: false });
      const r = c.receive();
      expect(r).toMatchObject({ type: CriuReqType.DUMP, success: false });
      expect(r?.cr_errmsg).toMatch(/script error/);
      await waitForMoreLines(w.report, 3, w.pid);
    },
  );

  it.skipIf(!coreNotifies)('notify: every stage answered with success, the dump goes through', async () => {
    const svc = await startService(tempDir());
    const w = startWorkload('counter');
    await waitForMoreLines(w.report, 2, w.pid);
    const c = svc.connect();
    c.send({
      type: CriuReqType.DUMP,
      opts: {
        images_dir_fd: -1,
        images_dir: path.join(tempDir(), 'images'),
        pid: w.pid,
        notify_scripts: true,
        leave_running: true,
      },
    });
    const stages: string[] = [];
    for (;;) {
      const m = c.receive();
      if (m?.type !== CriuReqType.NOTIFY) {
        expect(m, m?.cr_errmsg).toMatchObject({ type: CriuReqType.DUMP, success: true });
        break;
      }
      stages.push(m.notify?.script ?? '');
      c.send({ type: CriuReqType.NOTIFY, notify_success: true });
    }
    expect(stages).toContain('pre-dump');
    expect(stages).toContain('post-dump');
  });

  it.skipIf(!coreNotifies)(
    'notify at restore: post-restore carries the root pid; a failure there leaves no restored task, a retry restores',
    async () => {
      const svc = await startService(tempDir());
      const w = startWorkload('counter');
      await waitForMoreLines(w.report, 2, w.pid);
      const images = path.join(tempDir(), 'images');
      const d = svc
        .connect()
        .call({ type: CriuReqType.DUMP, opts: { images_dir_fd: -1, images_dir: images, pid: w.pid } });
      expect(d, d.cr_errmsg).toMatchObject({ success: true });
      killAndReap(w.pid);
      const restoreWith = (failAt: string | undefined) => {
        const c = svc.connect();
        c.send({
          type: CriuReqType.RESTORE,
          opts: { images_dir_fd: -1, images_dir: images, notify_scripts: true },
        });
        const seen: Array<{ script: string; pid?: number }> = [];
        for (;;) {
          const m = c.receive();
          if (m?.type !== CriuReqType.NOTIFY) return { seen, resp: m };
          const script = m.notify?.script ?? '';
          seen.push({ script, ...(m.notify?.pid !== undefined ? { pid: m.notify.pid } : {}) });
          c.send({ type: CriuReqType.NOTIFY, notify_success: script !== failAt });
        }
      };
      const failed = restoreWith('post-restore');
      expect(failed.resp).toMatchObject({ type: CriuReqType.RESTORE, success: false });
      expect(failed.seen.map((s) => s.script)).toEqual(['pre-restore', 'post-restore']);
      expect(failed.seen[1]).toEqual({ script: 'post-restore', pid: w.pid });
      await waitFor(
        () => stateOf(w.pid) === 'gone',
        `no task left of the failed restore (${w.pid}: ${stateOf(w.pid)})`,
      );
      const ok = restoreWith(undefined);
      expect(ok.resp, ok.resp?.cr_errmsg).toMatchObject({
        type: CriuReqType.RESTORE,
        success: true,
        restore: { pid: w.pid },
      });
      track(w.pid);
      expect(ok.seen.map((s) => s.script)).toEqual([
        'pre-restore',
        'post-restore',
        'pre-resume',
        'post-resume',
      ]);
      await waitForMoreLines(w.report, 2, w.pid);
    },
  );

  it('starts from a bound, listening socket passed as fd 3 (LISTEN_FDS, LISTEN_PID)', async () => {
    const dir = tempDir();
    const address = path.join(dir, 'passed.socket');
    const fd = socket(AF_UNIX, SOCK_SEQPACKET);
    try {
      bind(fd, encodeSockaddrUn(address));
      listen(fd, 16);
      // systemd's protocol: LISTEN_PID names the process itself, so a shell sets it before exec.
      const proc = runNode([], {
        argv0: [
          '/bin/sh',
          '-c',
          'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"',
          process.execPath,
          path.join(REPO, 'apps/cli/bin/criu-ts.cjs'),
          'service',
        ],
        stdio: ['ignore', 'ignore', 'pipe', fd],
      });
      const svc = await serviceAt(proc, address);
      expect(version(svc.connect())).toMatchObject({ success: true });
      // It did not bind a socket of its own in the current directory.
      expect(fs.existsSync(path.join(REPO, 'criu_service.socket'))).toBe(false);
    } finally {
      close(fd);
    }
  });

  it('--status-fd: a zero byte once the service listens, as CRIU writes it', async () => {
    const dir = tempDir();
    const address = path.join(dir, 's.socket');
    const proc = runNode(['service', '--address', address, '--status-fd', '3'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    const status = proc.child.stdio[3] as NodeJS.ReadableStream;
    const got = await new Promise<Buffer>((resolve) => status.once('data', (b: Buffer) => resolve(b)));
    expect(got).toEqual(Buffer.of(0));
    // By then it listens.
    expect(fs.existsSync(address)).toBe(true);
    const svc = await serviceAt(proc, address);
    expect(version(svc.connect())).toMatchObject({ success: true });
  });

  it('-d --pidfile: returns once the daemon listens; the pidfile names it', async () => {
    const dir = tempDir();
    const address = path.join(dir, 'd.socket');
    const pidfile = path.join(dir, 'service.pid');
    const starter = runNode(['service', '-d', '--pidfile', pidfile, '--address', address]);
    expect(await starter.exited, starter.stderr()).toEqual({ code: 0, signal: null });
    const pid = Number(fs.readFileSync(pidfile, 'utf8'));
    track(pid, ...childrenOf(pid));
    expect(pid).toBeGreaterThan(0);
    expect(cmdline(pid)).toContain('service -d');
    // A session of its own, as daemon() gives.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(Number(fields[3])).toBe(pid);
    expect(version(connectTo(address))).toMatchObject({ success: true });
    track(...childrenOf(pid));
  });
});
