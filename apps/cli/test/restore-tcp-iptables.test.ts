// The iptables network lock (--network-lock iptables): established connections over 127.0.0.1 and ::1
// go through dump, kill and restore with the server outside the tree seeing every byte exactly once
// and no end or reset; while the tree is dumped, INPUT and OUTPUT hold CRIU's DROP rule for each
// direction (iptables-save shows them: CRIU's restore deletes exactly these) which drops what the
// server sends meanwhile; after the restore, or after a dump that fails, the rules are gone. Restore
// finds the method in inventory.img, or takes it from --network-lock, and also lifts the lock of
// criu-ts's older images (a chain CRIU-TS).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
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
import { closeWait } from './tcp-closing.js';
import {
  dumpKillRestore,
  ECHO_CLIENT_FAILING_DUMP_PY,
  ECHO_CLIENT_PY,
  type LockCheck,
  type Server,
  startServer,
} from './tcp-helpers.js';

/** The chain criu-ts's older images locked in. */
const LEGACY_CHAIN = 'CRIU-TS';
/** What CRIU's lock rules have in common (a DROP of unmarked TCP packets), as iptables-save writes them. */
const LOCK_RULE =
  /^-A (INPUT|OUTPUT) .* -p tcp -m mark ! --mark 0xc114 -m tcp --sport \d+ --dport \d+ -j DROP$/;
const TOOLS = ['iptables', 'ip6tables'] as const;

const haveIptables = (() => {
  try {
    for (const t of TOOLS) {
      execFileSync(t, ['-S', 'INPUT'], { stdio: 'ignore' });
      execFileSync(`${t}-restore`, ['--version'], { stdio: 'ignore' });
    }
    return true;
  } catch {
    return false;
  }
})();

/** `iptables-save -c` (both families): what the tests look at, as a user would. */
const save = (counters = false) =>
  TOOLS.map((t) => execFileSync(`${t}-save`, counters ? ['-c'] : [], { encoding: 'utf8' })).join('');

/** The lock's DROP rules in INPUT and OUTPUT, as iptables-save writes them. */
const lockRules = (): string[] =>
  save()
    .split('\n')
    .filter((l) => LOCK_RULE.test(l));

const legacyChainExists = () => save().includes(`:${LEGACY_CHAIN} `);

