#!/usr/bin/env node
// criu-ts side by side with CRIU, whole commands (run as root, after `pnpm run build`):
//   pnpm bench:vs-criu --criu /path/to/criu [--rounds 7] [--rows sleep,mem64,...] [--json]
//
// For each row (a workload of the issue's table) and each round, first with CRIU then with criu-ts
// (interleaved), it starts the workload in a session of its own (stdin /dev/null), waits until it is
// ready, runs `TOOL dump -t PID -D DIR -o dump.log` (the tree is killed), reaps the tree, runs
// `TOOL restore -D DIR -d --pidfile F -o restore.log`, checks the restored tree works (per row), kills
// it and removes DIR. Each command runs under /usr/bin/time, which gives its user+sys CPU time and its
// peak RSS (wait4's ru_maxrss of the command: the tool's own process, not the restored tree, which it
// never waits for). The wall time is taken here around the whole command.
//
// Prints the table (see tools/bench/README.md for the columns) and, with --json, one JSON object as the
// last line. The bench is a child subreaper, so every process of a workload or of a restored tree ends
// up as its child; each is killed and reaped after its round, and on Ctrl-C (a second Ctrl-C kills a
// running dump or restore at once).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { buildWorkloads, isDescendantOf, workloadPath } from '../../workloads/index.js';
import { readLines, waitForLine } from '../../workloads/report.js';
import { importBuilt, repo, requireBuilt } from '../common.js';
import {
  firstErrorLine,
  median,
  type Options,
  parseArgs,
  parseTimeOutput,
  ROWS,
  ratios,
  USAGE,
} from './options.js';

let opts: Options;
try {
  opts = parseArgs(process.argv.slice(2), { criuTs: join(repo, 'apps/cli/bin/criu-ts') });
} catch (e) {
  console.error(`vs-criu: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
// `pnpm bench:vs-criu` runs in the repository root: paths given are relative to where it was typed.
const userCwd = process.env.INIT_CWD ?? process.cwd();
opts.criuTs = resolvePath(userCwd, opts.criuTs);
if (opts.criu !== undefined) opts.criu = resolvePath(userCwd, opts.criu);
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error('vs-criu: run as root (dump and restore need it)');
  process.exit(1);
}
requireBuilt(['sys', 'bfd', 'compel', 'images'], 'vs-criu: ');
const { killAndReap, startTraceable, ensureSubreaper } = await importBuilt('compel');

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
const firstExisting = (...paths: string[]) => paths.find((p) => existsSync(p)) ?? (paths[0] as string);

const PYTHON = firstExisting('/usr/bin/python3', '/usr/local/bin/python3');
const SH = '/bin/sh';
const SLEEP = firstExisting('/usr/bin/sleep', '/bin/sleep');
const TIME = executable('/usr/bin/time') ? '/usr/bin/time' : undefined;
const COMMAND_TIMEOUT_MS = 600_000;
const READY_TIMEOUT_MS = 300_000;
const GIB = 1024 ** 3;

interface Tool {
  key: 'criu' | 'criu_ts';
  name: string;
  path: string;
}
if (!executable(opts.criuTs)) {
  console.error(
    `vs-criu: criu-ts not found at ${opts.criuTs} (run \`pnpm run build\`, or pass --criu-ts PATH)`,
  );
  process.exit(1);
}
const tools: Tool[] = [];
let criuNote = '';
if (opts.criu !== undefined && executable(opts.criu)) {
  tools.push({ key: 'criu', name: 'CRIU', path: opts.criu });
} else {
  criuNote =
    opts.criu === undefined
      ? 'no --criu given: criu-ts alone'
      : `no CRIU binary at ${opts.criu}: criu-ts alone`;
}
tools.push({ key: 'criu_ts', name: 'criu-ts', path: opts.criuTs });

ensureSubreaper();
await buildWorkloads();
const work = mkdtempSync(join(tmpdir(), 'criu-ts-vs-criu-'));

// ---------------------------------------------------------------------------------------------------
// Processes: what we started or restored, killed and reaped after each round and at exit.

const ourSid = sidOf(process.pid);

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}
function sidOf(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? Number(f[3]) : undefined;
}
/** State letter of `pid` (R, S, Z, ...), undefined when gone. */
function stateOf(pid: number): string | undefined {
  return statFields(pid)?.[0];
}
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
        if (text !== '') out.push(...text.split(' ').map(Number));
      } catch {}
    }
  } catch {}
  return out;
}
/** `root` and all its descendants (parents before children). */
function treeOf(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...childrenOf(out[i] as number));
  return out;
}

