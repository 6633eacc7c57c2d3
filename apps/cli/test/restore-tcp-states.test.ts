// TCP connections in the states and with the queues CRIU's zdtm suite checks beyond plain established
// ones: full queues behind buffers set as large as the system allows (zdtm's socket-tcpbuf*); --tcp-close
// at dump or only at restore (socket-tcp-close*); sockets shut down (socket_udp_shutdown,
// socket-tcp-close2); two listeners sharing a port (socket-tcp-reuseport).
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { ImageDir, type TcpStreamEntry } from '@criu-ts/images';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, PYTHON, procState, readLines, tempDir, track, waitFor, waitForLine } from './helpers.js';
import { checkLines, dumpOk, holdPackets, restoreOk, runCliWithin, startProgram } from './inet-program.js';
import { haveNft, viaNftables } from './tcp-helpers.js';

afterEach(() => cleanup());

// Both ends of a loopback connection in one process, each with the largest buffers SO_SNDBUF and
// SO_RCVBUF give, each filled from its side until a write would block; on SIGUSR1 each end reads
// everything the other had sent and checks it.
const FULL_BUFFERS_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
a = socket.create_connection(srv.getsockname()); b, _ = srv.accept(); srv.close()
for s in (a, b):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 100 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 100 << 20)
    s.setblocking(False)
def pattern(seed, n): return (bytes((seed + i) % 251 for i in range(251)) * (n // 251 + 2))
def fill(s, seed):
    p = pattern(seed, 1 << 20); sent = 0
    while True:
        try: sent += s.send(p[sent % 251:sent % 251 + 65536])
        except BlockingIOError: return sent
na = fill(a, 3); nb = fill(b, 5); na += fill(a, 3 + na)
out.write('SENT %d %d\\n' % (na, nb))
signal.sigwait([signal.SIGUSR1])
def drain(s, n, seed):
    s.setblocking(True); got = bytearray()
    while len(got) < n:
        d = s.recv(1 << 20)
        if not d: break
        got += d
    return bytes(got) == pattern(seed, n)[:n]
okb = drain(b, na, 3); oka = drain(a, nb, 5)
out.write('READ %s %s\\n' % ('OK' if okb else 'BAD', 'OK' if oka else 'BAD'))
`;

// The windows of a task's TCP sockets, read from copies of its fds: "PORT SND_WND RCV_WND" per socket.
const WINDOWS_PY = `
import ctypes, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(int(sys.argv[1]))
for name in os.listdir('/proc/%s/fd' % sys.argv[1]):
    if not os.readlink('/proc/%s/fd/%s' % (sys.argv[1], name)).startswith('socket:'): continue
    fd = libc.syscall(438, pidfd, int(name), 0)
    s = socket.socket(fileno=fd)
    i = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 240)
    print(s.getsockname()[1], *struct.unpack_from('II', i, 228))
    s.close()
`;

// A listener, a client connected to it and the accepted end, over loopback.
const CONNECTED = `
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0)); srv.listen(4)
clt = socket.create_connection(srv.getsockname()); acc, _ = srv.accept()
clt.sendall(b'unread')
def check():
    yield 'accepted ' + closed_both_ways(acc)
    yield 'client ' + closed_both_ways(clt)
    yield 'listener state %d' % state(srv)
    again = socket.create_connection(srv.getsockname()); c, _ = srv.accept(); c.sendall(b'hi')
    yield 'new connection %r' % again.recv(10)
