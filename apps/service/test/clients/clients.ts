// Helpers of the tests in which CRIU's own clients (Debian's pycriu, go-criu) drive a CRIU binary through
// `BINARY swrk FD`: the binary under test, the clients run as separate programs with a bounded wait, and
// the swrk workers they leave behind. The binary is criu-ts's command by default;
// CRIU_RPC_TEST_BINARY=/path/to/criu runs the same tests against CRIU itself.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import {
  onCleanup,
  PYTHON,
  procState,
  REPO,
  spawnClean,
  track,
  treeOf,
  unixListening,
  waitFor,
} from '@criu-ts/testkit';
import { expect } from 'vitest';
import { isDescendantOf } from '../../../../tools/workloads/index.js';

export * from '@criu-ts/testkit';
export { killAndReap };

/** The binary the clients exec as `BINARY swrk FD`. */
export const RPC_BINARY = process.env.CRIU_RPC_TEST_BINARY || path.join(REPO, 'apps/cli/bin/criu-ts');

export const CLIENTS_DIR = path.join(REPO, 'apps/service/test/clients');

/** Throws unless the binary under test can be executed. */
export function checkRpcBinary(): void {
  try {
    fs.accessSync(RPC_BINARY, fs.constants.X_OK);
  } catch {
    throw new Error(
      `${RPC_BINARY} is not executable (CRIU_RPC_TEST_BINARY, default criu-ts's apps/cli/bin/criu-ts)`,
    );
  }
}

/** CRIU's version as `BINARY --version` prints it ("Version: 4.2", "GitID: ..."). */
export function binaryVersion(): {
  text: string;
  major: number;
  minor: number;
  sublevel: number;
  gitid: boolean;
} {
  const out = execFileSync(RPC_BINARY, ['--version'], { encoding: 'utf8' });
  const m = /^Version:\s*((\d+)\.(\d+)(?:\.(\d+))?)/m.exec(out);
  if (!m) throw new Error(`${RPC_BINARY} --version: no "Version: X.Y" line in ${JSON.stringify(out)}`);
  return {
    text: m[1]!,
    major: Number(m[2]),
    minor: Number(m[3]),
    sublevel: Number(m[4] ?? 0),
    gitid: /^GitID:/m.test(out),
  };
}

/** podman's minimum CRIU version (3.11; runc's is lower): what real clients must be told at least. */
export const CLIENTS_MIN_CRIU = 31100;

/**
 * The VERSION answer, as go-criu computes it (major * 10000 + minor * 100 + sublevel, the next minor
 * for a git build) or as pycriu gets it (with `name` when sent). A binary whose `--version` is CRIU's (3
 * or later) answers with its own version; criu-ts (0.x) answers with the CRIU version whose behaviour it
 * has, which must be one real clients accept, and a name, if any, that has its own version in it.
 */
export function expectVersionAnswer(got: { number: number; name?: unknown }): void {
  const own = binaryVersion();
  if (own.major >= 3) {
    let n = own.major * 10000 + own.minor * 100 + own.sublevel;
    if (own.gitid) n = n - (n % 100) + 100;
    expect(got.number, `the version ${RPC_BINARY} --version prints`).toBe(n);
    return;
  }
  expect(
    got.number,
    `a CRIU version real clients accept (${RPC_BINARY} is ${own.text})`,
  ).toBeGreaterThanOrEqual(CLIENTS_MIN_CRIU);
  if (got.name !== undefined && got.name !== null) expect(String(got.name)).toContain(own.text);
}

export type Line = Record<string, unknown>;

export interface ClientRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout's JSON lines */
  lines: Line[];
}

/** The line of `action`'s result (`{"action": ..., "ok": ...}`); throws with the whole run when absent. */
export function result(r: ClientRun, action: string): Line {
  const line = r.lines.find((l) => l.action === action);
  if (!line) throw new Error(`no ${action} result: ${describeRun(r)}`);
  return line;
}

/** The run for a failure message, with the end of every log file in `dir` (the images dir) if given. */
export function describeRun(r: ClientRun, dir?: string): string {
  let s = `exit ${r.code ?? r.signal}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`;
  if (dir && fs.existsSync(dir))
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.log'))) {
      const lines = fs.readFileSync(path.join(dir, f), 'utf8').trimEnd().split('\n');
      s += `\n--- ${f} (last lines)\n${lines.slice(-15).join('\n')}`;
    }
  return s;
}

/**
 * Run a client program in its own process group and resolve when it exits; after `timeoutMs` its whole
 * group (the client and the swrk it started) is SIGKILLed and the run rejects. Either way every swrk
 * worker left below this process must then end on its own (bounded wait): one still there is killed,
 * reaped and reported.
 */
export async function runClient(
  argv: string[],
  opts: { timeoutMs?: number; service?: number } = {},
): Promise<ClientRun> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let timedOut = false;
  const r = await new Promise<ClientRun>((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines: Line[] = [];
      for (const l of stdout.split('\n')) {
        if (!l.trim()) continue;
        try {
          lines.push(JSON.parse(l) as Line);
        } catch {
          lines.push({ unparsed: l });
        }
      }
      resolve({ code, signal, stdout, stderr, lines });
    });
  });
  if (timedOut) {
    await expectNoSwrkLeft(2_000, opts.service).catch(() => {});
    throw new Error(`${argv.join(' ')}: still running after ${timeoutMs} ms, killed: ${describeRun(r)}`);
  }
  await expectNoSwrkLeft(10_000, opts.service);
  return r;
}

