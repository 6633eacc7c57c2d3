// PostgreSQL (Debian's postgres 15), a server that is not ours and holds most of what issue 6 and 7
// are about: a postmaster and five helper processes sharing anonymous shared memory and a SysV
// segment, pipes, unix and TCP listening sockets, epoll and signal handling, and a backend with an
// established TCP connection to a psql session outside the tree. Dumped with --tcp-established,
// killed and restored: the same psql session goes on, new clients are served (the restored
// postmaster forks fresh backends on the restored shared memory), and it shuts down cleanly.
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDumpKillRestore,
  onCleanup,
  procState,
  spawnClean,
  tempDir,
  track,
  treeOf,
  waitFor,
} from './helpers.js';

afterEach(() => cleanup());

const BIN = '/usr/lib/postgresql/15/bin';
const havePostgres = fs.existsSync(`${BIN}/postgres`) && fs.existsSync('/usr/bin/psql');
const NOBODY = ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** A database cluster owned by nobody (postgres refuses to run as root), and its server started. */
async function startPostgres(): Promise<{ pid: number; port: number; log: string }> {
  const d = tempDir('criu-ts-pg-');
  fs.chownSync(d, 65534, 65534);
  const data = path.join(d, 'data');
  execFileSync(NOBODY[0]!, [...NOBODY.slice(1), `${BIN}/initdb`, '-D', data, '-A', 'trust', '-U', 'criu'], {
    stdio: 'ignore',
    cwd: d,
  });
  const port = await freePort();
  const log = path.join(d, 'server.log');
  const argv = [...NOBODY, `${BIN}/postgres`, '-D', data, '-k', d, '-p', String(port)];
  const pid = spawnClean([...argv, '-c', 'listen_addresses=127.0.0.1'], { stdout: log, stderr: log, cwd: d });
  // A fast shutdown at the end, so the server removes its SysV segment itself.
  onCleanup(() => stopPostgres(pid));
  await waitFor(() => sql(port, 'select 1') === '1', 'the server to accept connections');
  return { pid, port, log };
}

function stopPostgres(pid: number): void {
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return; // gone already
  }
  const until = Date.now() + 15_000;
  while (procState(pid) !== 'gone' && procState(pid) !== 'Z' && Date.now() < until)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
}

/** One statement through a new psql connection over TCP: its output, or '' if it failed. */
function sql(port: number, statement: string): string {
  try {
    const args = [
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-U',
      'criu',
      '-d',
      'postgres',
      '-At',
      '-c',
      statement,
    ];
    return execFileSync('/usr/bin/psql', args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return '';
  }
}

/** A psql session that stays connected: statements in, lines out. */
function session(port: number): { psql: ChildProcessWithoutNullStreams; out: string[]; errors: string[] } {
  const psql = spawn('/usr/bin/psql', [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-U',
    'criu',
    '-d',
    'postgres',
    '-At',
  ]);
  const s = { psql, out: [] as string[], errors: [] as string[] };
  psql.stdout.setEncoding('utf8').on('data', (d: string) => s.out.push(...d.split('\n').filter(Boolean)));
  psql.stderr.setEncoding('utf8').on('data', (d: string) => s.errors.push(d.trim()));
  onCleanup(() => psql.kill('SIGKILL'));
  return s;
}

describe.skipIf(!havePostgres)('criu-ts restore: PostgreSQL', () => {
  it('keeps its data and a connected psql session, serves new clients, and shuts down cleanly', async () => {
    const pg = await startPostgres();
    sql(pg.port, 'create table t (x int); insert into t values (1), (2)');
    expect(sql(pg.port, 'select count(*) from t')).toBe('2');
    const s = session(pg.port);
    s.psql.stdin.write("select 'before', count(*) from t;\n");
    await waitFor(() => s.out.includes('before|2'), 'the session to answer');
    // The backend of that session has joined the tree: seven processes, all asleep.
    await waitFor(() => treeOf(pg.pid).length === 7, 'the postmaster, five helpers and the backend');
    await waitFor(() => treeOf(pg.pid).every((p) => procState(p) === 'S'), 'every process asleep');
    const before = treeOf(pg.pid);

    await cliDumpKillRestore(pg.pid, ['--tcp-established']);
    track(...before);
    expect(treeOf(pg.pid).sort()).toEqual([...before].sort());

    s.psql.stdin.write("insert into t values (3); select 'after', count(*) from t;\n");
    await waitFor(() => s.out.includes('after|3'), 'the same session to answer after restore');
    expect(sql(pg.port, 'select sum(x) from t')).toBe('6');
    expect(s.errors.filter((e) => e !== '' && !/^INSERT/.test(e))).toEqual([]);
    s.psql.stdin.end();

    stopPostgres(pg.pid);
    await waitFor(
      () => fs.readFileSync(pg.log, 'utf8').includes('database system is shut down'),
      'a clean stop',
    );
  });
});