`;

// What a connection restored closed shows: the end of the stream, EPIPE on a write; the listener
// listens and accepts again.
const CLOSED_CONNECTIONS = [
  "accepted state 7 recv b'' send EPIPE",
  "client state 7 recv b'' send EPIPE",
  'listener state 10',
  "new connection b'hi'",
];

describe('criu-ts restore: TCP connections as zdtm checks them', () => {
  it('--tcp-close at dump: recorded without repair or lock, the restore must be asked for it too, connections come back closed', async () => {
    const { report, pid } = await startProgram(CONNECTED);
    const dir = await dumpOk(pid, ['--tcp-close']);
    const images = ImageDir.open(dir);
    expect(images.inventory().tcp_close).toBe(true);
    const connections = images.files().filter((f) => f.isk?.dst_port);
    expect(connections.length).toBe(2);
    for (const f of connections) expect(images.has('tcp-stream-%x', f.isk!.ino)).toBe(false);
    const refused = await runCliWithin(['restore', '-D', dir, '-d'], 30_000);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/Need to set the --tcp-close options/);
    await restoreOk(pid, dir, ['--tcp-close']);
    expect(await checkLines(pid, report)).toEqual(CLOSED_CONNECTIONS);
  });

  it.skipIf(!haveNft)(
    '--tcp-established at dump, --tcp-close at restore: connections closed, and no longer locked',
    async () => {
      const { report, pid } = await startProgram(CONNECTED);
      const dir = await dumpOk(pid, ['--tcp-established']);
      const ports = ImageDir.open(dir)
        .files()
        .flatMap((f) => (f.isk?.dst_port ? [f.isk.src_port] : []));
      const ours = () =>
        viaNftables.held().filter((e) => ports.some((p) => new RegExp(`\\b${p}\\b`).test(e)));
      expect(ours().length).toBe(2); // both directions of the connection
      await restoreOk(pid, dir, ['--tcp-close']);
      expect(ours()).toEqual([]);
      expect(await checkLines(pid, report)).toEqual(CLOSED_CONNECTIONS);
    },
  );

  it('shut down sockets stay shut down: UDP one way each, and a TCP connection closed both ways', async () => {
    const { report, pid } = await startProgram(`
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind(('127.0.0.1', 0)); b.bind(('127.0.0.1', 0)); a.connect(b.getsockname()); b.connect(a.getsockname())
a.shutdown(socket.SHUT_WR); b.shutdown(socket.SHUT_RD)
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
clt = socket.create_connection(srv.getsockname()); acc, _ = srv.accept(); srv.close()
clt.shutdown(socket.SHUT_WR); acc.shutdown(socket.SHUT_WR)
acc.recv(1); clt.recv(1)
def check():
    try: a.send(b'x'); yield 'a sent'
    except OSError as e: yield 'a ' + errno.errorcode[e.errno]
    b.send(b'to a'); yield 'a got %r' % a.recv(10)
    yield 'client ' + closed_both_ways(clt)
    yield 'accepted ' + closed_both_ways(acc)
`);
    const dir = await dumpOk(pid, []);
    await restoreOk(pid, dir, []);
    expect(await checkLines(pid, report)).toEqual([
      'a EPIPE',
      "a got b'to a'",
      "client state 7 recv b'' send EPIPE",
      "accepted state 7 recv b'' send EPIPE",
    ]);
  });

  it.skipIf(!haveNft)(
    'a connection being set up (SYN_SENT, its SYN dropped): dumped, restored, it connects once the SYN gets through',
    async () => {
      const port = await new Promise<number>((resolve) => {
        const probe = net.createServer().listen(0, '127.0.0.1', () => {
          const p = (probe.address() as net.AddressInfo).port;
          probe.close(() => resolve(p));
        });
      });
      const release = holdPackets(`tcp dport ${port} tcp flags & (syn | ack) == syn`);
      const { report, pid } = await startProgram(`