/**
 * SIGKILL every pid of `pids` that is still ours (this process or below it: a pid that was reaped by
 * someone else may belong to a stranger by now), then reap each.
 */
function killAll(pids: Iterable<number>): void {
  const mine = [...new Set(pids)].filter((p) => p !== process.pid && isDescendantOf(p));
  for (const p of mine) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {}
  }
  for (const p of mine) {
    try {
      killAndReap(p);
    } catch (e) {
      console.error(`vs-criu: could not reap ${p}: ${(e as Error).message}`);
    }
  }
}

/**
 * Our children from a workload or a restored tree (their own session, re-parented to us) and what is
 * below them. Our own session's children (a transpiler service of tsx, a running command) are left alone.
 */
function strayTrees(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const f = statFields(pid);
    if (!f || Number(f[1]) !== process.pid || Number(f[3]) === ourSid) continue;
    if (running !== undefined && pid === running.pid) continue;
    out.push(...treeOf(pid));
  }
  return out;
}

const owned = new Set<number>();
function cleanupProcesses(): void {
  killAll([...owned, ...strayTrees()]);
  owned.clear();
}

// ---------------------------------------------------------------------------------------------------
// Ctrl-C: the first one lets a running dump/restore end (killing it half way can leave a tree frozen or
// a network lock in place), then cleans up; a second one kills the command at once.

let running: ChildProcess | undefined;
let interrupted = false;
class Interrupted extends Error {}

function finalCleanup(): void {
  try {
    cleanupProcesses();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
function onSignal(sig: NodeJS.Signals): void {
  if (interrupted && running?.pid !== undefined) {
    try {
      process.kill(-running.pid, 'SIGKILL');
    } catch {}
    return;
  }
  interrupted = true;
  if (running !== undefined) {
    console.error(`\nvs-criu: ${sig}: letting the running command end, then cleaning up (again: kill it)`);
    return;
  }
  console.error(`\nvs-criu: ${sig}: cleaning up`);
  finalCleanup();
  process.exit(130);
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);

// ---------------------------------------------------------------------------------------------------
// Running a tool.

interface CommandResult {
  ok: boolean;
  wallMs: number;
  userSysMs?: number;
  maxRssKiB?: number;
  error?: string;
}

async function runTool(tool: Tool, args: string[], roundDir: string, phase: string, logFile: string) {
  const errPath = join(roundDir, `${phase}.stderr`);
  const timePath = join(roundDir, `${phase}.time`);
  const out = openSync(join(roundDir, `${phase}.stdout`), 'w');
  const err = openSync(errPath, 'w');
  const argv = TIME ? [TIME, '-f', '%e %U %S %M', '-o', timePath, tool.path, ...args] : [tool.path, ...args];
  let timedOut = false;
  const t0 = process.hrtime.bigint();
  const child = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ['ignore', out, err] });
  running = child;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {}
  }, COMMAND_TIMEOUT_MS);
  const end = await new Promise<{ code: number | null; signal: string | null; spawnError?: Error }>(
    (resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (e) => resolve({ code: null, signal: null, spawnError: e }));
    },
  );
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  clearTimeout(timer);
  running = undefined;
  closeSync(out);
  closeSync(err);
  const r: CommandResult = { ok: end.code === 0, wallMs };
  if (TIME) {
    const t = parseTimeOutput(readText(timePath));
    if (t) Object.assign(r, t);
  }
  if (!r.ok) {
    const said = [firstErrorLine(readText(errPath)), firstErrorLine(readText(logFile))].filter(
      (s, i, a): s is string => s !== undefined && a.indexOf(s) === i,
    );
    const how = end.spawnError
      ? `could not start: ${end.spawnError.message}`
      : timedOut
        ? `timed out after ${COMMAND_TIMEOUT_MS / 1000} s`
        : end.signal
          ? `killed by ${end.signal}`
          : `exit code ${end.code}`;
    r.error = said.length > 0 ? said.join(' | ') : how;
  }
  if (interrupted) throw new Interrupted();
  return r;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------------
// Workloads.

