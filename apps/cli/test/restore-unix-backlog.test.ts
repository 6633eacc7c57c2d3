// A listening unix socket with connections it has not accepted yet: the clients (held by the server and
// by its child) come back connected and waiting in the listener's queue, in the order they connected,
// so that the server's accept() after the restore returns each of them, in that order, and both ends
// talk (stream and seqpacket). A waiting client outside the tree is refused unless --skip-in-flight
// leaves it behind; a waiting client that has already sent data is refused, as CRIU refuses it.
import net from 'node:net';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDump,
  cliKillAndRestore,
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

// The server listens on a stream and a seqpacket socket. Clients connect in the order 0 (child),
// 1 (server), 2 (child), 3 (seqpacket, server); none is accepted before SIGUSR1. Then every client
// sends its number, the server accepts three times on the stream listener and once on the seqpacket
// one, reads each number (the order accept() gives), and answers it doubled.
const QUEUE_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
path = sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); srv.bind(path + '.s'); srv.listen(8)
sq = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); sq.bind(path + '.q'); sq.listen(8)
to_child, to_parent = os.pipe(), os.pipe()
child = os.fork()
if child == 0:
    mine = {}
    for k in (0, 2):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.connect(path + '.s'); mine[k] = c
        os.write(to_parent[1], b'x')
        if k == 0: os.read(to_child[0], 1)
    out.write('CHILD %d\\n' % os.getpid())
    signal.sigwait([signal.SIGUSR1])
    for k, c in mine.items(): c.send(b'%d' % k)
    out.write('CHILD GOT %s\\n' % ' '.join(c.recv(10).decode() for c in mine.values()))
    sys.exit(0)
os.read(to_parent[0], 1)
c1 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c1.connect(path + '.s')
os.write(to_child[1], b'x'); os.read(to_parent[0], 1)
c3 = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); c3.connect(path + '.q')
out.write('READY %d\\n' % child)
signal.sigwait([signal.SIGUSR1])
c1.send(b'1'); c3.send(b'3')
order = []
for l in (srv, srv, srv, sq):
    conn, _ = l.accept()
    k = conn.recv(10); order.append(k.decode()); conn.send(b'%d' % (2 * int(k)))
out.write('ORDER %s\\n' % ' '.join(order))
out.write('SERVER GOT %s %s\\n' % (c1.recv(10).decode(), c3.recv(10).decode()))
os.waitpid(child, 0)
out.write('DONE\\n')
`;

function start(script: string, args: string[]) {
  const dir = tempDir('criu-ts-unix-backlog-');
  const report = path.join(dir, 'report');
  const pid = startTraceable([PYTHON, '-c', script, report, ...args.map((a) => a.replace('$DIR', dir))], {
    setsid: true,
  });
  track(pid);
  return { pid, report, dir };
}

/** The server waiting with its four connections queued; its child's pid. */
async function startQueue() {
  const w = start(QUEUE_PY, ['$DIR/srv']);
  const child = Number((await waitForLine(w.report, /^READY \d+$/, { pid: w.pid })).split(' ')[1]);
  track(child);
  await waitForLine(w.report, /^CHILD /, { pid: w.pid });
  await waitFor(() => procState(w.pid) === 'S' && procState(child) === 'S', 'both waiting');
  return { ...w, child };
}

async function expectAcceptedInOrder(w: { pid: number; child: number; report: string }) {
  process.kill(w.pid, 'SIGUSR1');
  process.kill(w.child, 'SIGUSR1');
  await waitForLine(w.report, /^DONE$/, { pid: w.pid });
  const lines = readLines(w.report);
  expect(lines).toContain('ORDER 0 1 2 3');
  expect(lines).toContain('SERVER GOT 2 6');
  expect(lines).toContain('CHILD GOT 0 4');
}

describe('criu-ts restore: unix connections not accepted yet', () => {
  it('clients of two tasks wait in the stream and seqpacket queues again and are accepted in their order', async () => {
    const w = await startQueue();
    const dir = await cliDump(w.pid);
    await cliKillAndRestore(dir);
    await expectAcceptedInOrder(w);
  });

  it('dump -R leaves the queue as it was', async () => {
    const w = await startQueue();
    await cliDump(w.pid, ['-R']);
    await expectAcceptedInOrder(w);
  });

  it('a waiting client outside the tree is refused (the server runs on), and left behind with --skip-in-flight', async () => {
    const w = start(
      `import os, signal, socket, sys\nout = open(sys.argv[1], 'a', buffering=1)\ns = socket.socket(socket.AF_UNIX); s.bind(sys.argv[2]); s.listen(4)\nout.write('READY\\n')\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1]); signal.sigwait([signal.SIGUSR1])\nc, _ = s.accept(); out.write('ACCEPTED\\n')`,
      ['$DIR/srv.sock'],
    );
    await waitForLine(w.report, /^READY$/, { pid: w.pid });
    const outside = net.createConnection(path.join(w.dir, 'srv.sock'));
    onCleanup(() => outside.destroy());
    await new Promise<void>((resolve, reject) => outside.on('connect', resolve).on('error', reject));
    const refused = await runCli(['dump', '-t', String(w.pid), '-D', path.join(w.dir, 'refused')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(
        `pid ${w.pid} fd \\d+: listening unix socket .*srv\\.sock has a connection not accepted yet from socket \\d+, which no task of the tree holds`,
      ),
    );
    const dir = await cliDump(w.pid, ['--skip-in-flight']);
    await cliKillAndRestore(dir);
    // The connection stayed behind: the restored server's queue is empty, a new client is accepted.
    const fresh = net.createConnection(path.join(w.dir, 'srv.sock'));
    onCleanup(() => fresh.destroy());
    await new Promise<void>((resolve, reject) => fresh.on('connect', resolve).on('error', reject));
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^ACCEPTED$/, { pid: w.pid });
  });

  it("a waiting client that has sent data is refused with CRIU's message; the tree runs on", async () => {
    const w = start(
      `import os, socket, sys, time\nout = open(sys.argv[1], 'a', buffering=1)\ns = socket.socket(socket.AF_UNIX); s.bind(sys.argv[2]); s.listen(4)\nc = socket.socket(socket.AF_UNIX); c.connect(sys.argv[2]); c.send(b'early')\nfor i in range(1, 10**9):\n    out.write('%d\\n' % i); time.sleep(0.01)`,
      ['$DIR/srv.sock'],
    );
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const r = await runCli(['dump', '-t', String(w.pid), '-D', path.join(w.dir, 'images')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`pid ${w.pid} fd \\d+: Non-empty write queue on an in-flight socket 0x`),
    );
    const n = readLines(w.report).length;
    await waitFor(() => readLines(w.report).length > n + 3, 'the task to go on');
  });
});
