// `criu-ts page-server`: CRIU's page server command (auto-bound port, -d, --pidfile, --status-fd, one
// session then exit), fed by criu-ts's own client and by CRIU 4.2's `criu dump --page-server` (where
// CRIU is here), the images then restored by criu-ts and by CRIU, the task's memory checked from outside.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { PageServerClient, PageServerListener } from '@criu-ts/page-server';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  CRIU_TS,
  cleanup,
  oneLineFailure,
  procState,
  REPO,
  readLines,
  restoreDetached,
  runCli,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

const CRIU = process.env.CRIU_BIN ?? '/tmp/criu-zdtm-main/criu/criu';
const haveCriu = fs.existsSync(CRIU);

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** `criu-ts page-server -d` into `dir`: the daemon's pid and its auto-bound port (from the log). */
async function startDaemon(dir: string): Promise<{ pid: number; port: number }> {
  const pidfile = path.join(dir, 'ps.pid');
  const r = await runCli([
    'page-server',
    '-D',
    dir,
    '--address',
    '127.0.0.1',
    '-d',
    '--pidfile',
    pidfile,
    '-o',
    'ps.log',
    '-v4',
  ]);
  expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
  const pid = Number(fs.readFileSync(pidfile, 'utf8'));
  track(pid);
  const m = /Using (\d+) port/.exec(fs.readFileSync(path.join(dir, 'ps.log'), 'utf8'));
  expect(m, 'the log names the port').not.toBeNull();
  return { pid, port: Number(m![1]) };
}

/** The page server's files of `from` copied next to the other images in `to`, as a user moves them. */
function merge(from: string, to: string): void {
  for (const f of fs.readdirSync(from))
    if (/^(pagemap-|pages-)/.test(f)) fs.copyFileSync(path.join(from, f), path.join(to, f));
}