interface Started {
  pid: number;
  /** Called between the dump and the restore. */
  beforeRestore?(): void;
  /** Throws (one line) unless the restored tree rooted at `root` works. */
  check(root: number): Promise<void>;
  /** Called at the end of the round, before the processes are killed. */
  release?(): void;
  /** After the round (its processes gone): tidy what a failed command left; a note if it should not be there. */
  afterRound?(restored: boolean): string | undefined;
}

interface Row {
  id: string;
  label: string;
  /** Extra options for both commands. */
  args: string[];
  /** Why the row cannot run here, if it cannot. */
  skip?(): string | undefined;
  start(dir: string): Promise<Started>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
) {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(pause);
  }
}

function assertAlive(pid: number): void {
  const s = stateOf(pid);
  if (s === undefined || s === 'Z' || s === 'X') throw new Error(`pid ${pid} is ${s ? 'a zombie' : 'gone'}`);
}

function start(argv: string[]): number {
  const pid = startTraceable(argv, { setsid: true });
  owned.add(pid);
  return pid;
}

/** A command with only fds 0-2 (a python3 trampoline closes the rest), in a session of its own. */
async function startClean(argv: string[]): Promise<number> {
  const pid = start([
    PYTHON,
    '-c',
    'import os, sys; os.closerange(3, 65536); os.execv(sys.argv[1], sys.argv[1:])',
    ...argv,
  ]);
  const want = `${argv.join('\0')}\0`;
  await until(`${argv[0]} to start`, 30_000, () => {
    assertAlive(pid);
    return readText(`/proc/${pid}/cmdline`) === want ? true : undefined;
  });
  return pid;
}

const cmdlineOf = (pid: number) => readText(`/proc/${pid}/cmdline`).split('\0').slice(0, -1).join(' ');

function sleepRow(): Row {
  return {
    id: 'sleep',
    label: '',
    args: [],
    async start() {
      const pid = await startClean([SLEEP, '1000']);
      return {
        pid,
        async check(root) {
          assertAlive(root);
          if (cmdlineOf(root) !== `${SLEEP} 1000`) throw new Error(`pid ${root} runs ${cmdlineOf(root)}`);
        },
      };
    },
  };
}

function memRow(id: string, mib: number): Row {
  return {
    id,
    label: '',
    args: [],
    skip() {
      if (mib < 1024) return undefined;
      const size = mib * 1024 ** 2;
      const avail = memAvailable();
      const fs = statfsSync(work);
      const free = Number(fs.bavail) * Number(fs.bsize);
      const tmpfs = fs.type === 0x01021994;
      // The workload, plus the images when they live in memory, plus 1 GiB to spare.
      const needMem = size + (tmpfs ? size : 0) + GIB;
      const needDisk = size + GIB;
      if (avail < needMem) return `skipped: MemAvailable ${gib(avail)} < ${gib(needMem)}`;
      if (free < needDisk) return `skipped: ${work} has ${gib(free)} free < ${gib(needDisk)}`;
      return undefined;
    },
    async start(dir) {
      const report = join(dir, 'memhog.report');
      const pid = start([workloadPath('memhog'), report, String(mib)]);
      const sum = await waitForLine(report, /^SUM /, { pid, timeoutMs: READY_TIMEOUT_MS });
      return {
        pid,
        async check(root) {
          assertAlive(root);
          const fromLine = readLines(report).length;
          process.kill(root, 'SIGUSR1');
          const again = await waitForLine(report, /^SUM /, {
            fromLine,
            pid: root,
            timeoutMs: READY_TIMEOUT_MS,
          });
          if (again !== sum) throw new Error(`memory changed: ${again} after restore, ${sum} before`);
        },
      };
    },
  };
}

function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readText('/proc/meminfo'));
  return m ? Number(m[1]) * 1024 : 0;
}
const gib = (bytes: number) => `${(bytes / GIB).toFixed(1)} GiB`;

