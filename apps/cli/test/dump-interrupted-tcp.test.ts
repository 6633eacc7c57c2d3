// SIGKILL of `criu-ts dump --tcp-established` once it has locked a connection: the tree's connection
// goes on as if nothing happened. Nothing of criu-ts is left to lift the network lock or to take the
// socket out of repair mode, so the dump must leave no socket in repair mode behind it, and the lock's
// guard (net-lock/guard.ts) must lift the lock because the tree still runs. The kills land from the
// moment the lock shows (in nftables, or in iptables) to well into the memory dump, with -R and
// without it (a dump that would have killed the tree, killed itself before it did).

import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { kill, SIGKILL } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  busyWait,
  CRIU_TS_NODE,
  cleanup,
  onCleanup,
  PYTHON,
  procState,
  readLines,
  tempDir,
  tracerPid,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';
import { ECHO_CLIENT_PY, haveNft, nftLockTables, type Server, startServer } from './tcp-helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** The iptables rules that name `port` (CRIU's lock rules for a connection of ours). */
function iptablesRulesFor(port: number): string[] {
  return execFileSync('iptables', ['-w', '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .split('\n')
    .filter((l) => l.includes(`--sport ${port} `) || l.includes(`--dport ${port} `));
}

interface Lock {
  args: string[];
  /** What of the lock of this test's connection is there now. */
  held(): string[];
}

const nftables = (before: string[]): Lock => ({
  args: [],
  held: () => nftLockTables().filter((t) => !before.includes(t)),
});

const iptables = (port: number): Lock => ({
  args: ['--network-lock', 'iptables'],
  held: () => iptablesRulesFor(port),
});

/**
 * Start the dump, SIGKILL it `after` ms once the lock shows. Returns whether the kill landed (the dump
 * was still running then).
 */
async function killDumpOnceLocked(pid: number, lock: Lock, after: number, extra: string[]): Promise<boolean> {
  const dir = tempDir('criu-ts-core-dumpkill-tcp-');
  const child = spawn(
    process.execPath,
    [CRIU_TS_NODE, 'dump', '-t', String(pid), '-D', dir, '--tcp-established', ...lock.args, ...extra],
    { stdio: 'ignore' },
  );
  const done = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_c, sig) => resolve(sig)));
  let ended = false;
  void done.then(() => {
    ended = true;
  });
  // Poll without yielding (a loaded machine would let the moment pass), bounded.
  const deadline = performance.now() + 15_000;
  while (!ended && performance.now() < deadline) {
    if (lock.held().length > 0) {
      busyWait(after);
      kill(child.pid as number, SIGKILL);
      break;
    }
    await new Promise((r) => setImmediate(r));
  }
  return (await done) === 'SIGKILL';
}

async function echoClient(srv: Server): Promise<{ pid: number; report: string }> {
  const report = path.join(tempDir('criu-ts-tcp-'), 'report');
  const pid = startTraceable([PYTHON, '-c', ECHO_CLIENT_PY, report, String(srv.port)], { setsid: true });
  track(pid);
  await waitForLine(report, /^20$/, { pid });
  return { pid, report };
}

/** The task is gone or a zombie (a child of this test that the dump killed). */
const deadOrZombie = (pid: number) => ['gone', 'Z'].includes(procState(pid));

/** The client's one connection, seen from the server: its port at the client's end. */
const clientPort = (srv: Server) => srv.sockets[0]?.remotePort as number;

async function expectUnharmed(pid: number, report: string, srv: Server, lock: Lock): Promise<void> {
  await waitFor(() => tracerPid(pid) === 0, 'the client untraced', 5000);
  await waitFor(
    () => lock.held().length === 0,
    () => `the lock lifted: ${lock.held()}`,
    10_000,
  );
  const n = readLines(report).length;
  // Generous: under load the lock may have held for seconds, and TCP's retransmissions back off meanwhile.
  await waitFor(() => readLines(report).length > n + 10, 'the client to go on', 30_000);
  const lines = readLines(report);
  expect(lines.filter((l) => !/^\d+$/.test(l))).toEqual([]);
  expect(srv.sockets).toHaveLength(1);
  expect(srv.troubles).toEqual([]);
}

describe.skipIf(!haveNft)('SIGKILL of criu-ts dump --tcp-established once the connection is locked', () => {
  it('nftables, -R and not: the connection goes on and the lock table goes', async () => {
    const srv = await startServer((s) => s.pipe(s));
    const { pid, report } = await echoClient(srv);
    const lock = nftables(nftLockTables());
    onCleanup(() => {
      for (const t of lock.held()) execFileSync('nft', ['delete', 'table', 'inet', t]);
    });
    let landed = 0;
    for (const [after, extra] of [
      [0, ['-R']],
      [5, ['-R']],
      [20, ['-R']],
      [0, []],
      [10, []],
    ] as const) {
      if (await killDumpOnceLocked(pid, lock, after, [...extra])) landed++;
      // Without -R the dump may have killed the tree before the kill came (a fast dump, or a slow poll):
      // then it kept the lock for a restore, as it must, and nothing is left to interrupt.
      await waitFor(() => tracerPid(pid) === 0 || deadOrZombie(pid), 'the client untraced or dead', 5000);
      if (extra.length === 0 && deadOrZombie(pid)) {
        for (const t of lock.held()) execFileSync('nft', ['delete', 'table', 'inet', t]);
        break;
      }
      await expectUnharmed(pid, report, srv, lock).catch((e: Error) => {
        throw new Error(`kill ${after} ms after the lock (${extra.join(' ') || 'no -R'}): ${e.message}`);
      });
    }
    expect(landed, 'kills that landed while the dump ran').toBeGreaterThanOrEqual(3);
  }, 120_000);

  it('iptables: the connection goes on and the DROP rules go', async () => {
    const srv = await startServer((s) => s.pipe(s));
    const { pid, report } = await echoClient(srv);
    const lock = iptables(clientPort(srv));
    onCleanup(() => {
      for (const r of lock.held()) execFileSync('iptables', ['-w', ...r.replace(/^-A /, '-D ').split(' ')]);
    });
    let landed = 0;
    for (const after of [0, 10]) {
      if (await killDumpOnceLocked(pid, lock, after, ['-R'])) landed++;
      await expectUnharmed(pid, report, srv, lock);
    }
    expect(landed, 'kills that landed while the dump ran').toBeGreaterThanOrEqual(1);
  }, 60_000);
});