/** Packets dropped so far by the INPUT rule for one direction (source port `sport`, destination `dport`). */
function dropped(sport: number, dport: number): number {
  const line = save(true)
    .split('\n')
    .find((l) => l.includes('-A INPUT ') && l.includes(`--sport ${sport} --dport ${dport} `));
  return Number(/^\[(\d+):/.exec(line ?? '')?.[1] ?? 0);
}

const viaIptables = (extra: Partial<LockCheck> = {}): LockCheck => ({
  held: lockRules,
  dumpArgs: ['--network-lock', 'iptables'],
  ...extra,
});

// ---- cleanup: whatever a failed test left in netfilter, and the tables this file made ----------------

const nftTables = (): string[] => {
  try {
    return execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch {
    return [];
  }
};
const tablesAtStart = nftTables();

/** Delete the lock rules that were not there at `before`, and the legacy chain if a test left it. */
function removeLeftovers(before: readonly string[], legacyBefore: boolean): void {
  for (const tool of TOOLS) {
    const rules = execFileSync(tool, ['-S'], { encoding: 'utf8' }).split('\n');
    for (const r of rules.filter((l) => LOCK_RULE.test(l) && !before.includes(l)))
      execFileSync(tool, ['-D', ...r.split(' ').slice(1)]);
    if (legacyBefore || !rules.includes(`-N ${LEGACY_CHAIN}`)) continue;
    for (const r of rules.filter((l) => l.startsWith(`-A ${LEGACY_CHAIN} `)))
      execFileSync(tool, ['-D', ...r.split(' ').slice(1)]);
    for (const hook of ['INPUT', 'OUTPUT']) {
      if (rules.includes(`-A ${hook} -j ${LEGACY_CHAIN}`))
        execFileSync(tool, ['-D', hook, '-j', LEGACY_CHAIN]);
    }
    execFileSync(tool, ['-X', LEGACY_CHAIN]);
  }
}

/**
 * iptables-nft makes nftables tables `ip filter` and `ip6 filter` on first use and keeps them; the
 * ones this file made go again if nothing but their empty built-in chains is in them.
 */
function removeOwnFilterTables(): void {
  for (const [family, tool] of [
    ['ip', 'iptables'],
    ['ip6', 'ip6tables'],
  ] as const) {
    const table = `table ${family} filter`;
    if (tablesAtStart.includes(table) || !nftTables().includes(table)) continue;
    const rules = execFileSync(tool, ['-S'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    if (rules.every((l) => /^-P \w+ ACCEPT$/.test(l)))
      execFileSync('nft', ['delete', 'table', family, 'filter']);
  }
}

beforeEach(() => {
  if (!haveIptables) return;
  const before = lockRules();
  const legacyBefore = legacyChainExists();
  onCleanup(() => removeLeftovers(before, legacyBefore));
});
afterEach(() => cleanup());
afterAll(() => {
  if (haveIptables) removeOwnFilterTables();
});

// ---- workloads ----------------------------------------------------------------------------------------

/** An echo server on `host` that also keeps every byte it received, to check them at the end. */
async function echoServer(host: string): Promise<{ srv: Server; received: () => string }> {
  const got: Buffer[] = [];
  const srv = await startServer((s) => {
    s.on('data', (b: Buffer) => got.push(b));
    s.pipe(s);
  }, host);
  return { srv, received: () => Buffer.concat(got).toString('latin1') };
}

/** Complete lines "1", "2", ... in order, each once? */
const consecutiveFromOne = (lines: readonly string[]) => lines.every((l, i) => l === String(i + 1));

/** The echo client talking to `host` through a dump and restore with `lock`; both ends checked. */
async function echoThroughRestore(host: string, lock: LockCheck): Promise<string> {
  const { srv, received } = await echoServer(host);
  const report = path.join(tempDir('criu-ts-iptables-'), 'report');
  const pid = startTraceable([PYTHON, '-c', ECHO_CLIENT_PY, report, String(srv.port), host], {
    setsid: true,
  });
  track(pid);
  await waitForLine(report, /^20$/, { pid });
  const dir = await dumpKillRestore(pid, lock);
  const n = readLines(report).length;
  await waitFor(() => readLines(report).length > n + 30, 'the client to go on');
  expect(consecutiveFromOne(readLines(report))).toBe(true); // every line came back once
  const sent = received().split('\n').slice(0, -1); // the last one may still be on its way
  expect(sent.length).toBeGreaterThan(n + 30);
  expect(consecutiveFromOne(sent)).toBe(true); // and the server got each once
  expect(srv.sockets).toHaveLength(1);
  expect(srv.troubles).toEqual([]);
  return dir;
}

// Holds its connection with SIGUSR1 blocked; on SIGUSR1 reads up to "END", reports what it got, waits.
const HOLD_CLIENT_PY = `
import os, signal, socket, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
c = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
out.write('CONNECTED %d\\n' % c.getsockname()[1])
signal.sigwait([signal.SIGUSR1])
got = b''
while not got.endswith(b'END\\n'):
    d = c.recv(4096)
    if not d: break
    got += d
out.write('READ %s\\n' % got.decode().split())
signal.sigwait([signal.SIGUSR1])  # and stays: an exit would end the connection
`;

describe.skipIf(!haveIptables)('criu-ts --network-lock iptables', () => {
  it('CLOSE_WAIT (a half-closed connection): the FIN replayed at restore passes the lock', () =>
    closeWait(viaIptables({ restoreArgs: ['--network-lock', 'iptables'] })));

  it('IPv4: the echo client goes on, the server sees every byte once and no reset; rules only while dumped', async () => {
    const others = lockRules(); // other programs' locks (a CRIU run by hand...) are not counted
    const dir = await echoThroughRestore(
      '127.0.0.1',
      viaIptables({
        restoreArgs: ['--network-lock', 'iptables'],
        whileDumped: async () => {
          const rules = lockRules().filter((r) => !others.includes(r));
          for (const hook of ['INPUT', 'OUTPUT'])
            expect(
              rules.filter((r) => r.startsWith(`-A ${hook} -s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp`)),
            ).toHaveLength(1);
          expect(legacyChainExists()).toBe(false);
        },
      }),
    );
    expect(ImageDir.open(dir).inventory().network_lock_method).toBe(0); // CRIU's number for iptables
  });

  it('IPv6 (::1), restored without --network-lock: the method comes from inventory.img', async () => {
    const others = lockRules();
    await echoThroughRestore(
      '::1',
      viaIptables({
        whileDumped: async () => {
          const rules = lockRules().filter((r) => !others.includes(r));
          expect(rules.filter((r) => / -s ::1\/128 -d ::1\/128 -p tcp /.test(r))).toHaveLength(2);
        },
      }),
    );
  });

  it("images of criu-ts's older lock (its chain CRIU-TS): restore deletes their rules, then the chain and its jumps", async () => {
    let legacy: string[] = [];
    let made = false;
    await echoThroughRestore(
      '127.0.0.1',
      viaIptables({
        whileDumped: async (dir) => {
          // The lock as criu-ts made it before it locked as CRIU does.
          const sk = ImageDir.open(dir)
            .files()
            .find((f) => f.isk && f.isk.type === 1 && f.isk.dst_port !== 0)!.isk!;
          const drop = (sport: number, dport: number) =>
            `-s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp -m tcp --sport ${sport} --dport ${dport} -j DROP`;
          legacy = [drop(sk.src_port, sk.dst_port), drop(sk.dst_port, sk.src_port)].map(
            (r) => `-A ${LEGACY_CHAIN} ${r}`,
          );
          const ours = lockRules().filter(
            (r) => r.includes(`--dport ${sk.src_port} `) || r.includes(`--sport ${sk.src_port} `),
          );
          expect(ours).toHaveLength(2);
          made = !legacyChainExists();
          const create = made
            ? [
                `-N ${LEGACY_CHAIN}`,
                `-A ${LEGACY_CHAIN} -m mark --mark 0xc114 -j RETURN`,
                `-I INPUT -j ${LEGACY_CHAIN}`,
                `-I OUTPUT -j ${LEGACY_CHAIN}`,
              ]
            : [];
          const script = [...ours.map((r) => r.replace(/^-A /, '-D ')), ...create, ...legacy];
          execFileSync('iptables-restore', ['--noflush'], {
            input: ['*filter', ...script, 'COMMIT', ''].join('\n'),
          });
          expect(save()).toContain(legacy[0]);
        },
      }),
    );
    for (const r of legacy) expect(save()).not.toContain(r);
    if (made) expect(legacyChainExists()).toBe(false);
  });

  it('what the server sends while the tree is dumped is dropped, then retransmitted and read once', async () => {
    const srv = await startServer((s) => s.write('before\n'));
    const report = path.join(tempDir('criu-ts-iptables-hold-'), 'report');
    const pid = startTraceable([PYTHON, '-c', HOLD_CLIENT_PY, report, String(srv.port)], { setsid: true });
    track(pid);
    const clientPort = Number((await waitForLine(report, /^CONNECTED /, { pid })).split(' ')[1]);
    await waitFor(() => procState(pid) === 'S', 'the client to wait for SIGUSR1');
    await dumpKillRestore(
      pid,
      viaIptables({
        whileDumped: async () => {
          srv.sockets[0]!.write('during\n'); // no socket at the client's end now: a reset, if it got there
          await waitFor(() => dropped(srv.port, clientPort) > 0, 'the lock to drop the server segment');
        },
      }),
    );
    srv.sockets[0]!.write('END\n');
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^READ /, { pid });
    expect(readLines(report)).toContain("READ ['before', 'during', 'END']");
    expect(srv.troubles).toEqual([]);
  });

  it('a dump that fails after locking: the rules are deleted and the client goes on', async () => {
    const { srv, received } = await echoServer('127.0.0.1');
    const d = tempDir('criu-ts-iptables-fail-');
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', ECHO_CLIENT_FAILING_DUMP_PY, report, String(srv.port)], {
      setsid: true,
    });
    track(pid);
    await waitForLine(report, /^20$/, { pid });
    const before = lockRules();
    const r = await runCli([
      'dump',
      '-t',
      String(pid),
      '-D',
      path.join(d, 'images'),
      '--tcp-established',
      '--network-lock',
      'iptables',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/userfaultfd/);
    expect(lockRules()).toEqual(before);
    const n = readLines(report).length;
    await waitFor(() => readLines(report).length > n + 30, 'the client to go on');
    expect(consecutiveFromOne(readLines(report))).toBe(true);
    expect(consecutiveFromOne(received().split('\n').slice(0, -1))).toBe(true);
    expect(srv.troubles).toEqual([]);
  });
});

describe('criu-ts --network-lock: an unknown method', () => {
  it.each([
    ['dump', ['dump', '-t', '1', '-D']],
    ['restore', ['restore', '-D']],
  ])('%s refuses it in one line, before doing anything', async (_name, args) => {
    const dir = path.join(tempDir('criu-ts-netlock-'), 'images');
    const r = await runCli([...args, dir, '--network-lock', 'ipfw']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('criu-ts: invalid value for --network-lock: ipfw\n');
    expect(fs.existsSync(dir)).toBe(false);
  });
});
