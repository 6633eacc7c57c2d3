// Established TCP connections (--tcp-established): a client in the tree talking to a server outside it
// (this test process) goes on through dump, kill and restore, noticing only a pause: no reconnect, no
// lost or doubled byte, and the server never sees an end or a reset. Megabytes queued both ways at the
// dump (unread by either side) all arrive after restore. The network lock holds the connection from
// dump to restore (nftables) and is lifted afterwards.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { ImageDir, type InventoryEntry } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  cliDump,
  cliKillAndRestore,
  critDecodeAll,
  entries,
  haveCrit,
  onCleanup,
  PYTHON,
  procState,
  readLines,
  runCli,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';
import {
  dumpKillRestore as dumpKillRestoreLocked,
  ECHO_CLIENT_FAILING_DUMP_PY,
  ECHO_CLIENT_PY,
  haveNft,
  nftLockTables,
  startServer,
  viaNftables,
} from './tcp-helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

// Fills the connection with as much as it takes without blocking, then waits; on SIGUSR1 reads what
// the server had sent meanwhile and checks it.
const QUEUES_CLIENT_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
c = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
c.setblocking(False)
pattern = bytes(range(251)) * 50000
sent = 0
while True:
    try: sent += c.send(pattern[sent % 251:sent % 251 + 65536])
    except BlockingIOError: break
out.write('SENT %d\\n' % sent)
signal.sigwait([signal.SIGUSR1])
c.setblocking(True)
want = int(sys.argv[3]); got = b''
while len(got) < want:
    d = c.recv(1 << 20)
    if not d: break
    got += d
