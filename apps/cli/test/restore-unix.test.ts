// Unix sockets dumped, killed and restored: two tasks talking over socketpairs (stream, datagram and
// seqpacket) with messages queued both ways; a named listening server with an accepted connection
// and a request waiting on it, which then serves a new client from outside the tree; a datagram
// socket with an abstract name and datagrams waiting. A socket connected outside the tree is refused.
import net from 'node:net';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDump,
  cliKillAndRestore,
  critDecodeAll,
  entries,
  haveCrit,
  type Obj,
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

afterEach(() => cleanup());

const PAIRS_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET]
pairs = [socket.socketpair(socket.AF_UNIX, k) for k in kinds]
child = os.fork() == 0
for i, (a, b) in enumerate(pairs):
    mine = b if child else a
    for n in range(5): mine.send(b'%s-%d-%d;' % (b'child' if child else b'parent', i, n))
out.write('%s %d\\n' % ('CHILD' if child else 'PARENT', os.getpid()))
signal.sigwait([signal.SIGUSR1])
for i, (a, b) in enumerate(pairs):
    mine = b if child else a
    want = [b'%s-%d-%d;' % (b'parent' if child else b'child', i, n) for n in range(5)]
    if kinds[i] == socket.SOCK_STREAM: got = mine.recv(10000) == b''.join(want)
    else: got = [mine.recv(100) for _ in range(5)] == want
    out.write('%s kind=%d %s\\n' % ('CHILD' if child else 'PARENT', kinds[i], 'OK' if got else 'FAIL'))
`;

const SERVER_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
path, abstract = sys.argv[2], b'\\0' + sys.argv[3].encode()
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); srv.bind(path); srv.listen(8)
cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); cli.connect(path)
conn, _ = srv.accept()
cli.send(b'pending request')
dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); dg.bind(abstract)
dgc = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); dgc.connect(abstract)
dgc.send(b'one'); dgc.send(b'two')
out.write('READY\\n')
signal.sigwait([signal.SIGUSR1])
req = conn.recv(100); conn.send(req.upper())
out.write('ACCEPTED %s %s\\n' % (req.decode(), cli.recv(100).decode()))
out.write('DGRAMS %s %s\\n' % (dg.recv(10).decode(), dg.recv(10).decode()))
new, _ = srv.accept()
new.send(new.recv(100).upper())
out.write('SERVED\\n')
`;

// Files in flight: a message queued on a socketpair carries a file at position 3, the read end of a
// pipe with bytes in it, and a datagram socket with a datagram waiting - none of them held by the task
// any more; a second message carries the receiving socket itself. After SIGUSR1 the task receives
// them and uses each.
const PASS_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
with open(sys.argv[2], 'w') as f: f.write('0123456789')
f = os.open(sys.argv[2], os.O_RDONLY); os.lseek(f, 3, 0)
r, w = os.pipe(); os.write(w, b'before-')
x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM); x.send(b'inner')
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
socket.send_fds(a, [b'files'], [f, r, y.fileno()])
socket.send_fds(a, [b'self'], [b.fileno()])
os.close(f); os.close(r); y.close()
out.write('READY\\n')
signal.sigwait([signal.SIGUSR1])
msg, fds, _, _ = socket.recv_fds(b, 5, 3)
f, r, y = fds
os.write(w, b'after')
inner = socket.socket(fileno=y).recv(100)
msg2, fds2, _, _ = socket.recv_fds(b, 4, 1)
same = os.fstat(fds2[0]).st_ino == os.fstat(b.fileno()).st_ino
out.write('GOT %s file=%s pipe=%s inner=%s %s self=%s\\n' % (msg.decode(), os.read(f, 100).decode(),
    os.read(r, 100).decode(), inner.decode(), msg2.decode(), same))
