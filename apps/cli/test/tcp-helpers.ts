// Helpers for the established-TCP tests (restore-tcp*.test.ts): a client in the dumped tree talking
// to a server outside it (the test process), and dump, kill and restore through the CLI with a check
// that the network lock holds the connection meanwhile and is lifted afterwards.
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { expect } from 'vitest';
import { onCleanup, runCli, tempDir, track } from './helpers.js';

/**
 * Sends numbered lines and checks each comes back, forever. Arguments: report file, port, and the
 * server's address (default 127.0.0.1).
 */
export const ECHO_CLIENT_PY = `
import os, socket, sys, time
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
c = socket.create_connection((sys.argv[3] if len(sys.argv) > 3 else '127.0.0.1', int(sys.argv[2])))
buf = b''
for i in range(1, 10**9):
    c.sendall(b'%d\\n' % i)
    while b'\\n' not in buf:
        d = c.recv(4096)
        if not d: out.write('EOF\\n'); sys.exit(1)
        buf += d
    line, buf = buf.split(b'\\n', 1)
    if int(line) != i: out.write('BAD %s %d\\n' % (line, i)); sys.exit(1)
    out.write('%d\\n' % i)
    time.sleep(0.005)
`;

/** The same client, plus a userfaultfd (no driver) opened after the socket: a dump of it fails. */
export const ECHO_CLIENT_FAILING_DUMP_PY = ECHO_CLIENT_PY.replace(
  "buf = b''",
  "import ctypes; uffd = ctypes.CDLL(None).syscall(323, 0)\nbuf = b''",
);

export interface Server {
  port: number;
  sockets: net.Socket[];
  /** An end or an error on any connection: what the lock must prevent. */
  troubles: string[];
}

/** A TCP server on `host` (closed, with its connections, at cleanup). */
export async function startServer(
  onConnection: (s: net.Socket) => void,
  host = '127.0.0.1',
): Promise<Server> {
  const srv: Server = { port: 0, sockets: [], troubles: [] };
  const server = net.createServer((s) => {
    srv.sockets.push(s);
    s.on('end', () => srv.troubles.push('end'));
    s.on('error', (e) => srv.troubles.push(`error ${e.message}`));
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  srv.port = (server.address() as net.AddressInfo).port;
  onCleanup(() => {
    for (const s of srv.sockets) s.destroy();
    server.close();
  });
  return srv;
}

export const haveNft = (() => {
  try {
    execFileSync('nft', ['list', 'tables']);
    return true;
  } catch {
    return false;
  }
})();

/** The nftables tables of the network lock, CRIU's naming (`inet CRIU-<run id>`), one per dump. */
export function nftLockTables(): string[] {
  return execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })
    .split('\n')
    .flatMap((l) => /^table inet (CRIU-\S+)$/.exec(l)?.[1] ?? []);
}

/** The connections the nftables locks hold now (elements of each lock table's IPv4 and IPv6 sets). */
function nftLockElements(): string[] {
  return nftLockTables().flatMap((table) =>
    ['conns4', 'conns6'].flatMap((set) => {
      try {
        const text = execFileSync('nft', ['list', 'set', 'inet', table, set], { encoding: 'utf8' });
        const m = /elements = \{([^}]*)\}/s.exec(text);
        return (m?.[1] ?? '')
          .split(',')
          .map((e) => e.trim())
          .filter(Boolean);
      } catch {
        return []; // gone meanwhile
      }
    }),
  );
}

export interface LockCheck {
  /** What the lock holds now, one string per locked direction of a connection. */
  held(): string[];
  /** Extra arguments to the dump and to the restore (the lock method). */
  dumpArgs?: string[];
  restoreArgs?: string[];
  /** Run once the tree is dumped and killed, before the restore. */
  whileDumped?: (dir: string) => Promise<void>;
}

/** The default lock, nftables. */
export const viaNftables: LockCheck = { held: nftLockElements };

/** The local ports of the connected TCP sockets in an images dir. */
function connectionPorts(dir: string): number[] {
  return ImageDir.open(dir)
    .files()
    .flatMap((f) => (f.isk && f.isk.type === 1 && f.isk.dst_port !== 0 ? [f.isk.src_port] : []));
}

/**
 * Dump the tree of `pid` with --tcp-established, kill it, restore it detached; the lock must hold new
 * entries between the dump and the restore, and none of them after. Returns the images dir.
 */
export async function dumpKillRestore(pid: number, lock: LockCheck): Promise<string> {
  const dir = path.join(tempDir('criu-ts-tcp-img-'), 'images');
  const before = lock.held();
  const r = await runCli([
    'dump',
    '-t',
    String(pid),
    '-D',
    dir,
    '--tcp-established',
    ...(lock.dumpArgs ?? []),
  ]);
  if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
  const runId = ImageDir.open(dir).inventory().dump_criu_run_id;
  if (runId && haveNft) {
    // A lock the restore failed to lift does not outlive the test.
    const table = `CRIU-${runId.slice(0, 21)}`;
    onCleanup(() => {
      if (nftLockTables().includes(table)) execFileSync('nft', ['delete', 'table', 'inet', table]);
    });
  }
  // Other test files lock their own connections meanwhile: only ours (by their ports) count.
  const ports = connectionPorts(dir);
  const ours = lock
    .held()
    .filter((t) => !before.includes(t) && ports.some((p) => new RegExp(`\\b${p}\\b`).test(t)));
  expect(ours.length).toBeGreaterThan(0); // the connection is locked meanwhile
  for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
  await lock.whileDumped?.(dir);
  const rr = await runCli(['restore', '-D', dir, '-d', '--tcp-established', ...(lock.restoreArgs ?? [])]);
  if (rr.code !== 0 || rr.stderr) throw new Error(`restore: exit ${rr.code}: ${rr.stderr}`);
  for (const e of ImageDir.open(dir).pstree()) track(e.pid);
  for (const t of ours) expect(lock.held()).not.toContain(t); // and unlocked once it is back
  return dir;
}