expect = (bytes(range(7, 256)) * (want // 249 + 1))[:want]
out.write('READ %s\\n' % ('OK' if got == expect else 'BAD %d' % len(got)))
`;

// An echo server on epoll (python's selectors picks EpollSelector on Linux), for a client outside.
const EPOLL_ECHO_SERVER_PY = `
import os, selectors, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
sel = selectors.DefaultSelector()
assert type(sel).__name__ == 'EpollSelector'
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(8); srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
out.write('PORT %d\\n' % srv.getsockname()[1])
while True:
    for key, _ in sel.select():
        if key.fileobj is srv:
            c, _ = srv.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
        else:
            d = key.fileobj.recv(65536)
            if d: key.fileobj.sendall(d)
            else: sel.unregister(key.fileobj); key.fileobj.close()
`;

/** Bytes the server's end of the connection to local port `port` has sent and not had acknowledged. */
function sendQueue(port: number): number | undefined {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], {
    encoding: 'utf8',
  });
  const f = out.trim().split(/\s+/);
  return f.length >= 2 ? Number(f[1]) : undefined;
}

/**
 * A client in this process that sends numbered lines one at a time and checks each echo: what it
 * got right so far, and any trouble (a wrong echo, an end, an error).
 */
function echoingClient(port: number): { checked: () => number; troubles: string[] } {
  const c = net.createConnection(port, '127.0.0.1');
  const troubles: string[] = [];
  let n = 0;
  let buf = '';
  const next = () => c.write(`${n + 1}\n`);
  c.on('connect', next);
  c.on('data', (d) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line !== String(n + 1)) troubles.push(`echo ${line} for ${n + 1}`);
      n++;
      setTimeout(next, 5);
    }
  });
  c.on('end', () => troubles.push('end'));
  c.on('error', (e) => troubles.push(`error ${e.message}`));
  onCleanup(() => c.destroy());
  return { checked: () => n, troubles };
}

// Both ends in the tree: the parent serves an echo over loopback TCP, its child is the echo client,
// writing each checked line to the report.
const BOTH_ENDS_PY = `
import os, socket, sys
os.closerange(3, 65536)
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
if os.fork() == 0:
    port = srv.getsockname()[1]; srv.close()
    sys.argv = [sys.argv[0], sys.argv[1], str(port)]
    exec(sys.argv_client)
c, _ = srv.accept(); srv.close()
while True:
    d = c.recv(4096)
    if not d: break
    c.sendall(d)
`;

const dumpKillRestore = (pid: number) => dumpKillRestoreLocked(pid, viaNftables);

describe.skipIf(!haveNft)('criu-ts restore: established TCP connections', () => {
  it('an echo client keeps its connection: no reconnect, no lost or doubled line, no end or reset at the server', async () => {
    const srv = await startServer((s) => s.pipe(s));
    const d = tempDir('criu-ts-tcp-');
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', ECHO_CLIENT_PY, report, String(srv.port)], { setsid: true });
    track(pid);
    await waitForLine(report, /^20$/, { pid });
    const dir = await dumpKillRestore(pid);
    const n = readLines(report).length;
    await waitFor(() => readLines(report).length > n + 30, 'the client to go on');
    const lines = readLines(report);
    expect(lines.filter((l) => !/^\d+$/.test(l))).toEqual([]);
    expect(lines.map(Number).every((v, i) => v === i + 1)).toBe(true);
    expect(srv.sockets).toHaveLength(1);
    expect(srv.troubles).toEqual([]);
    if (haveCrit) {
      const img = fs.readdirSync(dir).find((f) => f.startsWith('tcp-stream-'))!;
      const { failures, decoded } = critDecodeAll(dir, [img]);
      expect(failures).toEqual([]);
      expect(entries(decoded.get(img))).toHaveLength(1);
    }
  });

  it("the lock is CRIU's: table inet CRIU-<inventory's dump_criu_run_id, cut as CRIU cuts it> while dumped, deleted by restore", async () => {
    const srv = await startServer((s) => s.pipe(s));
    const report = path.join(tempDir('criu-ts-tcp-names-'), 'report');
    const pid = startTraceable([PYTHON, '-c', ECHO_CLIENT_PY, report, String(srv.port)], { setsid: true });
    track(pid);
    await waitForLine(report, /^20$/, { pid });
    let table = '';
    await dumpKillRestoreLocked(pid, {
      ...viaNftables,
      whileDumped: async (dir) => {
        const inv = ImageDir.open(dir).inventory();
        expect(inv.network_lock_method).toBe(1); // nftables, CRIU's number
        expect(inv.dump_criu_run_id).toMatch(
          /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
        );
        // CRIU prints "inet CRIU-<id>" into 32 bytes: 21 characters of the id are left.
        table = `CRIU-${inv.dump_criu_run_id!.slice(0, 21)}`;
        expect(nftLockTables()).toContain(table);
        const text = execFileSync('nft', ['list', 'table', 'inet', table], { encoding: 'utf8' });
        for (const chain of ['input', 'output']) {
          const body = new RegExp(`chain ${chain} \\{([^}]*)\\}`).exec(text)?.[1] ?? '';
          expect(body).toContain(`type filter hook ${chain} priority filter; policy accept;`);
          expect(body).toContain('meta mark 0x0000c114 accept');
          expect(body).toContain('ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop');
          expect(body).toContain('ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop');
        }
      },
    });
    expect(nftLockTables()).not.toContain(table);
    const n = readLines(report).length;
    await waitFor(() => readLines(report).length > n + 10, 'the client to go on');
    expect(srv.troubles).toEqual([]);
  });

  it('images without a connection whose dump made a lock table anyway (as CRIU does at every nftables dump): restore deletes it', async () => {
    const w = startWorkload('sleeper', ['600000']);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    const dir = await cliDump(w.pid, ['--network-lock', 'nftables']);
    const table = `CRIU-${ImageDir.open(dir).inventory().dump_criu_run_id!.slice(0, 21)}`;
    expect(nftLockTables()).not.toContain(table); // criu-ts makes one only to lock something
    execFileSync('nft', ['-f', '-'], {
      input: [
        `add table inet ${table}`,
        `add chain inet ${table} input { type filter hook input priority 0; }`,
      ].join('\n'),
    });
    onCleanup(() => {
      if (nftLockTables().includes(table)) execFileSync('nft', ['delete', 'table', 'inet', table]);
    });
    await cliKillAndRestore(dir);
    expect(nftLockTables()).not.toContain(table);
  });

  it("images of criu-ts's older lock (no run id, table inet criu_ts): restore deletes their elements", async () => {
    const srv = await startServer((s) => s.pipe(s));
    const report = path.join(tempDir('criu-ts-tcp-legacy-'), 'report');
    const pid = startTraceable([PYTHON, '-c', ECHO_CLIENT_PY, report, String(srv.port)], { setsid: true });
    track(pid);
    await waitForLine(report, /^20$/, { pid });
    const legacy = () => {
      try {
        return execFileSync('nft', ['list', 'set', 'inet', 'criu_ts', 'lock4'], { encoding: 'utf8' });
      } catch {
        return '';
      }
    };
    let element = '';
    await dumpKillRestoreLocked(pid, {
      ...viaNftables,
      whileDumped: async (dir) => {
        // The images and the lock as criu-ts wrote them before it locked as CRIU does.
        const img = ImageDir.open(dir);
        const { dump_criu_run_id: runId, ...older } = img.inventory();
        img.write('inventory', undefined, [older as InventoryEntry]);
        const sk = img.files().find((f) => f.isk && f.isk.dst_port === srv.port)!.isk!;
        element = `127.0.0.1 . ${sk.src_port} . 127.0.0.1 . ${srv.port}`;
        const hadTable = legacy() !== '';
        execFileSync('nft', ['-f', '-'], {
          input: [
            'add table inet criu_ts',
            'add chain inet criu_ts input { type filter hook input priority -300; policy accept; }',
            'add set inet criu_ts lock4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }',
            'add set inet criu_ts lock6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }',
            'add rule inet criu_ts input ip saddr . tcp sport . ip daddr . tcp dport @lock4 drop',
            `add element inet criu_ts lock4 { ${element}, 127.0.0.1 . ${srv.port} . 127.0.0.1 . ${sk.src_port} }`,
            `delete table inet CRIU-${runId!.slice(0, 21)}`,
          ].join('\n'),
        });
        if (!hadTable) onCleanup(() => execFileSync('nft', ['delete', 'table', 'inet', 'criu_ts']));
        expect(legacy()).toContain(element);
      },
    });
    expect(legacy()).not.toContain(element);
    const n = readLines(report).length;
    await waitFor(() => readLines(report).length > n + 10, 'the client to go on');
    expect(srv.troubles).toEqual([]);
  });

  it('with no lock at all (--network-lock skip) the killed socket vanishes without a FIN or an RST', async () => {
    // A quiet connection: one line echoed and acknowledged, then nothing until SIGUSR1. A FIN or an
    // RST sent when the dump kills the client would reach the server at once, long before the
    // restore is done; the server must see neither, and the same connection goes on after it.
    const srv = await startServer((s) => s.pipe(s));
    const d = tempDir('criu-ts-tcp-silent-');
    const report = path.join(d, 'report');
    const client = [
      'import os, signal, socket, sys',
      'os.closerange(3, 65536)',
      "out = open(sys.argv[1], 'a', buffering=1)",
      'signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])',
      "c = socket.create_connection(('127.0.0.1', int(sys.argv[2])))",
      "c.sendall(b'one\\n'); out.write('GOT %s\\n' % c.recv(100).decode().strip())",
      'signal.sigwait([signal.SIGUSR1])',
      "c.sendall(b'two\\n'); out.write('GOT %s\\n' % c.recv(100).decode().strip())",
      'signal.sigwait([signal.SIGUSR1])  # stays connected: its exit would send a FIN',
    ].join('\n');
    const pid = startTraceable([PYTHON, '-c', client, report, String(srv.port)], { setsid: true });
    track(pid);
    await waitForLine(report, /^GOT one$/, { pid });
    await waitFor(() => procState(pid) === 'S' && sendQueue(srv.port) === 0, 'all acknowledged, both quiet');
    const dir = path.join(d, 'images');
    const r = await runCli([
      'dump',
      '-t',
      String(pid),
      '-D',
      dir,
      '--tcp-established',
      '--network-lock',
      'skip',
    ]);
    if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
    await cliKillAndRestore(dir, ['--tcp-established']);
    expect(srv.troubles).toEqual([]);
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^GOT two$/, { pid });
    expect(srv.sockets).toHaveLength(1);
    expect(srv.troubles).toEqual([]);
  });

  it('an epoll echo server keeps its client outside: the client notices only a pause, no lost or doubled byte', async () => {
    const d = tempDir('criu-ts-tcp-epoll-');
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', EPOLL_ECHO_SERVER_PY, report], { setsid: true });
    track(pid);
    const port = Number((await waitForLine(report, /^PORT /, { pid })).split(' ')[1]);
    const client = echoingClient(port);
    await waitFor(() => client.checked() >= 20, 'the first echoes');
    await dumpKillRestore(pid);
    const n = client.checked();
    await waitFor(() => client.checked() >= n + 30, 'echoes after restore');
    expect(client.troubles).toEqual([]);
  });

  it('both ends in the tree (an echo server and its client child over loopback): every line once, in order', async () => {
    const d = tempDir('criu-ts-tcp-both-');
    const report = path.join(d, 'report');
    const script = BOTH_ENDS_PY.replace('exec(sys.argv_client)', `exec(${JSON.stringify(ECHO_CLIENT_PY)})`);
    const pid = startTraceable([PYTHON, '-c', script, report], { setsid: true });
    track(pid);
    await waitForLine(report, /^20$/, { pid });
    await dumpKillRestore(pid);
    const n = readLines(report).length;
    await waitFor(() => readLines(report).length > n + 30, 'the client to go on');
    const lines = readLines(report);
    expect(lines.filter((l) => !/^\d+$/.test(l))).toEqual([]);
    expect(lines.map(Number).every((v, i) => v === i + 1)).toBe(true);
  });

  it('megabytes queued both ways at the dump all arrive after restore', async () => {
    const toClient = 3 << 20;
    const got: Buffer[] = [];
    const srv = await startServer((s) => {
      s.pause(); // the client's bytes stay queued until the test reads them
      s.write(
        Buffer.from(Array.from({ length: 249 }, (_, i) => i + 7))
          .toString('latin1')
          .repeat(toClient / 249 + 1)
          .slice(0, toClient),
        'latin1',
      );
    });
    const d = tempDir('criu-ts-tcpq-');
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', QUEUES_CLIENT_PY, report, String(srv.port), String(toClient)], {
      setsid: true,
    });
    track(pid);
    const sent = Number((await waitForLine(report, /^SENT /, { pid })).split(' ')[1]);
    expect(sent).toBeGreaterThan(1 << 20);
    await waitFor(() => procState(pid) === 'S', 'client waiting');
    await dumpKillRestore(pid);
    const s = srv.sockets[0]!;
    s.on('data', (b: Buffer) => got.push(b));
    s.resume();
    await waitFor(() => got.reduce((n, b) => n + b.length, 0) >= sent, 'every byte the client had sent');
    const all = Buffer.concat(got);
    const pattern = Buffer.from(Array.from({ length: 251 }, (_, i) => i));
    const want = Buffer.alloc(sent);
    for (let i = 0; i < sent; i++) want[i] = pattern[i % 251]!;
    expect(all.equals(want)).toBe(true);
    expect(srv.troubles).toEqual([]); // (the client ends the connection itself once it has read)
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^READ /, { pid });
    expect(readLines(report)).toContain('READ OK');
  });

  it('a dump that fails after the connection was locked and put in repair: unlocked, and it goes on', async () => {
    const srv = await startServer((s) => s.pipe(s));
    const d = tempDir('criu-ts-tcpfail-');
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', ECHO_CLIENT_FAILING_DUMP_PY, report, String(srv.port)], {
      setsid: true,
    });
    track(pid);
    await waitForLine(report, /^20$/, { pid });
    // Only this connection's elements: other test files lock theirs meanwhile.
    const mine = () => viaNftables.held().filter((e) => new RegExp(`\\b${srv.port}\\b`).test(e));
    const before = mine();
    const r = await runCli(['dump', '-t', String(pid), '-D', path.join(d, 'images'), '--tcp-established']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/userfaultfd/);
    expect(mine()).toEqual(before);
    const n = readLines(report).length;
    await waitFor(() => readLines(report).length > n + 30, 'the client to go on');
    expect(readLines(report).every((l, i) => Number(l) === i + 1)).toBe(true);
    expect(srv.troubles).toEqual([]);
  });

  it.skipIf(!fs.existsSync('/usr/bin/redis-server'))(
    'redis-server keeps its keys and a connected redis-cli (INCR answered in order, the same connection id after restore)',
    async () => {
      const port = await new Promise<number>((resolve) => {
        const probe = net.createServer();
        probe.listen(0, '127.0.0.1', () => {
          const p = (probe.address() as net.AddressInfo).port;
          probe.close(() => resolve(p));
        });
      });
      const redis = startTraceable(
        [
          '/usr/bin/redis-server',
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { setsid: true },
      );
      track(redis);
      const cli = (...args: string[]) =>
        execFileSync('/usr/bin/redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();
      await waitFor(() => {
        try {
          return cli('ping') === 'PONG';
        } catch {
          return false;
        }
      }, 'redis to answer');
      expect(cli('set', 'kept', 'across the restore')).toBe('OK');
      const d = tempDir('criu-ts-redis-');
      const report = path.join(d, 'report');
      // Debian's redis-cli, outside the tree, driven through its stdin by a small python loop: it
      // asks INCR and checks the answers; on SIGUSR1 it asks CLIENT ID, which must be the same
      // connection's id as at the start (redis-cli would reconnect after a reset).
      const driver = [
        'import signal, subprocess, sys, time',
        "out = open(sys.argv[1], 'a', buffering=1)",
        "rc = subprocess.Popen(['/usr/bin/redis-cli', '-p', sys.argv[2]], stdin=subprocess.PIPE,",
        '    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)',
        "def ask(cmd): rc.stdin.write(cmd + '\\n'); rc.stdin.flush(); return rc.stdout.readline().strip()",
        'asked = []',
        'signal.signal(signal.SIGUSR1, lambda *a: asked.append(1))',
        "out.write('ID %s\\n' % ask('CLIENT ID'))",
        'for i in range(1, 10**9):',
        "    r = ask('INCR counter')",
        "    out.write(('%d' % i if r == str(i) else 'BAD %r %d' % (r, i)) + '\\n')",
        "    if asked: asked.clear(); out.write('ID %s\\n' % ask('CLIENT ID'))",
        '    time.sleep(0.005)',
      ].join('\n');
      const c = startTraceable([PYTHON, '-c', driver, report, String(port)], { setsid: true });
      track(c);
      await waitForLine(report, /^20$/, { pid: c, failOn: /^BAD/ });
      const id = readLines(report)[0];
      expect(id).toMatch(/^ID \d+$/);
      await dumpKillRestore(redis);
      const counted = () => readLines(report).filter((l) => !l.startsWith('ID '));
      const n = counted().length;
      await waitFor(() => counted().length > n + 30, 'the client to go on');
      expect(counted().every((l, i) => l === String(i + 1))).toBe(true);
      process.kill(c, 'SIGUSR1');
      await waitFor(
        () => readLines(report).filter((l) => l.startsWith('ID ')).length === 2,
        'CLIENT ID again',
      );
      expect(readLines(report).filter((l) => l.startsWith('ID '))).toEqual([id, id]);
      expect(cli('get', 'kept')).toBe('across the restore');
    },
  );

  it('a Node.js program (HTTP server, worker thread, timers) keeps serving a keep-alive client on the same connection', async () => {
    const d = tempDir('criu-ts-node-');
    const ready = path.join(d, 'ready');
    const server = `
const http = require('http'); const fs = require('fs'); const { Worker } = require('worker_threads');
const w = new Worker('const { parentPort } = require("worker_threads"); let n = 0; setInterval(() => parentPort.postMessage(++n), 20);', { eval: true });
let last = 0, bad = 0; w.on('message', (n) => { if (n !== last + 1) bad++; last = n; });
let ticks = 0; setInterval(() => ticks++, 10);
const srv = http.createServer((req, res) => res.end(JSON.stringify({ worker: last, ticks, bad })));
srv.keepAliveTimeout = 600000;
srv.listen(0, '127.0.0.1', () => fs.writeFileSync(process.argv[1], String(srv.address().port)));`;
    const pid = startTraceable([process.execPath, '-e', server, ready], { setsid: true });
    track(pid);
    await waitFor(
      () => fs.existsSync(ready) && fs.readFileSync(ready, 'utf8') !== '',
      'the server to listen',
    );
    const port = Number(fs.readFileSync(ready, 'utf8'));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    onCleanup(() => agent.destroy());
    const sockets = new Set<net.Socket>();
    const get = () =>
      new Promise<{ worker: number; ticks: number; bad: number }>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          let body = '';
          res.on('data', (b: Buffer) => {
            body += b;
          });
          res.on('end', () => resolve(JSON.parse(body)));
        });
        req.on('socket', (s: net.Socket) => sockets.add(s));
        req.on('error', reject);
      });
    const first = await get();
    await dumpKillRestore(pid);
    let after = await get();
    const t0 = Date.now();
    while (after.worker <= first.worker + 5 && Date.now() - t0 < 20000) after = await get();
    expect(after.worker).toBeGreaterThan(first.worker + 5); // the worker thread went on
    expect(after.ticks).toBeGreaterThan(first.ticks); // and the timers
    expect(after.bad).toBe(0); // no message from the worker lost or doubled
    expect(sockets.size).toBe(1); // one keep-alive connection throughout
  });
});
