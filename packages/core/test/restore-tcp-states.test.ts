// TCP connections in the states and with the queues CRIU's zdtm suite checks beyond plain established
// ones: full queues behind buffers set as large as the system allows (zdtm's socket-tcpbuf*).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { ImageDir, type TcpStreamEntry } from '@criu-ts/images';
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
import { haveNft } from './tcp-helpers.js';

afterEach(() => cleanup());

/** `criu-ts ARGS`, killed (and failed) if it takes longer than `ms`. */
async function runCliWithin(args: string[], ms: number) {
  let timer: NodeJS.Timeout | undefined;
  let killed = false;
  const r = await runCli(args, (pid) => {
    timer = setTimeout(() => {
      killed = true;
      process.kill(pid, 'SIGKILL');
    }, ms);
  });
  clearTimeout(timer);
  if (killed) throw new Error(`criu-ts ${args[0]} still ran after ${ms} ms: killed`);
  return r;
}

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

/**
 * A lock of the test's own (an nftables table dropping every packet of these ports) while the restored
 * windows are read: nothing the peers send each other can change them meanwhile.
 */
function holdPorts(ports: number[]): () => void {
  const table = `criu_ts_test_${process.pid}`;
  const set = ports.join(', ');
  execFileSync('nft', ['-f', '-'], {
    input: [
      `add table inet ${table}`,
      `add chain inet ${table} input { type filter hook input priority -310; policy accept; }`,
      `add rule inet ${table} input tcp sport { ${set} } drop`,
      '',
    ].join('\n'),
  });
  let held = true;
  const release = () => {
    if (held) execFileSync('nft', ['delete', 'table', 'inet', table]);
    held = false;
  };
  onCleanup(release);
  return release;
}

describe('criu-ts restore: TCP connections as zdtm checks them', () => {
  it.skipIf(!haveNft)('megabytes queued behind the largest buffers, both ends in the tree: restored in seconds, every byte read', async () => {
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
      if (f.isk?.dst_port) dumped.set(f.isk.src_port, images.messages<TcpStreamEntry>('tcp-stream-%x', f.isk.ino)[0]!);
    const release = holdPorts([...dumped.keys()]);
    const t0 = Date.now();
    const r = await runCliWithin(['restore', '-D', dir, '-d', '--tcp-established'], 30_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(15_000);
    track(pid);
    // The windows are the dumped ones: not those the restore's large buffers would advertise (a peer
    // told of room that is not there sends what is then dropped, and both ends can stall for good).
    const windows = execFileSync(PYTHON, ['-c', WINDOWS_PY, String(pid)], { encoding: 'utf8' });
    const seen = windows.trim().split('\n').map((l) => l.split(' ').map(Number));
    expect(seen.length).toBe(2);
    for (const [port, sndWnd, rcvWnd] of seen) {
      const t = dumped.get(port!)!;
      expect({ port, sndWnd, rcvWnd }).toEqual({ port, sndWnd: t.snd_wnd, rcvWnd: t.rcv_wnd });
    }
    release();
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^READ /, { pid, timeoutMs: 60_000 });
    expect(readLines(report)).toContain('READ OK OK');
  }, 120_000);
});