`;

// A program logging through Python's SysLogHandler: a datagram socket connected to a syslog's named
// socket outside the tree. It logs "before", waits for SIGUSR1, logs "after".
const SYSLOG_CLIENT_PY = `
import logging, logging.handlers, os, signal, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
log = logging.getLogger('t'); log.addHandler(logging.handlers.SysLogHandler(address=sys.argv[2]))
log.warning('before')
out.write('LOGGED\\n')
signal.sigwait([signal.SIGUSR1])
log.warning('after')
out.write('LOGGED AGAIN\\n')
`;

// The syslog: receives datagrams on its named socket and writes each to its report.
const SYSLOG_PY = `
import os, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[2])
out.write('READY\\n')
while True: out.write('GOT %s\\n' % s.recv(1000).decode().strip('\\0'))
`;

function start(script: string, args: string[]): { pid: number; report: string; dir: string } {
  const dir = tempDir('criu-ts-unix-');
  const report = path.join(dir, 'report');
  const pid = startTraceable([PYTHON, '-c', script, report, ...args.map((a) => a.replace('$DIR', dir))], {
    setsid: true,
  });
  track(pid);
  return { pid, report, dir };
}

async function startPairs() {
  const w = start(PAIRS_PY, []);
  await waitForLine(w.report, /^PARENT /, { pid: w.pid });
  const child = Number((await waitForLine(w.report, /^CHILD \d+$/, { pid: w.pid })).split(' ')[1]);
  track(child);
  await waitFor(() => procState(w.pid) === 'S' && procState(child) === 'S', 'both waiting');
  return { ...w, child };
}

async function expectPairsTalk(w: { pid: number; child: number; report: string }): Promise<void> {
  process.kill(w.pid, 'SIGUSR1');
  process.kill(w.child, 'SIGUSR1');
  await waitFor(() => readLines(w.report).filter((l) => / kind=/.test(l)).length === 6, 'six results');
  const results = readLines(w.report).filter((l) => / kind=/.test(l));
  expect(results.sort()).toEqual([
    'CHILD kind=1 OK',
    'CHILD kind=2 OK',
    'CHILD kind=5 OK',
    'PARENT kind=1 OK',
    'PARENT kind=2 OK',
    'PARENT kind=5 OK',
  ]);
}

/** One request/answer with the restored server, from the test itself (outside the tree). */
function ask(sockPath: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sockPath, () => c.write(text));
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      resolve(d);
      c.destroy();
    });
    c.on('error', reject);
  });
}

describe('criu-ts restore: unix sockets', () => {
  it('two tasks on stream, datagram and seqpacket socketpairs, messages queued both ways: none lost, none doubled', async () => {
    const w = await startPairs();
    const dir = await cliDump(w.pid);
    await cliKillAndRestore(dir);
    await expectPairsTalk(w);
  });

  it('dump -R leaves every queued message where it was', async () => {
    const w = await startPairs();
    await cliDump(w.pid, ['-R']);
    await expectPairsTalk(w);
  });

  it('a named listening server keeps its accepted connection and request, and serves a new client from outside', async () => {
    const name = `criu-ts-test-${process.pid}-${Date.now()}`;
    const w = start(SERVER_PY, ['$DIR/srv.sock', name]);
    await waitForLine(w.report, /^READY$/, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'S', 'server waiting');
    const dir = await cliDump(w.pid);
    await cliKillAndRestore(dir);
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^DGRAMS /, { pid: w.pid });
    expect(readLines(w.report)).toContain('ACCEPTED pending request PENDING REQUEST');
    expect(readLines(w.report)).toContain('DGRAMS one two');
    expect(await ask(path.join(w.dir, 'srv.sock'), 'from outside')).toBe('FROM OUTSIDE');
    await waitForLine(w.report, /^SERVED$/, { pid: w.pid });
  });

  it('a datagram socketpair whose sender closed: the queued datagram and the pipe it carries come back', async () => {
    const script = `
