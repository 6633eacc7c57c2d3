// CriuClient driving a real server through swrk (criu-ts's command by default, CRIU's own with
// CRIU_RPC_TEST_BINARY): version, check, keep_open, a dump and a restore of a live process, notify
// callbacks, and the ways a connection can fail. Processes are checked from outside (/proc, the
// workloads' reports); after every test no fd of a client and no swrk child is left.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CriuClient,
  CriuConnection,
  CriuConnectionError,
  CriuReqType,
  CriuRpcError,
  decodeRequest,
  encodeResponse,
  type NotifyStage,
} from '../src/index.js';
import {
  BINARY,
  buildWorkloads,
  cleanup,
  expectAsBefore,
  expectCountsOn,
  fakeSwrk,
  leakedFds,
  ourFds,
  procState,
  snapshot,
  spawnClean,
  startWorkload,
  swrkChildren,
  tempDir,
  track,
  unixListening,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});

let fdsBefore: Map<number, string>;
let dirs: string[] = [];
beforeEach(() => {
  fdsBefore = ourFds();
  dirs = [];
});
afterEach(() => {
  try {
    // Whatever the test did, its clients closed everything: no socket or images dir fd, no swrk.
    expect(leakedFds(fdsBefore, dirs)).toEqual([]);
    expect(swrkChildren()).toEqual([]);
  } finally {
    cleanup();
  }
});

/** A fresh images dir (not created: dump creates it). */
function imagesDir(): string {
  const d = path.join(tempDir('criu-ts-rpc-img-'), 'images');
  dirs.push(d);
  return d;
}

/** A counter workload, started and counting. */
async function counter() {
  const w = startWorkload('counter');
  await waitForLine(w.report, /^2$/, { pid: w.pid });
  return w;
}

/** Kill and reap what a dump left (CRIU kills the dumped tree; the zombie is ours to reap). */
function reapDumped(pid: number): void {
  killAndReap(pid);
  expect(procState(pid)).toBe('gone');
}

