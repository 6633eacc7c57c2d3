// Half-closed and closing TCP connections, for restore-tcp-closing.test.ts and the iptables tests: a
// python server and client in the tree, peers in this process that see every byte and the end, the
// kernel's view of a connection's state, and the CLOSE_WAIT scenario both lock methods run.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { expect } from 'vitest';
import { onCleanup, PYTHON, procState, readLines, tempDir, track, waitFor, waitForLine } from './helpers.js';
import { dumpKillRestore, type LockCheck } from './tcp-helpers.js';

export const STATE = { FIN_WAIT1: 4, FIN_WAIT2: 5, TIME_WAIT: 6, CLOSE_WAIT: 8, LAST_ACK: 9 } as const;

/** The TCP state of the connection (IPv4 or IPv6) with local port `local` and remote port `remote`. */
export function tcpState(local: number, remote: number): number | undefined {
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
export const PATTERN_PY = 'pattern = bytes(range(251)) * 80000';
export const isPattern = (b: Buffer, from = 0) => b.every((v, i) => v === (from + i) % 251);

// Server: one client; mode "read-later" waits before reading the request, "answer-big" reads it,
// answers with as much as fits unread, shuts down its side, then waits.
export const SERVER_PY = `
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
export const CLIENT_PY = `
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
export interface Peer {
  port: number;
  received: Buffer[];
  ended: boolean;
  troubles: string[];
  socket?: net.Socket;
}

export async function listeningPeer(opts: { paused?: boolean } = {}): Promise<Peer> {
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

export async function connectingPeer(
  port: number,
  opts: { paused?: boolean; host?: string } = {},
): Promise<Peer> {
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

export function watch(peer: Peer, s: net.Socket): void {
  s.on('data', (d: Buffer) => peer.received.push(d));
  s.on('end', () => {
    peer.ended = true;
  });
  s.on('error', (e) => peer.troubles.push(`error ${e.message}`));
}

export function startPython(script: string, args: string[]): { pid: number; report: string } {
  const report = path.join(tempDir('criu-ts-tcp-closing-'), 'report');
  const pid = startTraceable([PYTHON, '-c', script, report, ...args], { setsid: true });
  track(pid);
  return { pid, report };
}

export const received = (p: Peer) => Buffer.concat(p.received);

/**
 * CLOSE_WAIT through a dump and restore with `lock`: a server in the tree whose client (this process)
 * sent its request and FIN reads both after restore and answers; the client sees the answer and the end.
 */
export async function closeWait(lock: LockCheck, host = '127.0.0.1'): Promise<void> {
  const w = startPython(SERVER_PY, ['read-later', host]);
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