import os, signal, socket, sys
out = open(sys.argv[1], 'a', buffering=1)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
r, w = os.pipe()
os.write(w, b'HELLO')
socket.send_fds(a, [b'dgram'], [r])
os.close(r)
a.close()
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
out.write('READY\\n')
signal.sigwait([signal.SIGUSR1])
msg, fds, _f, _a = socket.recv_fds(b, 16, 4)
out.write('GOT %s %s\\n' % (msg.decode(), os.read(fds[0], 16).decode()))
`;
    const w = start(script, []);
    await waitForLine(w.report, /^READY$/, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'S', 'waiting');
    const dir = await cliDump(w.pid);
    await cliKillAndRestore(dir);
    process.kill(w.pid, 'SIGUSR1');
    expect(await waitForLine(w.report, /^GOT /, { pid: w.pid })).toBe('GOT dgram HELLO');
  });

  it('files in flight (SCM_RIGHTS): a file with its position, a pipe with data, a socket with a datagram, and the receiving socket itself', async () => {
    const w = start(PASS_PY, ['$DIR/data.txt']);
    await waitForLine(w.report, /^READY$/, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'S', 'waiting');
    const dir = await cliDump(w.pid);
    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['sk-queues.img']);
      expect(failures).toEqual([]);
      const rights = entries(decoded.get('sk-queues.img')).map(
        (p) => (p.scm as Obj[] | undefined)?.length ?? 0,
      );
      expect(rights.filter((n) => n > 0)).toHaveLength(2);
    }
    await cliKillAndRestore(dir);
    process.kill(w.pid, 'SIGUSR1');
    const got = await waitForLine(w.report, /^GOT /, { pid: w.pid });
    expect(got).toBe('GOT files file=3456789 pipe=before-after inner=inner self self=True');
  });

  it('dump -R of files in flight leaves them in flight', async () => {
    const w = start(PASS_PY, ['$DIR/data.txt']);
    await waitForLine(w.report, /^READY$/, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'S', 'waiting');
    await cliDump(w.pid, ['-R']);
    process.kill(w.pid, 'SIGUSR1');
    const got = await waitForLine(w.report, /^GOT /, { pid: w.pid });
    expect(got).toBe('GOT files file=3456789 pipe=before-after inner=inner self self=True');
  });

  it('a syslog client (datagram socket connected to a named socket outside the tree): refused without --ext-unix-sk, kept with it', async () => {
    const syslog = start(SYSLOG_PY, ['$DIR/log.sock']);
    await waitForLine(syslog.report, /^READY$/, { pid: syslog.pid });
    const w = start(SYSLOG_CLIENT_PY, [path.join(syslog.dir, 'log.sock')]);
    await waitForLine(w.report, /^LOGGED$/, { pid: w.pid });
    await waitForLine(syslog.report, /^GOT <12>before$/, { pid: syslog.pid });
    await waitFor(() => procState(w.pid) === 'S', 'waiting');
    const refused = await runCli(['dump', '-t', String(w.pid), '-D', path.join(w.dir, 'refused')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/external socket is used, consider using --ext-unix-sk option/);
    const dir = await cliDump(w.pid, ['--ext-unix-sk']);
    await cliKillAndRestore(dir);
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^LOGGED AGAIN$/, { pid: w.pid });
    await waitForLine(syslog.report, /^GOT <12>after$/, { pid: syslog.pid });
  });

  it('a socket connected to a listener outside the tree: exit 1 naming pid, fd and peer; the task runs on', async () => {
    const d = tempDir('criu-ts-unix-ext-');
    const sock = path.join(d, 'outside.sock');
    const server = net.createServer(() => {});
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    onCleanup(() => server.close());
    const w = start(
      `import socket, sys, time\nout = open(sys.argv[1], 'a', buffering=1)\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[2])\nfor i in range(1, 10**9):\n    out.write('%d\\n' % i); time.sleep(0.01)`,
      [sock],
    );
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const r = await runCli(['dump', '-t', String(w.pid), '-D', path.join(d, 'images')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `pid ${w.pid} fd \\d+: unix socket \\d+ is connected to socket \\d+, which no task of the tree holds`,
      ),
    );
    const n = readLines(w.report).length;
    await waitFor(() => readLines(w.report).length > n + 3, 'the task to go on');
  });

  it.skipIf(!haveCrit)('crit decodes the unix socket entries and sk-queues.img', async () => {
    const w = await startPairs();
    const dir = await cliDump(w.pid, ['-R']);
    const { decoded, failures } = critDecodeAll(dir, ['files.img', 'sk-queues.img']);
    expect(failures).toEqual([]);
    expect(entries(decoded.get('files.img')).filter((f) => f.type === 'UNIXSK')).toHaveLength(6);
    expect(entries(decoded.get('sk-queues.img')).length).toBeGreaterThanOrEqual(22);
    await expectPairsTalk(w);
  });
});