import select
srv = socket.socket(); srv.bind(('127.0.0.1', ${port})); srv.listen(1)
clt = socket.socket(); clt.setblocking(False)
try: clt.connect(('127.0.0.1', ${port}))
except BlockingIOError: pass
def check():
    w = select.select([], [clt], [], 30)[1]
    yield 'connected %s error %d' % (bool(w), clt.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    acc, _ = srv.accept(); clt.setblocking(True); clt.sendall(b'ping'); acc.sendall(acc.recv(4).upper())
    yield 'answer %r' % clt.recv(4)
`);
      const dir = await dumpOk(pid, ['--tcp-established']);
      const images = ImageDir.open(dir);
      const client = images.files().find((f) => f.isk?.dst_port === port);
      expect(client?.isk?.state).toBe(2); // SYN_SENT
      expect(images.has('tcp-stream-%x', client!.isk!.ino)).toBe(true);
      await restoreOk(pid, dir, ['--tcp-established']);
      release();
      expect(await checkLines(pid, report)).toEqual(['connected True error 0', "answer b'PING'"]);
    },
    60_000,
  );

  it('two listeners share a port through SO_REUSEPORT, one of which dropped it since: both listen again, options as they were', async () => {
    const { report, pid } = await startProgram(`
def listener(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(('127.0.0.1', port)); s.listen(4); return s
one = listener(0); two = listener(one.getsockname()[1])
one.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 0)
def check():
    for s in (one, two):
        yield 'port %s state %d reuseport %d' % (s.getsockname()[1] == one.getsockname()[1], state(s), s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))
`);
    const dir = await dumpOk(pid, []);
    await restoreOk(pid, dir, []);
    expect(await checkLines(pid, report)).toEqual([
      'port True state 10 reuseport 0',
      'port True state 10 reuseport 1',
    ]);
  });

  it.skipIf(!haveNft)(
    'megabytes queued behind the largest buffers, both ends in the tree: restored in seconds, every byte read',
    async () => {
      const report = path.join(tempDir('criu-ts-tcpbuf-'), 'report');
      const pid = startTraceable([PYTHON, '-c', FULL_BUFFERS_PY, report], { setsid: true });
      track(pid);
      const [na, nb] = (await waitForLine(report, /^SENT /, { pid })).split(' ').slice(1).map(Number);
      expect(na! + nb!).toBeGreaterThan(8 << 20);
      await waitFor(() => procState(pid) === 'S', 'the program waiting');
      const dir = path.join(tempDir('criu-ts-tcpbuf-img-'), 'images');
      const d = await runCliWithin(['dump', '-t', String(pid), '-D', dir, '--tcp-established'], 30_000);
      expect(d.stderr).toBe('');
      expect(d.code).toBe(0);
      for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
      const images = ImageDir.open(dir);
      const dumped = new Map<number, TcpStreamEntry>();
      for (const f of images.files())
        if (f.isk?.dst_port)
          dumped.set(f.isk.src_port, images.messages<TcpStreamEntry>('tcp-stream-%x', f.isk.ino)[0]!);
      // While the restored windows are read, nothing the peers send each other may change them.
      const release = holdPackets(`tcp sport { ${[...dumped.keys()].join(', ')} }`);
      const t0 = Date.now();
      const r = await runCliWithin(['restore', '-D', dir, '-d', '--tcp-established'], 30_000);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(15_000);
      track(pid);
      // The windows are the dumped ones: not those the restore's large buffers would advertise (a peer
      // told of room that is not there sends what is then dropped, and both ends can stall for good).
      const windows = execFileSync(PYTHON, ['-c', WINDOWS_PY, String(pid)], { encoding: 'utf8' });
      const seen = windows
        .trim()
        .split('\n')
        .map((l) => l.split(' ').map(Number));
      expect(seen.length).toBe(2);
      for (const [port, sndWnd, rcvWnd] of seen) {
        const t = dumped.get(port!)!;
        expect({ port, sndWnd, rcvWnd }).toEqual({ port, sndWnd: t.snd_wnd, rcvWnd: t.rcv_wnd });
      }
      release();
      process.kill(pid, 'SIGUSR1');
      await waitForLine(report, /^READ /, { pid, timeoutMs: 60_000 });
      expect(readLines(report)).toContain('READ OK OK');
    },
    120_000,
  );
});