describe('criu-ts page-server', () => {
  it('-d with no port: a free port in the log, one session into -D, then the daemon exits', async () => {
    const dir = tempDir('ps-cli-');
    const { pid, port } = await startDaemon(dir);
    expect(procState(pid)).not.toBe('gone');
    const c = await PageServerClient.connect({ host: '127.0.0.1', port });
    const t = await c.open('task', 1234);
    t.addPresent(0x400000n, 1, Buffer.alloc(4096, 7));
    await c.close();
    await waitFor(() => procState(pid) === 'gone' || procState(pid) === 'Z', 'the daemon exits');
    expect(fs.readdirSync(dir).sort()).toEqual(['pagemap-1234.img', 'pages-65537.img', 'ps.log', 'ps.pid']);
    expect(fs.readFileSync(path.join(dir, 'ps.log'), 'utf8')).toMatch(/Session over: 1 pagemaps, 1 pages/);
  });

  it('--status-fd: a zero byte once it listens; a broken stream: exit 1, one line, no image', async () => {
    const dir = tempDir('ps-cli-');
    const child = spawn(
      CRIU_TS,
      ['page-server', '-D', dir, '--address', '127.0.0.1', '--port', '0', '--status-fd', '3', '-v3'],
      {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      },
    );
    track(child.pid!);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const status = await new Promise<Buffer>((resolve) =>
      (child.stdio[3] as NodeJS.ReadableStream).once('data', resolve),
    );
    expect([...status]).toEqual([0]);
    const port = Number(/Using (\d+) port/.exec(stderr)![1]);
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => undefined);
    // OPEN2 of pid 5 (CRIU 4.2's layout), then an ADD_F of 2 pages with one page of data, then EOF.
    const h = (cmd: number, n: bigint, vaddr: bigint) => {
      const b = Buffer.alloc(32);
      b.writeUInt32LE(cmd, 0);
      b.writeBigUInt64LE(n, 8);
      b.writeBigUInt64LE(vaddr, 16);
      b.writeBigUInt64LE((5n << 8n) | 1n, 24);
      return b;
    };
    s.end(Buffer.concat([h(4, 0n, 0n), h((4 << 16) | 6, 2n, 0x1000n), Buffer.alloc(4096)]));
    const code = await exited;
    const errors = stderr.split('\n').filter((l) => l.startsWith('criu-ts:'));
    expect(code).toBe(1);
    expect(errors).toEqual([
      'criu-ts: the connection was closed before CLOSE (4096 bytes of page data missing): the data were not flushed',
    ]);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('refuses what it does not have by name', async () => {
    const dir = tempDir('ps-cli-');
    expect(oneLineFailure(await runCli(['page-server', '-D', dir, '--lazy-pages']))).toMatch(
      /--lazy-pages.*not in criu-ts yet/,
    );
    expect(oneLineFailure(await runCli(['page-server', '-D', dir, '--port', 'x']))).toMatch(
      /invalid port: x/,
    );
  });
});

describe.skipIf(!haveCriu)("CRIU 4.2's dump into criu-ts's page server (CRIU_BIN)", () => {
  it('memory on the page server, the rest in -D: merged, restored by criu-ts and by CRIU', async () => {
    const w = startWorkload('memhog', ['32']);
    const sum = (await waitForLine(w.report, /^SUM /, { pid: w.pid })).trim();
    const d1 = path.join(tempDir('ps-criu-'), 'd1');
    fs.mkdirSync(d1);
    const d2 = tempDir('ps-criu-');
    const { pid: server, port } = await startDaemon(d2);
    const dump = await new Promise<{ code: number; err: string }>((resolve) => {
      const c = spawn(
        CRIU,
        [
          'dump',
          '-t',
          String(w.pid),
          '-D',
          d1,
          '--page-server',
          '--address',
          '127.0.0.1',
          '--port',
          String(port),
          '-o',
          'dump.log',
          '-v4',
        ],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let err = '';
      c.stderr!.setEncoding('utf8').on('data', (d: string) => {
        err += d;
      });
      c.on('close', (code) => resolve({ code: code ?? -1, err }));
    });
    const dumpLog = () =>
      fs.existsSync(path.join(d1, 'dump.log'))
        ? fs.readFileSync(path.join(d1, 'dump.log'), 'utf8')
        : dump.err;
    expect(dump.code, dumpLog().slice(-2000)).toBe(0);
    killAndReap(w.pid);
    await waitFor(() => procState(server) === 'gone' || procState(server) === 'Z', 'the page server exits');
    // CRIU wrote no memory locally; the page server has it all.
    expect(fs.readdirSync(d1).filter((f) => /^pag/.test(f))).toEqual([]);
    expect(
      fs
        .readdirSync(d2)
        .filter((f) => /^pag/.test(f))
        .sort(),
    ).toEqual([`pagemap-${w.pid}.img`, 'pages-65537.img']);
    merge(d2, d1);
    const r2 = `${d1}-criu`;
    fs.cpSync(d1, r2, { recursive: true });

    // criu-ts restores it: the same memory (the workload recomputes its sum on SIGUSR1).
    await restoreDetached(d1);
    const before = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    await waitFor(() => readLines(w.report).length > before, 'a SUM line after the restore');
    expect(readLines(w.report).at(-1)).toBe(sum);
    killAndReap(w.pid);

    // And CRIU restores the same merged images.
    const restore = await new Promise<number>((resolve) => {
      const c = spawn(CRIU, ['restore', '-D', r2, '-d', '-o', 'restore.log'], { stdio: 'ignore' });
      c.on('close', (code) => resolve(code ?? -1));
    });
    expect(restore, fs.readFileSync(path.join(r2, 'restore.log'), 'utf8').slice(-2000)).toBe(0);
    track(w.pid);
    const n = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    await waitFor(() => readLines(w.report).length > n, 'a SUM line after CRIU restored it');
    expect(readLines(w.report).at(-1)).toBe(sum);
  });
});

/** `criu-ts dump --page-server` of `pid` into `d1`, memory to 127.0.0.1:`port`. */
function dumpTo(pid: number, d1: string, port: number, extra: string[] = []) {
  return runCli([
    'dump',
    '-t',
    String(pid),
    '-D',
    d1,
    '--page-server',
    '--address',
    '127.0.0.1',
    '--port',
    String(port),
    ...extra,
  ]);
}

describe('criu-ts dump --page-server', () => {
  it("into criu-ts's page server: no memory in -D; merged, restored with the same memory", async () => {
    const w = startWorkload('memhog', ['24']);
    const sum = (await waitForLine(w.report, /^SUM /, { pid: w.pid })).trim();
    const d1 = tempDir('ps-dump-');
    const d2 = tempDir('ps-dump-');
    const { pid: server, port } = await startDaemon(d2);
    const r = await dumpTo(w.pid, d1, port);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    killAndReap(w.pid);
    await waitFor(() => procState(server) === 'gone' || procState(server) === 'Z', 'the page server exits');
    expect(fs.readdirSync(d1).filter((f) => /^pag/.test(f))).toEqual([]);
    expect(
      fs
        .readdirSync(d2)
        .filter((f) => /^pag/.test(f))
        .sort(),
    ).toEqual([`pagemap-${w.pid}.img`, 'pages-65537.img']);
    merge(d2, d1);
    await restoreDetached(d1);
    const before = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    await waitFor(() => readLines(w.report).length > before, 'a SUM line after the restore');
    expect(readLines(w.report).at(-1)).toBe(sum);
  });

  it('--ps-socket: the memory goes on a socket the caller connected; FORCE_CLOSE ends the server', async () => {
    const w = startWorkload('memhog', ['16']);
    const sum = (await waitForLine(w.report, /^SUM /, { pid: w.pid })).trim();
    const d1 = tempDir('ps-sock-');
    const d2 = tempDir('ps-sock-');
    const { pid: server, port } = await startDaemon(d2);
    const sock = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    // The caller keeps its end open: only FORCE_CLOSE tells the server the session is over.
    const r = await new Promise<{ code: number; err: string }>((resolve) => {
      const c = spawn(CRIU_TS, ['dump', '-t', String(w.pid), '-D', d1, '--page-server', '--ps-socket', '3'], {
        stdio: ['ignore', 'ignore', 'pipe', sock],
      });
      let err = '';
      c.stderr!.setEncoding('utf8').on('data', (d: string) => {
        err += d;
      });
      c.on('close', (code) => resolve({ code: code ?? -1, err }));
    });
    expect(r).toEqual({ code: 0, err: '' });
    killAndReap(w.pid);
    await waitFor(() => procState(server) === 'gone' || procState(server) === 'Z', 'the page server exits');
    sock.destroy();
    expect(fs.readdirSync(d1).filter((f) => /^pag/.test(f))).toEqual([]);
    merge(d2, d1);
    await restoreDetached(d1);
    const before = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    await waitFor(() => readLines(w.report).length > before, 'a SUM line after the restore');
    expect(readLines(w.report).at(-1)).toBe(sum);
  });

  it('no page server there: the dump fails in one line and the tree runs on', async () => {
    const w = startWorkload('memhog', ['1']);
    await waitForLine(w.report, /^SUM /, { pid: w.pid });
    const d1 = tempDir('ps-dump-');
    // A port nobody listens on: one just bound and closed.
    const l = await PageServerListener.listen({ host: '127.0.0.1' });
    const port = l.port;
    l.close();
    const line = oneLineFailure(await dumpTo(w.pid, d1, port));
    expect(line).toMatch(new RegExp(`cannot connect to the page server 127.0.0.1:${port}: ECONNREFUSED`));
    expect(['S', 'R']).toContain(procState(w.pid));
    expect(
      oneLineFailure(await runCli(['dump', '-t', String(w.pid), '-D', d1, '--page-server', '--port', '1'])),
    ).toMatch(/--page-server needs --address and --port/);
  });

  it('a page server that goes away mid-dump: the dump fails and the tree runs on', async () => {
    const w = startWorkload('memhog', ['64']);
    const sum = (await waitForLine(w.report, /^SUM /, { pid: w.pid })).trim();
    const l = await PageServerListener.listen({ host: '127.0.0.1' });
    // Answers OPEN2, takes a little of the data, then drops the connection.
    void l.accept().then((s) => {
      let got = 0;
      s.on('data', (b: Buffer) => {
        if (got === 0) s.write(Buffer.of(0));
        got += b.length;
        if (got > 1 << 20) s.destroy();
      });
      s.on('error', () => undefined);
    });
    const r = await dumpTo(w.pid, tempDir('ps-dump-'), l.port);
    l.close();
    expect(oneLineFailure(r)).toMatch(/page server/);
    expect(['S', 'R']).toContain(procState(w.pid));
    const before = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    await waitFor(() => readLines(w.report).length > before, 'a SUM line');
    expect(readLines(w.report).at(-1)).toBe(sum);
  });
});

describe.skipIf(!haveCriu)("criu-ts dump into CRIU 4.2's page server (CRIU_BIN)", () => {
  it('CRIU receives the memory; CRIU restores the merged images', async () => {
    const w = startWorkload('memhog', ['24']);
    const sum = (await waitForLine(w.report, /^SUM /, { pid: w.pid })).trim();
    const d1 = tempDir('ps-dump-');
    const d2 = tempDir('ps-dump-');
    // CRIU's page server: no --port is its auto-bind (4.2 refuses --port 0); the port is in its log.
    const started = await new Promise<number>((resolve) => {
      const c = spawn(
        CRIU,
        [
          'page-server',
          '-D',
          d2,
          '--address',
          '127.0.0.1',
          '-d',
          '--pidfile',
          'ps.pid',
          '-o',
          'ps.log',
          '-v4',
        ],
        {
          stdio: 'ignore',
        },
      );
      c.on('close', (code) => resolve(code ?? -1));
    });
    expect(started).toBe(0);
    const server = Number(fs.readFileSync(path.join(d2, 'ps.pid'), 'utf8'));
    track(server);
    const port = Number(/Using (\d+) port/.exec(fs.readFileSync(path.join(d2, 'ps.log'), 'utf8'))![1]);
    const r = await dumpTo(w.pid, d1, port);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    killAndReap(w.pid);
    await waitFor(
      () => procState(server) === 'gone' || procState(server) === 'Z',
      "CRIU's page server exits",
    );
    expect(fs.readFileSync(path.join(d2, 'ps.log'), 'utf8')).toMatch(/Session over/);
    merge(d2, d1);
    const restore = await new Promise<number>((resolve) => {
      const c = spawn(CRIU, ['restore', '-D', d1, '-d', '-o', 'restore.log'], { stdio: 'ignore' });
      c.on('close', (code) => resolve(code ?? -1));
    });
    expect(restore, fs.readFileSync(path.join(d1, 'restore.log'), 'utf8').slice(-2000)).toBe(0);
    track(w.pid);
    const n = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    await waitFor(() => readLines(w.report).length > n, 'a SUM line after CRIU restored it');
    expect(readLines(w.report).at(-1)).toBe(sum);
  });
});