/** One GET with a fresh connection; resolves to [status, body]. */
function httpGet(port: number, path: string, timeoutMs = 10_000): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`GET ${path}: no answer in ${timeoutMs} ms`)));
    sock.on('connect', () =>
      sock.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`),
    );
    sock.on('data', (b) => chunks.push(b));
    sock.on('error', reject);
    sock.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.\d (\d{3})/.exec(text);
      const at = text.indexOf('\r\n\r\n');
      if (!m || at < 0) reject(new Error(`GET ${path}: bad answer ${JSON.stringify(text.slice(0, 60))}`));
      else resolve([Number(m[1]), text.slice(at + 4)]);
      sock.destroy();
    });
  });
}

/** A port nobody listens on now (the kernel's pick for an ephemeral bind). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function httpRow(): Row {
  return {
    id: 'http',
    label: '',
    args: [],
    async start(dir) {
      const docroot = join(dir, 'www');
      mkdirSync(docroot);
      const token = `vs-criu ${process.pid} ${Date.now()}\n`;
      writeFileSync(join(docroot, 'hello.txt'), token);
      const port = await freePort();
      const pid = await startClean([
        PYTHON,
        '-m',
        'http.server',
        '--bind',
        '127.0.0.1',
        '--directory',
        docroot,
        String(port),
      ]);
      const get = async () => {
        const [status, body] = await httpGet(port, '/hello.txt');
        if (status !== 200 || body !== token)
          throw new Error(`GET /hello.txt: ${status} ${JSON.stringify(body)}`);
      };
      await until('http.server to answer', 30_000, async () => {
        assertAlive(pid);
        try {
          await get();
          return true;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ECONNREFUSED') return undefined;
          throw e;
        }
      });
      return {
        pid,
        async check(root) {
          assertAlive(root);
          await get();
        },
      };
    },
  };
}

function threadsRow(): Row {
  const N = 4;
  return {
    id: 'threads',
    label: '',
    args: [],
    async start(dir) {
      const report = join(dir, 'tickers.report');
      const pid = start([workloadPath('tickers'), report, String(N)]);
      await waitForLine(report, new RegExp(`^THREADS ${N}$`), { pid, timeoutMs: 30_000 });
      let from = 0;
      return {
        pid,
        beforeRestore() {
          from = readLines(report).length;
        },
        async check(root) {
          assertAlive(root);
          const tasks = readdirSync(`/proc/${root}/task`).length;
          if (tasks !== N) throw new Error(`pid ${root} has ${tasks} threads, not ${N}`);
          // Two TICK lines of the restored task, the later one with every count grown.
          let last = '';
          await until('every thread to count', 20_000, () => {
            const lines = readLines(report).slice(from);
            const fail = lines.find((l) => l.startsWith('FAIL'));
            if (fail) throw new Error(fail);
            const ticks = lines
              .filter((l) => l.startsWith('TICK '))
              .map((l) => l.split(' ').slice(1).map(Number));
            if (ticks.length < 2) return undefined;
            const a = ticks[0] as number[];
            const b = ticks.at(-1) as number[];
            last = `${a.join(',')} -> ${b.join(',')}`;
            return a.length === N && b.length === N && b.every((v, i) => v > (a[i] as number))
              ? true
              : undefined;
          }).catch((e) => {
            throw new Error(`${(e as Error).message} (counts ${last || 'none'})`);
          });
        },
      };
    },
  };
}

function treeRow(): Row {
  const sleeps = (pid: number) =>
    childrenOf(pid).filter((c) => cmdlineOf(c) === `${SLEEP} 1000` && stateOf(c) !== 'Z').length;
  return {
    id: 'tree',
    label: '',
    args: [],
    async start() {
      const script = `${SLEEP} 1000 & ${SLEEP} 1000 & ${SLEEP} 1000 & wait`;
      const pid = await startClean([SH, '-c', script]);
      await until('sh to start 3 sleeps', 30_000, () => {
        assertAlive(pid);
        return sleeps(pid) === 3 ? true : undefined;
      });
      return {
        pid,
        async check(root) {
          assertAlive(root);
          const n = sleeps(root);
          if (n !== 3) throw new Error(`sh ${root} has ${n} live sleep children, not 3`);
        },
      };
    },
  };
}

// A server in the tree that accepts N connections (from this process), says ACCEPTED N, and echoes.
const SERVER_PY = `
import os, selectors, socket, sys
os.closerange(3, 65536)
report, want = sys.argv[1], int(sys.argv[2])
def say(line):
    fd = os.open(report, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.write(fd, (line + '\\n').encode()); os.close(fd)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0)); srv.listen(4096)
say('PORT %d' % srv.getsockname()[1])
sel = selectors.DefaultSelector(); sel.register(srv, selectors.EVENT_READ)
accepted = 0
while True:
    for key, _ in sel.select():
        if key.fileobj is srv:
            c, _ = srv.accept(); sel.register(c, selectors.EVENT_READ); accepted += 1
            if accepted == want: say('ACCEPTED %d' % want)
        else:
            d = key.fileobj.recv(65536)
            if d: key.fileobj.sendall(d)
            else: sel.unregister(key.fileobj); key.fileobj.close()