describe(`CriuClient through \`${BINARY} swrk 3\``, () => {
  it('version(): the version the binary prints with --version', async () => {
    const printed = /Version:\s*(\d+\.\d+(?:\.\d+)?)/.exec(
      execFileSync(BINARY, ['--version'], { encoding: 'utf8' }),
    )?.[1];
    expect(printed).toBeDefined();
    const client = CriuClient.swrk(BINARY);
    const v = await client.version();
    const numbers = `${v.major_number}.${v.minor_number}${v.sublevel ? `.${v.sublevel}` : ''}`;
    if (v.name?.startsWith('criu-ts')) {
      // criu-ts answers with the CRIU version it stands in for (runc and go-criu compare it with what
      // they need) and names its own version.
      expect(v.name).toBe(`criu-ts ${printed}`);
      expect(v.major_number).toBeGreaterThanOrEqual(3);
    } else {
      expect(numbers).toBe(printed);
    }
    await client.close();
  });

  it('check() resolves; featureCheck() answers each feature asked', async () => {
    const client = CriuClient.swrk(BINARY);
    await client.check();
    const f = await client.featureCheck({ mem_track: true, lazy_pages: true, pidfd_store: true });
    for (const k of ['mem_track', 'lazy_pages', 'pidfd_store'] as const) expect(typeof f[k]).toBe('boolean');
    await client.close();
  });

  it('keepOpen: requests share one swrk until one goes without it; the swrk then exits 0', async () => {
    const client = CriuClient.swrk(BINARY);
    await client.version({ keepOpen: true });
    const [swrk] = swrkChildren();
    expect(swrk).toBeDefined();
    await client.featureCheck(undefined, { keepOpen: true });
    expect(swrkChildren()).toEqual([swrk]);
    await client.version(); // the last one: the server ends, the client waits for the exit
    expect(swrkChildren()).toEqual([]);

    // The same on one connection, with the child's exit status seen.
    const conn = CriuConnection.spawnSwrk({ binary: BINARY });
    const a = await conn.request({ type: CriuReqType.VERSION, keep_open: true });
    expect(a.resp.success).toBe(true);
    expect(conn.open).toBe(true);
    const b = await conn.request({ type: CriuReqType.VERSION });
    expect(b.resp.success).toBe(true);
    expect(conn.open).toBe(false);
    expect(await conn.close()).toEqual({ code: 0, signal: null });
  });

  it('requests without keepOpen run side by side, one swrk each', async () => {
    const client = CriuClient.swrk(BINARY);
    const [a, b] = await Promise.all([client.version(), client.version(), client.check()]);
    expect(a).toEqual(b);
    await client.close();
  });

  it('a kept connection whose swrk died: the next request says how it ended, the one after starts afresh', async () => {
    const client = CriuClient.swrk(BINARY);
    await client.version({ keepOpen: true });
    const [swrk] = swrkChildren();
    process.kill(swrk!, 'SIGKILL');
    const err = await client.version().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuConnectionError);
    expect((err as CriuConnectionError).exit).toEqual({ code: null, signal: 'SIGKILL' });
    expect((err as Error).message).toMatch(/^VERSION: .* exited \(killed by SIGKILL\)/);
    expect((await client.version()).major_number).toBeGreaterThanOrEqual(0);
    await client.close();
  });

  it('dumps a live process and restores it: the same pid counts on from where it was', async () => {
    const w = await counter();
    const dir = imagesDir();
    const client = CriuClient.swrk(BINARY);
    await client.dump({ pid: w.pid, imagesDir: dir, log_level: 4, log_file: 'dump.log' });
    expect(fs.existsSync(path.join(dir, 'inventory.img'))).toBe(true);
    expect(fs.existsSync(path.join(dir, `core-${w.pid}.img`))).toBe(true);
    const lines = fs.readFileSync(w.report, 'utf8').split('\n').length;
    reapDumped(w.pid);

    const { pid } = await client.restore({ imagesDir: dir, log_level: 4, log_file: 'restore.log' });
    track(pid);
    expect(pid).toBe(w.pid);
    await waitFor(
      () => fs.readFileSync(w.report, 'utf8').split('\n').length > lines + 3,
      'the restored counter to count',
    );
    await expectCountsOn(w.report, pid);
    await client.close();
  });

  it('leave_running: the dumped process runs on, untraced', async () => {
    const w = await counter();
    const client = CriuClient.swrk(BINARY);
    await client.dump({ pid: w.pid, imagesDir: imagesDir(), leave_running: true });
    expect(['S', 'R']).toContain(procState(w.pid));
    await expectCountsOn(w.report, w.pid);
    await client.close();
  });

  it('calls the notify callbacks in order, awaiting each; post-dump runs while the tree is frozen', async () => {
    const w = await counter();
    const dir = imagesDir();
    const client = CriuClient.swrk(BINARY);
    const seen: string[] = [];
    let stateAtPostDump = '';
    let imagesAtPostDump = false;
    await client.dump({
      pid: w.pid,
      imagesDir: dir,
      notify: {
        'pre-dump': async () => {
          seen.push('pre-dump');
          await new Promise((r) => setTimeout(r, 20)); // the server waits for the answer
          seen.push('pre-dump done');
        },
        'post-dump': async () => {
          stateAtPostDump = procState(w.pid);
          imagesAtPostDump = fs.existsSync(path.join(dir, 'inventory.img'));
          seen.push('post-dump');
        },
      },
    });
    expect(seen).toEqual(['pre-dump', 'pre-dump done', 'post-dump']);
    expect(stateAtPostDump).toBe('t'); // seized, stopped by the dumper
    expect(imagesAtPostDump).toBe(true);
    reapDumped(w.pid);

    const stages: Array<[NotifyStage, number | undefined]> = [];
    const { pid } = await client.restore({
      imagesDir: dir,
      notify: async (stage, p) => {
        stages.push([stage, p]);
      },
    });
    track(pid);
    const names = stages.map(([s]) => s);
    // CRIU's order: pre-restore first, post-restore (with the root's pid) before the tasks resume.
    expect(names[0]).toBe('pre-restore');
    expect(names).toContain('post-restore');
    expect(names.indexOf('post-restore')).toBeLessThan(names.indexOf('post-resume'));
    expect(names.indexOf('pre-resume')).toBeLessThan(names.indexOf('post-resume'));
    expect(stages.find(([s]) => s === 'post-restore')?.[1]).toBe(pid);
    await expectCountsOn(w.report, pid);
    await client.close();
  });

  it('a notify callback that throws fails the dump (CriuRpcError naming it); the tree runs on as before', async () => {
    const w = await counter();
    const before = snapshot(w.pid);
    const client = CriuClient.swrk(BINARY);
    const err = await client
      .dump({
        pid: w.pid,
        imagesDir: imagesDir(),
        notify: {
          'post-dump': async () => {
            throw new Error('storage is full');
          },
        },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuRpcError);
    const e = err as CriuRpcError;
    expect(e.requestType).toBe(CriuReqType.DUMP);
    expect(e.requestTypeName).toBe('DUMP');
    expect(e.message).toMatch(/^DUMP failed/);
    expect(e.message).toMatch(/the post-dump callback failed: storage is full/);
    await expectAsBefore(w.pid, before);
    await expectCountsOn(w.report, w.pid);
    await client.close();
  });

  it("waitPid() of a pid that is not the server's child: CriuRpcError (ECHILD)", async () => {
    const w = await counter(); // our child, not the swrk's
    const client = CriuClient.swrk(BINARY);
    const err = await client.waitPid(w.pid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuRpcError);
    expect((err as Error).message).toMatch(/^WAIT_PID failed/);
    // CRIU 4.2 fills cr_errno without its has_ flag, so its reply carries none; criu-ts sends ECHILD.
    if ((err as CriuRpcError).crErrno !== undefined) {
      expect((err as CriuRpcError).crErrno).toBe(10);
      expect((err as Error).message).toMatch(/\(errno 10, ECHILD\)/);
    }
    await client.close();
  });

  it('request(): a request type the server does not know gets a failed reply, not a hang', async () => {
    const client = CriuClient.swrk(BINARY);
    const resp = await client.request({ type: 99 });
    expect(resp.success).toBe(false);
    await client.close();
  });

  it('a client that goes away in the middle of a dump (post-dump): the tree runs on as before, the swrk exits', async () => {
    const w = await counter();
    const before = snapshot(w.pid);
    const client = CriuClient.swrk(BINARY);
    let stateThen = '';
    const err = await client
      .dump({
        pid: w.pid,
        imagesDir: imagesDir(),
        notify: {
          'post-dump': async () => {
            stateThen = procState(w.pid);
            await client.close(); // resolves once the swrk has exited
            expect(swrkChildren()).toEqual([]);
          },
        },
      })
      .catch((e: unknown) => e);
    expect(stateThen).toBe('t');
    expect(err).toBeInstanceOf(CriuConnectionError);
    expect((err as Error).message).toMatch(/^DUMP: the connection to .* was closed by the client/);
    await expectAsBefore(w.pid, before);
    await expectCountsOn(w.report, w.pid);
  });

  it('a dump the server refuses is a CriuRpcError with its cr_errno and cr_errmsg', async () => {
    // A pid that is not there: the pid of a process that ended.
    const w = await counter();
    reapDumped(w.pid);
    const client = CriuClient.swrk(BINARY);
    const err = await client.dump({ pid: w.pid, imagesDir: imagesDir() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuRpcError);
    const e = err as CriuRpcError;
    expect(e.response.success).toBe(false);
    expect(e.crErrno === undefined && e.crErrmsg === undefined).toBe(false);
    await client.close();
  });
});

/** A fake swrk that reads one datagram from fd 3 (dd: one read), then sleeps holding fd 3. */
const TAKE_REQUEST_AND_SLEEP = 'dd bs=65536 count=1 <&3 >/dev/null 2>&1; exec sleep 1000';

describe('CriuClient: connections that fail', () => {
  it('a swrk that exits at once: CriuConnectionError with its exit status and the end of its stderr', async () => {
    const bin = fakeSwrk('echo "swrk: cannot work today" >&2; exit 7');
    const client = CriuClient.swrk(bin);
    const err = await client.version().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuConnectionError);
    const e = err as CriuConnectionError;
    expect(e.exit).toEqual({ code: 7, signal: null });
    expect(e.requestType).toBe(CriuReqType.VERSION);
    expect(e.message).toMatch(
      /^VERSION: .*fake-swrk swrk 3 exited \(exit status 7\) .*: swrk: cannot work today$/,
    );
    await client.close();
  });

  it('a swrk that dies in the middle of a request: its signal, no hang', async () => {
    // Reads the request (dd: one read, one datagram), then waits forever without replying.
    const bin = fakeSwrk(TAKE_REQUEST_AND_SLEEP);
    const conn = CriuConnection.spawnSwrk({ binary: bin });
    track(conn.pid!); // killed by cleanup if the test fails before it ends it
    const pending = conn.request({ type: CriuReqType.DUMP, opts: { images_dir_fd: -1, pid: 1 } });
    await waitFor(() => {
      try {
        return fs.readFileSync(`/proc/${conn.pid}/cmdline`, 'utf8').startsWith('sleep');
      } catch {
        return false;
      }
    }, 'the fake swrk to take the request and sleep');
    process.kill(conn.pid!, 'SIGKILL');
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuConnectionError);
    expect((err as CriuConnectionError).exit).toEqual({ code: null, signal: 'SIGKILL' });
    expect((err as Error).message).toMatch(/^DUMP: .* exited \(killed by SIGKILL\) before it replied$/);
    expect(await conn.close()).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('a swrk that exits while a process it started still holds the socket: its exit status, no hang', async () => {
    // The background sleep keeps fd 3 (the socketpair's end) open after the shell exits.
    const bin = fakeSwrk('sleep 1000 & echo "holder $!" >&2; exit 3');
    const client = CriuClient.swrk(bin);
    const err = await client.version().catch((e: unknown) => e);
    const holder = Number(/holder (\d+)/.exec((err as CriuConnectionError).stderr ?? '')?.[1]);
    if (holder > 0) track(holder);
    expect(err).toBeInstanceOf(CriuConnectionError);
    expect((err as CriuConnectionError).exit).toEqual({ code: 3, signal: null });
    expect(holder).toBeGreaterThan(0);
    expect(procState(holder)).not.toBe('gone');
    await client.close();
  });

  it('a reply that is not a criu_resp: CriuConnectionError naming the message', async () => {
    // Answers every request with a byte that cannot start a protobuf message.
    const bin = fakeSwrk(`printf '\\377\\377\\377' >&3; exec sleep 1000`);
    const conn = CriuConnection.spawnSwrk({ binary: bin });
    track(conn.pid!); // killed by cleanup if the test fails before it ends it
    const err = await conn.request({ type: CriuReqType.VERSION }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuConnectionError);
    expect((err as Error).message).toMatch(/^VERSION: the reply of .* is not a criu_resp: criu_resp/);
    const pid = conn.pid!;
    process.kill(pid, 'SIGKILL');
    expect(await conn.close()).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('a reply longer than maxDatagram: CriuConnectionError saying it was cut, not a garbled reply', async () => {
    const conn = CriuConnection.spawnSwrk({ binary: BINARY, maxDatagram: 4 });
    const err = await conn.request({ type: CriuReqType.VERSION }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuConnectionError);
    expect((err as Error).message).toMatch(
      /^VERSION: bad reply from .*: a datagram longer than 4 bytes arrived and was truncated/,
    );
    await conn.close();
  });

  it('the NOTIFY exchange on the wire: notify_scripts set, each notification answered with notify_success', async () => {
    // A fake swrk that takes the request, sends one post-dump notification, takes the answer and exits 5.
    const dir = tempDir('criu-ts-rpc-wire-');
    fs.writeFileSync(
      path.join(dir, 'notify'),
      encodeResponse({ type: CriuReqType.NOTIFY, success: true, notify: { script: 'post-dump' } }),
    );
    const bin = fakeSwrk(
      [
        `dd bs=65536 count=1 <&3 of=${dir}/req 2>/dev/null`,
        `cat ${dir}/notify >&3`,
        `dd bs=65536 count=1 <&3 of=${dir}/answer 2>/dev/null`,
        'exit 5',
      ].join('; '),
    );
    const client = CriuClient.swrk(bin);
    let called = 0;
    const ok = await client
      .dump({ pid: 1234, notify: { 'post-dump': async () => void called++ } })
      .catch((e: unknown) => e);
    expect(called).toBe(1);
    const req = decodeRequest(fs.readFileSync(path.join(dir, 'req')));
    expect(req.type).toBe(CriuReqType.DUMP);
    expect(req.opts?.pid).toBe(1234);
    expect(req.opts?.notify_scripts).toBe(true);
    expect(decodeRequest(fs.readFileSync(path.join(dir, 'answer')))).toEqual({
      type: CriuReqType.NOTIFY,
      notify_success: true,
    });
    // No final reply: the exit is the error.
    expect(ok).toBeInstanceOf(CriuConnectionError);
    expect((ok as CriuConnectionError).exit).toEqual({ code: 5, signal: null });

    const failed = await client
      .dump({
        pid: 1234,
        notify: {
          'post-dump': async () => {
            throw new Error('nope');
          },
        },
      })
      .catch((e: unknown) => e);
    expect(decodeRequest(fs.readFileSync(path.join(dir, 'answer')))).toEqual({
      type: CriuReqType.NOTIFY,
      notify_success: false,
    });
    expect(failed).toBeInstanceOf(CriuConnectionError);
    expect((failed as Error).message).toMatch(
      /^DUMP: .* exited \(exit status 5\) before it replied \(after the post-dump callback failed: nope\)$/,
    );
    await client.close();
  });

  it('dump() without a pid through swrk is refused before anything starts (the swrk child is in the tree)', async () => {
    const client = CriuClient.swrk(BINARY);
    await expect(client.dump({ imagesDir: imagesDir() })).rejects.toThrow(
      /^dump: opts\.pid is needed with swrk/,
    );
    expect(swrkChildren()).toEqual([]);
    await client.close();
  });

  it('a binary that does not exist: CriuConnectionError with ENOENT', async () => {
    const client = CriuClient.swrk('/nonexistent/criu-ts');
    await expect(client.check()).rejects.toThrow(
      /^CHECK: could not start \/nonexistent\/criu-ts swrk 3: spawn \/nonexistent\/criu-ts ENOENT$/,
    );
    await client.close();
  });

  it('a service socket nobody listens on: CriuConnectionError, no fd left', async () => {
    const sock = path.join(tempDir('criu-ts-rpc-sock-'), 'criu.sock');
    const client = CriuClient.service(sock);
    await expect(client.version()).rejects.toThrow(
      /could not connect to the CRIU service at .*criu\.sock: no socket there/,
    );
    await client.close();
  });

  it('close() during a request ends it with a clear error and waits for the swrk', async () => {
    const bin = fakeSwrk(TAKE_REQUEST_AND_SLEEP);
    const conn = CriuConnection.spawnSwrk({ binary: bin });
    track(conn.pid!); // killed by cleanup if the test fails before it ends it
    const pending = conn.request({ type: CriuReqType.VERSION });
    await waitFor(() => {
      try {
        return fs.readFileSync(`/proc/${conn.pid}/cmdline`, 'utf8').startsWith('sleep');
      } catch {
        return false;
      }
    }, 'the fake swrk to take the request and sleep');
    const closing = conn.close();
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuConnectionError);
    expect((err as Error).message).toMatch(/closed by the client before it replied/);
    // This fake swrk does not read its socket any more, so it does not see the end: stop it ourselves.
    process.kill(conn.pid!, 'SIGTERM');
    expect(await closing).toEqual({ code: null, signal: 'SIGTERM' });
  });
});

describe(`CriuClient through \`${BINARY} service\``, () => {
  async function service(): Promise<string> {
    const sock = path.join(tempDir('criu-ts-rpc-svc-'), 'criu.sock');
    // Not startCommand: criu-ts's command is a shell script that execs node, so its cmdline is not argv.
    const pid = spawnClean([BINARY, 'service', '--address', sock]);
    await waitFor(
      () => unixListening(sock) || procState(pid) === 'gone' || procState(pid) === 'Z',
      `a service listening on ${sock}`,
    );
    expect(procState(pid)).not.toBe('gone');
    return sock;
  }

  it('dump() without a pid dumps this kind of Node program itself; restored, it gets restored: true and runs on', async () => {
    const sock = await service();
    const dir = imagesDir();
    const out = path.join(tempDir('criu-ts-rpc-self-'), 'out');
    const pid = spawnClean([process.execPath, path.join(import.meta.dirname, 'self-dump.mjs'), sock, dir], {
      stdout: out,
    });
    await waitFor(() => fs.existsSync(out) && fs.readFileSync(out, 'utf8').startsWith('READY'), 'READY');
    // The dump killed it (a dump without leave_running): its zombie is ours.
    await waitFor(() => procState(pid) === 'Z' || procState(pid) === 'gone', 'the dumped program to die');
    reapDumped(pid);
    expect(fs.readFileSync(out, 'utf8')).toBe(`READY ${pid}\n`);
    const client = CriuClient.service(sock);
    expect((await client.restore({ imagesDir: dir, log_file: 'restore.log' })).pid).toBe(pid);
    await client.close();
    track(pid);
    await waitFor(() => /REPLY/.test(fs.readFileSync(out, 'utf8')), 'the restored program to answer', 30_000);
    expect(fs.readFileSync(out, 'utf8')).toMatch(/^READY \d+\nREPLY restored=true ticks=\d+\n$/);
  });

  it('version() and check() over the service socket', async () => {
    const client = CriuClient.service(await service());
    const v = await client.version();
    expect(v.major_number).toBeGreaterThanOrEqual(0);
    await client.check();
    await client.close();
  });

  it('a client that goes away in the middle of a dump: the tree runs on, the service serves the next client', async () => {
    const sock = await service();
    const w = await counter();
    const before = snapshot(w.pid);
    const client = CriuClient.service(sock);
    const err = await client
      .dump({ pid: w.pid, imagesDir: imagesDir(), notify: { 'post-dump': () => client.close() } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuConnectionError);
    await expectAsBefore(w.pid, before);
    await expectCountsOn(w.report, w.pid);
    expect((await CriuClient.service(sock).version()).major_number).toBeGreaterThanOrEqual(0);
  });

  it('dumps a live process with notify callbacks and restores it through the service', async () => {
    const sock = await service();
    const w = await counter();
    const dir = imagesDir();
    const client = CriuClient.service(sock);
    const seen: string[] = [];
    await client.dump({ pid: w.pid, imagesDir: dir, notify: (stage) => void seen.push(stage) });
    expect(seen).toContain('post-dump');
    reapDumped(w.pid);
    const { pid } = await client.restore({ imagesDir: dir });
    track(pid);
    expect(pid).toBe(w.pid);
    await expectCountsOn(w.report, pid);
    await client.close();
  });
});
