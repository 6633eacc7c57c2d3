#!/usr/bin/env node
// Benchmark of established TCP connections (run as root with nft, after `pnpm build`): `pnpm bench:tcp`.
//   - a python3 server in the tree holding 1,000 established connections to a client outside it:
//     wall time of dump() (--tcp-established, the tree killed) and of restore(), then every
//     connection is checked to still echo;
//   - one connection with 4 MiB queued each way (neither side reading): dump and restore time,
//     then every byte is checked on both sides.
// Prints a table, then as the LAST line one JSON object:
// {"conns_1000": {dump_ms, restore_ms}, "queued_4MiB": {dump_ms, restore_ms, bytes_each_way}}.
import { mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { importBuilt, requireBuilt } from '../common.js';
import { cleanUp, printReport } from '../report.js';

requireBuilt(['core', 'core/restore/index.js', 'compel', 'images']);
const { dump } = await importBuilt('core');
const { restore } = await importBuilt('core/restore/index.js');
const { killAndReap, startTraceable } = await importBuilt('compel');
const { ImageDir } = await importBuilt('images');

const PYTHON = '/usr/bin/python3';
const CONNS = Number(process.env.CONNS ?? 1000);
const work = mkdtempSync('/tmp/criu-ts-bench-tcp-');
const started = [];
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const sleep = (n) => new Promise((r) => setTimeout(r, n));

async function waitFile(path) {
  for (let i = 0; i < 2000; i++) {
    try {
      const t = readFileSync(path, 'utf8');
      if (t.endsWith('\n')) return t.trim();
    } catch {}
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${path}`);
}

/** dump() (killing the tree), reap, restore(): both wall times. */
async function dumpAndRestore(pid, name) {
  const dir = join(work, name);
  const t0 = process.hrtime.bigint();
  await dump({ pid, imagesDir: dir, tcpEstablished: true });
  const dumpMs = ms(t0);
  for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
  const t1 = process.hrtime.bigint();
  restore({ imagesDir: dir });
  return { dump_ms: Math.round(dumpMs), restore_ms: Math.round(ms(t1)) };
}

// A server that accepts N connections and echoes on each (one thread per 100 with select).
const SERVER_PY = `
import os, selectors, socket, sys
os.closerange(3, 65536)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0)); srv.listen(4096)
open(sys.argv[1], 'w').write('%d\\n' % srv.getsockname()[1])
sel = selectors.DefaultSelector(); sel.register(srv, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is srv:
            c, _ = srv.accept(); sel.register(c, selectors.EVENT_READ)
        else:
            d = key.fileobj.recv(65536)
            if d: key.fileobj.sendall(d)
            else: sel.unregister(key.fileobj); key.fileobj.close()
`;

async function thousandConnections() {
  const portFile = join(work, 'port');
  const pid = startTraceable([PYTHON, '-c', SERVER_PY, portFile], { setsid: true });
  started.push(pid);
  const port = Number(await waitFile(portFile));
  const conns = [];
  for (let i = 0; i < CONNS; i++) {
    conns.push(
      await new Promise((resolve, reject) => {
        const c = net.createConnection({ host: '127.0.0.1', port }, () => resolve(c));
        c.on('error', reject);
      }),
    );
  }
  const r = await dumpAndRestore(pid, 'conns');
  let ok = 0;
  await Promise.all(
    conns.map(
      (c, i) =>
        new Promise<void>((resolve) => {
          c.once('data', (b) => {
            if (b.toString() === `ping ${i}`) ok++;
            resolve();
          });
          c.write(`ping ${i}`);
        }),
    ),
  );
  for (const c of conns) c.destroy();
  return { ...r, echoing_after: ok };
}

const QUEUED_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
c = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
c.setblocking(False)
n = int(sys.argv[3]); sent = 0; chunk = bytes(range(256)) * 256
while sent < n:
    try: sent += c.send(chunk[: min(len(chunk), n - sent)])
    except BlockingIOError: break
open(sys.argv[1], 'w').write('%d\\n' % sent)
signal.sigwait([signal.SIGUSR1])
`;

async function queued4MiB() {
  const size = 4 << 20;
  let serverSocket;
  const server = net.createServer((s) => {
    serverSocket = s;
    s.pause();
    s.write(Buffer.alloc(size, 7));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const sentFile = join(work, 'sent');
  const pid = startTraceable(
    [PYTHON, '-c', QUEUED_PY, sentFile, String((server.address() as net.AddressInfo).port), String(size)],
    {
      setsid: true,
    },
  );
  started.push(pid);
  const sent = Number(await waitFile(sentFile));
  const r = await dumpAndRestore(pid, 'queued');
  let got = 0;
  serverSocket.on('data', (b) => {
    got += b.length;
  });
  serverSocket.resume();
  for (let i = 0; i < 500 && got < sent; i++) await sleep(10);
  serverSocket.destroy();
  server.close();
  return { ...r, client_sent: sent, server_got_after: got };
}

let conns;
let queued;
try {
  conns = await thousandConnections();
  queued = await queued4MiB();
} finally {
  cleanUp(started, work, killAndReap);
}
printReport(
  'criu-ts: established TCP connections (this machine; API, nftables network lock)',
  [
    [
      `${CONNS} connections: dump`,
      String(conns.dump_ms),
      'ms',
      `${conns.echoing_after}/${CONNS} echo after restore`,
    ],
    [`${CONNS} connections: restore`, String(conns.restore_ms), 'ms', ''],
    ['4 MiB queued: dump', String(queued.dump_ms), 'ms', `client had ${queued.client_sent} bytes queued`],
    ['4 MiB queued: restore', String(queued.restore_ms), 'ms', `server got ${queued.server_got_after} after`],
  ],
  { conns_1000: conns, queued_4MiB: queued },
);