`;

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection({ host: '127.0.0.1', port }, () => {
      c.removeListener('error', reject);
      // From now on a reset (a failed restore, the kill at the end) is no error of the bench.
      c.on('error', () => {});
      resolve(c);
    });
    c.once('error', reject);
  });
}

/** Each connection sends `ping <i>` and gets it back; resolves to how many did within the time. */
async function echoAll(conns: net.Socket[], timeoutMs: number): Promise<number> {
  let ok = 0;
  await Promise.all(
    conns.map(
      (c, i) =>
        new Promise<void>((resolve) => {
          const want = `ping ${i}\n`;
          let got = '';
          const done = () => {
            clearTimeout(timer);
            c.removeListener('data', onData);
            resolve();
          };
          const timer = setTimeout(done, timeoutMs);
          const onData = (b: Buffer) => {
            got += b.toString('latin1');
            if (got.length >= want.length) {
              if (got === want) ok++;
              done();
            }
          };
          c.on('data', onData);
          c.write(want);
        }),
    ),
  );
  return ok;
}

/**
 * nftables tables of a network lock (CRIU's `inet CRIU-<run id>`, which criu-ts uses too) that hold
 * the connection `key` ("127.0.0.1 . <port> . 127.0.0.1 . <port>", either way round).
 */
function lockTablesWith(a: string, b: string): string[] {
  let names: string[];
  try {
    names = execFileSync('nft', ['list', 'tables', 'inet'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => /^table inet (CRIU-\S+)$/.exec(l.trim())?.[1])
      .filter((n): n is string => n !== undefined);
  } catch {
    return [];
  }
  return names.filter((name) => {
    try {
      const text = execFileSync('nft', ['list', 'table', 'inet', name], { encoding: 'utf8' });
      return text.includes(`${a} . ${b}`) || text.includes(`${b} . ${a}`);
    } catch {
      return false; // gone meanwhile
    }
  });
}

function tcpRow(n: number): Row {
  return {
    id: 'tcp',
    label: '',
    args: ['--tcp-established', '--network-lock', 'nftables'],
    skip() {
      try {
        execFileSync('nft', ['--version'], { stdio: 'ignore' });
        return undefined;
      } catch {
        return 'skipped: nft(8) not found';
      }
    },
    async start(dir) {
      const report = join(dir, 'server.report');
      const pid = start([PYTHON, '-c', SERVER_PY, report, String(n)]);
      const port = Number(
        (await waitForLine(report, /^PORT \d+$/, { pid, timeoutMs: 30_000 })).split(' ')[1],
      );
      const conns: net.Socket[] = [];
      const release = () => {
        for (const c of conns) c.destroy();
      };
      try {
        for (let i = 0; i < n; i++) conns.push(await connect(port));
        await waitForLine(report, new RegExp(`^ACCEPTED ${n}$`), { pid, timeoutMs: 60_000 });
      } catch (e) {
        release();
        throw e;
      }
      // One of our connections, as a lock table lists it: only a table of this round holds it.
      const server = `127.0.0.1 . ${port}`;
      const client = `127.0.0.1 . ${(conns[0] as net.Socket).localPort}`;
      return {
        pid,
        release,
        async check(root) {
          assertAlive(root);
          const ok = await echoAll(conns, 20_000);
          if (ok !== n) throw new Error(`${ok}/${n} connections echo after restore`);
        },
        afterRound(restored) {
          // A dump that failed half way (or a restore that failed) can leave its lock table behind.
          const left = lockTablesWith(server, client);
          for (const t of left) {
            try {
              execFileSync('nft', ['delete', 'table', 'inet', t], { stdio: 'ignore' });
            } catch {}
          }
          if (left.length === 0) return undefined;
          const what = `network lock table inet ${left.join(', ')}`;
          return restored
            ? `the ${what} was left after a good restore; removed`
            : `removed the ${what} it left`;
        },
      };
    },
  };
}

const rowDefs: Record<string, Row> = {
  sleep: sleepRow(),
  mem64: memRow('mem64', 64),
  mem512: memRow('mem512', 512),
  mem2g: memRow('mem2g', 2048),
  http: httpRow(),
  threads: threadsRow(),
  tree: treeRow(),
  tcp: tcpRow(opts.conns),
};
for (const r of ROWS) {
  const def = rowDefs[r.id] as Row;
  def.label = r.id === 'tcp' ? `${opts.conns} TCP connections, nftables lock` : r.label;
}

// ---------------------------------------------------------------------------------------------------
// Rounds.

interface RoundResult {
  dump?: CommandResult;
  restore?: CommandResult;
  failed?: string;
  note?: string;
}

async function oneRound(row: Row, tool: Tool, tag: string): Promise<RoundResult> {
  const dir = join(work, `${row.id}-${tool.key}-${tag}`);
  const images = join(dir, 'img');
  mkdirSync(images, { recursive: true });
  const pidfile = join(dir, 'restored.pid');
  let w: Started | undefined;
  // One result object: the finally below adds its note to what the returns give back.
  const res: RoundResult = {};
  const fail = (why: string) => {
    res.failed = why;
    return res;
  };
  let restored = false;
  try {
    try {
      w = await row.start(dir);
    } catch (e) {
      if (e instanceof Interrupted) throw e;
      return fail(`the workload did not start: ${(e as Error).message.split('\n')[0]}`);
    }
    const tree = treeOf(w.pid);
    for (const p of tree) owned.add(p);
    res.dump = await runTool(
      tool,
      ['dump', '-t', String(w.pid), '-D', images, '-o', 'dump.log', ...row.args],
      dir,
      'dump',
      join(images, 'dump.log'),
    );
    if (!res.dump.ok) return fail(`dump: ${res.dump.error}`);
    // The dump killed the tree; reap it so that its pids are free for the restore.
    killAll(tree);
    for (const p of tree) owned.delete(p);
    w.beforeRestore?.();
    res.restore = await runTool(
      tool,
      ['restore', '-D', images, '-d', '--pidfile', pidfile, '-o', 'restore.log', ...row.args],
      dir,
      'restore',
      join(images, 'restore.log'),
    );
    const root = Number(readText(pidfile).trim());
    if (root > 0) for (const p of treeOf(root)) owned.add(p);
    if (!res.restore.ok) return fail(`restore: ${res.restore.error}`);
    if (!(root > 0)) return fail('restore: no pid in the pidfile');
    restored = true;
    try {
      await w.check(root);
    } catch (e) {
      return fail(`the restored tree does not work: ${(e as Error).message.split('\n')[0]}`);
    }
    return res;
  } finally {
    w?.release?.();
    cleanupProcesses();
    const note = w?.afterRound?.(restored);
    if (note) res.note = note;
    rmSync(dir, { recursive: true, force: true });
  }
}

interface ToolFigures {
  dumpMs: (number | undefined)[];
  restoreMs: (number | undefined)[];
  dumpCpuMs: number[];
  restoreCpuMs: number[];
  dumpRssKiB: number[];
  restoreRssKiB: number[];
  failed?: string;
  notes: string[];
}

const newFigures = (): ToolFigures => ({
  dumpMs: [],
  restoreMs: [],
  dumpCpuMs: [],
  restoreCpuMs: [],
  dumpRssKiB: [],
  restoreRssKiB: [],
  notes: [],
});

interface RowResult {
  row: Row;
  skipped?: string;
  figures: Record<string, ToolFigures>;
}

const results: RowResult[] = [];
const progress = (s: string) => {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${s}`);
};

