// Half-closed and closing TCP connections (--tcp-established), each with its peer outside the tree (this
// test process): dumped in the state they were in, killed and restored, then carried on to the end.
// The peer sees every byte once and an orderly end, never a reset. The states come from
// /proc/net/tcp, so a connection that is not in the state a test means to dump fails the test.
//   CLOSE_WAIT  a server in the tree whose client has sent its request and FIN
//   FIN_WAIT2   a client in the tree that sent its question and FIN, acknowledged
//   FIN_WAIT1   a client whose FIN waits behind megabytes the server does not read yet
//   LAST_ACK    a server that got the FIN, answered with megabytes not read yet, and shut down
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  onCleanup,
  PYTHON,
  procState,
  readLines,
  runCli,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';
import {
  dumpKillRestore as dumpKillRestoreLocked,
  haveNft,
  type LockCheck,
  viaNftables,
} from './tcp-helpers.js';

afterEach(() => cleanup());

const haveIptables = (() => {
  try {
    execFileSync('iptables-restore', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** criu-ts's iptables rules now (the chain is gone when nothing is locked). */
const iptablesRules = () =>
  execFileSync('iptables-save', { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith('-A CRIU-TS '));
const viaIptables: LockCheck = {
  held: iptablesRules,
  dumpArgs: ['--network-lock', 'iptables'],
  restoreArgs: ['--network-lock', 'iptables'],
};

const STATE = { FIN_WAIT1: 4, FIN_WAIT2: 5, TIME_WAIT: 6, CLOSE_WAIT: 8, LAST_ACK: 9 } as const;

/** The TCP state of the connection (IPv4 or IPv6) with local port `local` and remote port `remote`. */
function tcpState(local: number, remote: number): number | undefined {
  const hex = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
  const table = ['/proc/net/tcp', '/proc/net/tcp6'].map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  for (const line of table.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hex(local)}`) && f[2]?.endsWith(`:${hex(remote)}`))
      return Number.parseInt(f[3]!, 16);
  }
  return undefined;
}

// A byte pattern both sides can check: byte i is i % 251.
const PATTERN_PY = 'pattern = bytes(range(251)) * 80000';
const isPattern = (b: Buffer, from = 0) => b.every((v, i) => v === (from + i) % 251);

// Server: one client; mode "read-later" waits before reading the request, "answer-big" reads it,
// answers with as much as fits unread, shuts down its side, then waits.
const SERVER_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
mode = sys.argv[2]
${PATTERN_PY}
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
host = sys.argv[3] if len(sys.argv) > 3 else '127.0.0.1'
srv = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET); srv.bind((host, 0)); srv.listen(1)
out.write('PORT %d\\n' % srv.getsockname()[1])
c, _ = srv.accept()
def read_all():
    c.settimeout(20); got = b''
    while True:
        d = c.recv(65536)
        if not d: return got
        got += d
if mode == 'answer-big':
    req = read_all()
    c.setblocking(False); sent = 0
    while True:
        try: sent += c.send(pattern[sent % 251:sent % 251 + 65536])
        except BlockingIOError: break
    c.shutdown(socket.SHUT_WR)
    out.write('SENT %d %s\\n' % (sent, req.decode()))
else:
    out.write('ACCEPTED\\n')
signal.sigwait([signal.SIGUSR1])
if mode == 'read-later':
    try: req = read_all(); c.sendall(req.upper()); out.write('SERVED %s\\n' % req.decode())
    except socket.timeout: out.write('TIMEOUT waiting for the end of the request\\n')
c.close()
`;

// Client: mode "question" sends a question and its FIN, "send-big" as much as fits unread and its
// FIN; after SIGUSR1 it reads the answer to the end.
const CLIENT_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
mode = sys.argv[3]
${PATTERN_PY}
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
c = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
if mode == 'send-big':
    c.setblocking(False); sent = 0
    while True:
        try: sent += c.send(pattern[sent % 251:sent % 251 + 65536])
        except BlockingIOError: break
    c.setblocking(True)
else:
    c.sendall(b'question'); sent = 8
c.shutdown(socket.SHUT_WR)
out.write('SENT %d %d\\n' % (sent, c.getsockname()[1]))
signal.sigwait([signal.SIGUSR1])
c.settimeout(20); got = b''
try:
    while True:
        d = c.recv(65536)
        if not d: break
        got += d
    out.write('GOT %s EOF\\n' % got.decode())
except socket.timeout: out.write('TIMEOUT %s\\n' % got.decode())
`;

/** A peer outside the tree: collects what it receives, sees the end, never ends on its own. */
interface Peer {
  port: number;
  received: Buffer[];
  ended: boolean;
  troubles: string[];
  socket?: net.Socket;
}

async function listeningPeer(opts: { paused?: boolean } = {}): Promise<Peer> {
  const peer: Peer = { port: 0, received: [], ended: false, troubles: [] };
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    peer.socket = s;
    watch(peer, s);
    if (opts.paused) s.pause();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  peer.port = (server.address() as net.AddressInfo).port;
  onCleanup(() => {
    peer.socket?.destroy();
    server.close();
  });
  return peer;
}

async function connectingPeer(port: number, opts: { paused?: boolean; host?: string } = {}): Promise<Peer> {
  const peer: Peer = { port: 0, received: [], ended: false, troubles: [] };
  const s = net.createConnection({ port, host: opts.host ?? '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  peer.socket = s;
  peer.port = s.localPort!;
  watch(peer, s);
  if (opts.paused) s.pause();
  onCleanup(() => s.destroy());
  return peer;
}

function watch(peer: Peer, s: net.Socket): void {
  s.on('data', (d: Buffer) => peer.received.push(d));
  s.on('end', () => {
    peer.ended = true;
  });
  s.on('error', (e) => peer.troubles.push(`error ${e.message}`));
}

function start(script: string, args: string[]): { pid: number; report: string } {
  const report = path.join(tempDir('criu-ts-tcp-closing-'), 'report');
  const pid = startTraceable([PYTHON, '-c', script, report, ...args], { setsid: true });
  track(pid);
  return { pid, report };
}

const dumpKillRestore = (pid: number, lock = viaNftables) => dumpKillRestoreLocked(pid, lock);

const received = (p: Peer) => Buffer.concat(p.received);

describe.skipIf(!haveNft)('criu-ts restore: half-closed and closing TCP connections', () => {
  async function closeWait(lock: LockCheck, host = '127.0.0.1'): Promise<void> {
    const w = start(SERVER_PY, ['read-later', host]);
    const port = Number((await waitForLine(w.report, /^PORT /, { pid: w.pid })).split(' ')[1]);
    const client = await connectingPeer(port, { host });
    client.socket!.end('request');
    await waitForLine(w.report, /^ACCEPTED$/, { pid: w.pid });
    await waitFor(() => tcpState(port, client.port) === STATE.CLOSE_WAIT, 'CLOSE_WAIT');
    await waitFor(() => procState(w.pid) === 'S', 'server waiting');
    await dumpKillRestore(w.pid, lock);
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^(SERVED|TIMEOUT)/, { pid: w.pid });
    expect(readLines(w.report)).toContain('SERVED request');
    await waitFor(() => client.ended, 'the end of the answer');
    expect(received(client).toString()).toBe('REQUEST');
    expect(client.troubles).toEqual([]);
  }

  it('CLOSE_WAIT: a server whose client sent its request and FIN reads both after restore and answers', () =>
    closeWait(viaNftables));

  it('CLOSE_WAIT over IPv6 (::1): the FIN is replayed as an IPv6 segment', () =>
    closeWait(viaNftables, '::1'));

  it.skipIf(!haveIptables)('CLOSE_WAIT with the iptables lock: the replayed FIN passes it', () =>
    closeWait(viaIptables),
  );

  it('FIN_WAIT2: a client that sent its question and FIN gets the answer and the end after restore', async () => {
    const server = await listeningPeer();
    const w = start(CLIENT_PY, [String(server.port), 'question']);
    const local = Number((await waitForLine(w.report, /^SENT /, { pid: w.pid })).split(' ')[2]);
    await waitFor(() => server.ended, 'the question and its FIN');
    await waitFor(() => tcpState(local, server.port) === STATE.FIN_WAIT2, 'FIN_WAIT2');
    await dumpKillRestore(w.pid);
    expect(tcpState(local, server.port)).toBe(STATE.FIN_WAIT2);
    server.socket!.end('answer');
    process.kill(w.pid, 'SIGUSR1');
    expect(await waitForLine(w.report, /^(GOT|TIMEOUT)/, { pid: w.pid })).toBe('GOT answer EOF');
    expect(received(server).toString()).toBe('question');
    expect(server.troubles).toEqual([]);
  });

  it('FIN_WAIT1: a FIN waiting behind megabytes the server has not read: all of them, then the end', async () => {
    const server = await listeningPeer({ paused: true });
    const w = start(CLIENT_PY, [String(server.port), 'send-big']);
    const [, sent, local] = (await waitForLine(w.report, /^SENT /, { pid: w.pid })).split(' ').map(Number);
    await waitFor(() => tcpState(local!, server.port) === STATE.FIN_WAIT1, 'FIN_WAIT1');
    await dumpKillRestore(w.pid);
    server.socket!.resume();
    await waitFor(() => server.ended, 'every byte and the FIN', 30_000);
    const got = received(server);
    expect(got.length).toBe(sent);
    expect(isPattern(got)).toBe(true);
    server.socket!.end('thanks');
    process.kill(w.pid, 'SIGUSR1');
    expect(await waitForLine(w.report, /^(GOT|TIMEOUT)/, { pid: w.pid })).toBe('GOT thanks EOF');
    expect(server.troubles).toEqual([]);
  });

  it('LAST_ACK: a server that answered with megabytes and shut down: the client reads them all and the end', async () => {
    const w = start(SERVER_PY, ['answer-big']);
    const port = Number((await waitForLine(w.report, /^PORT /, { pid: w.pid })).split(' ')[1]);
    const client = await connectingPeer(port, { paused: true });
    client.socket!.end('request');
    const sent = Number((await waitForLine(w.report, /^SENT /, { pid: w.pid })).split(' ')[1]);
    await waitFor(() => tcpState(port, client.port) === STATE.LAST_ACK, 'LAST_ACK');
    await dumpKillRestore(w.pid);
    client.socket!.resume();
    await waitFor(() => client.ended, 'every byte and the FIN', 30_000);
    const got = received(client);
    expect(got.length).toBe(sent);
    expect(isPattern(got)).toBe(true);
    expect(client.troubles).toEqual([]);
    process.kill(w.pid, 'SIGUSR1');
  });

  it('a connection closed both ways with bytes not read yet: refused, naming them; the task reads them on', async () => {
    const server = await listeningPeer();
    const w = start(CLIENT_PY, [String(server.port), 'question']);
    const local = Number((await waitForLine(w.report, /^SENT /, { pid: w.pid })).split(' ')[2]);
    await waitFor(() => server.ended, 'the question and its FIN');
    server.socket!.end('answer');
    await waitFor(() => tcpState(local, server.port) === STATE.TIME_WAIT, 'both FINs through');
    const r = await runCli([
      'dump',
      '-t',
      String(w.pid),
      '-D',
      path.join(tempDir('criu-ts-tcp-closed-'), 'images'),
      '--tcp-established',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`pid ${w.pid} fd \\d+: a closed TCP connection with 6 bytes not read yet`),
    );
    process.kill(w.pid, 'SIGUSR1');
    expect(await waitForLine(w.report, /^(GOT|TIMEOUT)/, { pid: w.pid })).toBe('GOT answer EOF');
  });
});