/**
 * Pids of the swrk workers below this process: `... swrk FD` in their argv, or a criu-ts process title
 * (`criu-ts swrk`, `criu-ts dump --rpc -t PID`), which replaces the argv.
 */
export function swrkWorkers(service?: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!(argv.includes('swrk') || argv[0]?.startsWith('criu-ts ')) || !isDescendantOf(pid)) continue;
      if (service === undefined || (pid !== service && !isDescendantOf(pid, service))) out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Wait (bounded) until no swrk worker is left below us; kill, reap and report any that stays. Zombies
 * re-parented to us (a swrk its client did not wait for: its argv is gone then) are reaped by pid.
 */
export async function expectNoSwrkLeft(timeoutMs = 10_000, service?: number): Promise<void> {
  try {
    await waitFor(
      () => swrkWorkers(service).every((p) => isZombie(p)),
      () => `the swrk workers ${swrkWorkers(service).join(' ')} to exit after their client`,
      timeoutMs,
    );
  } finally {
    for (const p of swrkWorkers(service)) killAndReap(p);
    for (const p of zombieChildren()) killAndReap(p);
  }
}

/** Our children that are zombies (none of them is libuv's: the client was reaped before 'close'). */
function zombieChildren(): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z' && Number(f[1]) === process.pid) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

function isZombie(pid: number): boolean {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s[s.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return true;
  }
}

// ---- the clients ----------------------------------------------------------------------------------------

export const PYCRIU_CLIENT = path.join(CLIENTS_DIR, 'pycriu_client.py');

/** Throws with what to install unless Debian's pycriu imports in the system Python. */
export function checkPycriu(): void {
  try {
    execFileSync(PYTHON, ['-c', 'from pycriu.criu import criu; from pycriu import rpc'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (e) {
    throw new Error(
      `pycriu is missing: ${PYTHON} -c 'import pycriu' failed (apt-get install criu, see tools/ci/setup.sh): ${(e as Error).message}`,
    );
  }
}

/** `pycriu_client.py --binary BINARY ARGS` (swrk), or `--service SOCK ARGS`, under the system Python. */
export function runPycriu(args: string[], service?: Service): Promise<ClientRun> {
  const target = service ? ['--service', service.sock] : ['--binary', RPC_BINARY];
  return runClient([PYTHON, PYCRIU_CLIENT, ...target, ...args], { service: service?.pid });
}

export interface Service {
  pid: number;
  sock: string;
}

/**
 * Start `BINARY service --address SOCK` (tracked: killed by pid after the test) and wait until it
 * listens on SOCK (/proc/net/unix); SOCK's path.
 */
export async function startService(dir: string): Promise<Service> {
  const sock = path.join(dir, 'criu-service.sock');
  const pid = spawnClean([RPC_BINARY, 'service', '--address', sock]);
  // Its workers (a warm pool, or one per connection) are killed with it, by pid.
  onCleanup(() => track(...treeOf(pid).slice(1)));
  await waitFor(() => {
    if (procState(pid) === 'gone' || procState(pid) === 'Z')
      throw new Error(`${RPC_BINARY} service --address ${sock} (pid ${pid}) ended`);
    return unixListening(sock);
  }, `${RPC_BINARY} service (pid ${pid}) to listen on ${sock}`);
  return { pid, sock };
}

const GO_SOURCES = path.join(CLIENTS_DIR, 'go');
const GO_CRIU_SRC = '/usr/share/gocode/src/github.com/checkpoint-restore/go-criu';

/**
 * Build the go-criu client offline from Debian's sources (go.mod replaces the modules with
 * /usr/share/gocode/src), with its Go cache in `dir`; the binary's path. Throws with what to install
 * when the toolchain or go-criu's sources are missing.
 */
export function buildGoClient(dir: string): string {
  let go = '';
  try {
    go = execFileSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).trim();
  } catch {
    // below
  }
  if (!go || !fs.existsSync(path.join(GO_CRIU_SRC, 'go.mod')))
    throw new Error(
      `the go-criu client cannot be built: ${go ? '' : 'no go toolchain on PATH; '}${
        fs.existsSync(GO_CRIU_SRC) ? '' : `no ${GO_CRIU_SRC}; `
      }apt-get install golang-go golang-github-checkpoint-restore-go-criu-dev (tools/ci/setup.sh)`,
    );
  const out = path.join(dir, 'gocriu-client');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GOPATH: path.join(dir, 'gopath'),
    GOCACHE: path.join(dir, 'cache'),
    GOFLAGS: '-mod=readonly',
    GOPROXY: 'off',
    GOTOOLCHAIN: 'local',
    GO111MODULE: 'on',
    CGO_ENABLED: '0',
  };
  try {
    execFileSync(go, ['build', '-o', out, '.'], { cwd: GO_SOURCES, env, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`go build of ${GO_SOURCES} failed: ${err.stderr?.toString() || err.message}`);
  }
  return out;
}

/** `gocriu-client -criu BINARY ARGS`. */
export function runGoClient(client: string, args: string[]): Promise<ClientRun> {
  return runClient([client, '-criu', RPC_BINARY, ...args]);
}