async function runRow(row: Row): Promise<RowResult> {
  const skipped = row.skip?.();
  if (skipped) {
    console.error(`vs-criu: ${row.label}: ${skipped}`);
    return { row, skipped, figures: {} };
  }
  // On a terminal a progress line says where the bench is; elsewhere (a log) one line per row.
  if (!process.stderr.isTTY) console.error(`vs-criu: ${row.label}`);
  const figures: Record<string, ToolFigures> = {};
  for (const t of tools) figures[t.key] = newFigures();
  for (let r = -opts.warmup; r < opts.rounds; r++) {
    for (const tool of tools) {
      const f = figures[tool.key] as ToolFigures;
      if (f.failed) {
        if (r >= 0) {
          f.dumpMs.push(undefined);
          f.restoreMs.push(undefined);
        }
        continue;
      }
      progress(`${row.label}: ${r < 0 ? 'warm-up' : `round ${r + 1}/${opts.rounds}`}, ${tool.name}`);
      const res = await oneRound(row, tool, r < 0 ? `w${-r}` : String(r));
      if (res.note && !f.notes.includes(res.note)) f.notes.push(res.note);
      if (res.failed) {
        f.failed = res.failed;
        progress('');
        console.error(`vs-criu: ${row.label}: ${tool.name} failed: ${res.failed}`);
      }
      if (r < 0) continue;
      const ok = !res.failed;
      f.dumpMs.push(ok ? res.dump?.wallMs : undefined);
      f.restoreMs.push(ok ? res.restore?.wallMs : undefined);
      if (ok) {
        const d = res.dump as CommandResult;
        const s = res.restore as CommandResult;
        if (d.userSysMs !== undefined) f.dumpCpuMs.push(d.userSysMs);
        if (s.userSysMs !== undefined) f.restoreCpuMs.push(s.userSysMs);
        if (d.maxRssKiB !== undefined) f.dumpRssKiB.push(d.maxRssKiB);
        if (s.maxRssKiB !== undefined) f.restoreRssKiB.push(s.maxRssKiB);
      }
    }
  }
  progress('');
  return { row, figures };
}

// ---------------------------------------------------------------------------------------------------
// Output.

const fmtMs = (v: number | undefined) => (v === undefined ? '-' : v < 100 ? v.toFixed(1) : v.toFixed(0));
const fmtX = (v: number | undefined) => (v === undefined ? '-' : `${v.toFixed(2)}x`);
const fmtMiB = (kib: number[]) => (kib.length === 0 ? '-' : (Math.max(...kib) / 1024).toFixed(0));
const defined = (a: (number | undefined)[]) => a.filter((v): v is number => v !== undefined);

function table(head: string[], body: string[][], right: boolean[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (right[i] ? c.padStart(w[i] as number) : c.padEnd(w[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n');
}

const r1 = (v: number | undefined) => (v === undefined ? undefined : Math.round(v * 10) / 10);
const r3 = (v: number | undefined) => (v === undefined ? undefined : Math.round(v * 1000) / 1000);

function summarize(fig: ToolFigures) {
  return {
    dump_ms: r1(median(defined(fig.dumpMs))),
    restore_ms: r1(median(defined(fig.restoreMs))),
    dump_cpu_ms: median(fig.dumpCpuMs),
    restore_cpu_ms: median(fig.restoreCpuMs),
    peak_rss_kib: Math.max(0, ...fig.dumpRssKiB, ...fig.restoreRssKiB) || undefined,
    dump_peak_rss_kib: fig.dumpRssKiB.length ? Math.max(...fig.dumpRssKiB) : undefined,
    restore_peak_rss_kib: fig.restoreRssKiB.length ? Math.max(...fig.restoreRssKiB) : undefined,
    rounds_ok: defined(fig.restoreMs).length,
    dump_all_ms: fig.dumpMs.map((v) => (v === undefined ? null : Math.round(v * 10) / 10)),
    restore_all_ms: fig.restoreMs.map((v) => (v === undefined ? null : Math.round(v * 10) / 10)),
    failed: fig.failed,
    notes: fig.notes.length ? fig.notes : undefined,
  };
}

function report(): void {
  const both = tools.length === 2;
  const head = [
    'workload',
    'tool',
    'dump ms',
    'restore ms',
    'dump cpu',
    'rst cpu',
    'RSS dump',
    'RSS rst',
    'ok',
  ];
  const right = [false, false, true, true, true, true, true, true, true];
  const body: string[][] = [];
  const summary: string[][] = [];
  const json: Record<string, unknown> = {};
  const failures: string[] = [];
  for (const { row, skipped, figures } of results) {
    if (skipped) {
      body.push([row.label, 'skipped']);
      summary.push([row.label, '-', '-', '-', skipped]);
      failures.push(`${row.label}: ${skipped}`);
      json[row.id] = { label: row.label, skipped };
      continue;
    }
    const entry: Record<string, unknown> = { label: row.label };
    let first = true;
    for (const tool of tools) {
      const f = figures[tool.key] as ToolFigures;
      const s = summarize(f);
      entry[tool.key] = s;
      const okText = `${s.rounds_ok}/${opts.rounds}`;
      body.push([
        first ? row.label : '',
        tool.name,
        fmtMs(s.dump_ms),
        fmtMs(s.restore_ms),
        fmtMs(s.dump_cpu_ms),
        fmtMs(s.restore_cpu_ms),
        fmtMiB(f.dumpRssKiB),
        fmtMiB(f.restoreRssKiB),
        f.failed ? `${okText} failed` : okText,
      ]);
      if (f.failed) failures.push(`${row.label}, ${tool.name}: failed: ${f.failed}`);
      for (const n of f.notes) failures.push(`${row.label}, ${tool.name}: ${n}`);
      first = false;
    }
    const ts = figures.criu_ts as ToolFigures;
    if (both) {
      const c = figures.criu as ToolFigures;
      const d = ratios(ts.dumpMs, c.dumpMs);
      const r = ratios(ts.restoreMs, c.restoreMs);
      entry.ratio = {
        dump: {
          median_of_ratios: r3(d.medianOfRatios),
          ratio_of_medians: r3(d.ratioOfMedians),
          pairs: d.pairs,
        },
        restore: {
          median_of_ratios: r3(r.medianOfRatios),
          ratio_of_medians: r3(r.ratioOfMedians),
          pairs: r.pairs,
        },
      };
      body.push([
        '',
        'criu-ts/CRIU',
        fmtX(d.medianOfRatios),
        fmtX(r.medianOfRatios),
        '',
        '',
        '',
        '',
        `${Math.min(d.pairs, r.pairs)} pairs`,
      ]);
      summary.push([
        row.label,
        c.failed
          ? 'CRIU failed'
          : ts.failed
            ? 'failed'
            : `${fmtX(d.medianOfRatios)} (${fmtX(d.ratioOfMedians)})`,
        c.failed
          ? 'CRIU failed'
          : ts.failed
            ? 'failed'
            : `${fmtX(r.medianOfRatios)} (${fmtX(r.ratioOfMedians)})`,
        fmtMiB([...ts.dumpRssKiB, ...ts.restoreRssKiB]),
        ts.failed ? `criu-ts failed: ${ts.failed}` : c.failed ? `CRIU failed: ${c.failed}` : '',
      ]);
    } else {
      summary.push([
        row.label,
        ts.failed ? 'failed' : fmtMs(median(defined(ts.dumpMs))),
        ts.failed ? 'failed' : fmtMs(median(defined(ts.restoreMs))),
        fmtMiB([...ts.dumpRssKiB, ...ts.restoreRssKiB]),
        ts.failed ? `criu-ts failed: ${ts.failed}` : '',
      ]);
    }
    json[row.id] = entry;
  }
  console.log('');
  console.log(
    `criu-ts vs CRIU, whole commands, ${opts.rounds} rounds (+${opts.warmup} warm-up) per row, interleaved ${tools.map((t) => t.name).join(', ')}`,
  );
  for (const t of tools) console.log(`  ${t.name}: ${t.path}`);
  if (criuNote) console.log(`  (${criuNote})`);
  console.log(
    `  medians; ms = wall time of the whole command; cpu = user+sys ms; RSS = peak of the tool's process, MiB (max over rounds)${TIME ? '' : ' [no /usr/bin/time: no cpu and RSS]'}`,
  );
  console.log('');
  console.log(table(head, body, right));
  console.log('');
  if (both) {
    console.log(
      table(['workload', 'dump ratio', 'restore ratio', 'criu-ts RSS MiB', ''], summary, [
        false,
        true,
        true,
        true,
        false,
      ]),
    );
    console.log(
      '  ratio = criu-ts / CRIU: median of the per-round ratios (ratio of the medians); lower is better',
    );
  } else {
    console.log(
      table(['workload', 'dump ms', 'restore ms', 'criu-ts RSS MiB', ''], summary, [
        false,
        true,
        true,
        true,
        false,
      ]),
    );
  }
  if (failures.length) {
    console.log('');
    for (const f of failures) console.log(f);
  }
  if (opts.json) {
    console.log(
      JSON.stringify({
        criu: tools.find((t) => t.key === 'criu')?.path ?? null,
        criu_ts: opts.criuTs,
        rounds: opts.rounds,
        warmup: opts.warmup,
        rss_source: TIME ? '/usr/bin/time %M (wait4 ru_maxrss)' : null,
        rows: json,
      }),
    );
  }
}

let status = 0;
try {
  for (const id of opts.rows) results.push(await runRow(rowDefs[id] as Row));
} catch (e) {
  if (e instanceof Interrupted) {
    console.error('vs-criu: interrupted');
    status = 130;
  } else {
    console.error(`vs-criu: ${(e as Error).stack ?? e}`);
    status = 1;
  }
} finally {
  finalCleanup();
}
if (status === 0) report();
process.exit(status);
