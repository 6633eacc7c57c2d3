#!/usr/bin/env node
// Dump and restore through a warm RPC service, request to reply (run as root, after `pnpm run build`):
//   pnpm bench:service [--criu /path/to/criu] [--rounds 15] [--warmup 3] [--rows sleep,mem64] [--json]
//
// For each tool (criu-ts, then CRIU's own `criu service` when --criu names one) it starts `TOOL service
// --address SOCK` once and keeps it for every round. Each round of a row starts the workload (`sleep
// 1000`, or memhog with 64 MiB of touched memory) in a session of its own, waits until it is ready, then
// times, from the request sent to the reply read, a DUMP (images_dir given as a path; the tree is killed,
// CRIU's default), reaps the tree, and times a RESTORE of it; it checks the restored root runs, kills and
// reaps it, then lets the service settle (--settle ms, 1500: a pause between rounds, as between a real
// client's requests; CRIU's service forks a worker per connection). Warm-up rounds (uncounted) come first.
// Prints medians (and min) per row and tool, and with --json one JSON object as the last line. The bench
// is a child subreaper: trees CRIU restored end up its children when the service's worker exits
// (criu-ts's are the service's children, reaped by it: killAndReap waits until they are gone).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildWorkloads, workloadPath } from '../../workloads/index.js';
import { waitForLine } from '../../workloads/report.js';
import { importBuilt, median, requireBuilt } from '../common.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..');
const USAGE =
  'usage: bench:service [--criu PATH] [--rounds N] [--warmup N] [--rows sleep,mem64] [--settle MS] [--json]';

interface Options {
  criu?: string;
  rounds: number;
  warmup: number;
  rows: string[];
  json: boolean;
  /** ms to wait after each round: a worker that restored exits, and its warm successor starts. */
  settle: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 15, warmup: 3, rows: ['sleep', 'mem64'], json: false, settle: 1500 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--criu') o.criu = resolvePath(process.env.INIT_CWD ?? process.cwd(), val());
    else if (a === '--rounds') o.rounds = Number(val());
    else if (a === '--warmup') o.warmup = Number(val());
    else if (a === '--rows') o.rows = val().split(',');
    else if (a === '--json') o.json = true;
    else if (a === '--settle') o.settle = Number(val());
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  for (const r of o.rows) if (r !== 'sleep' && r !== 'mem64') throw new Error(`unknown row ${r}`);
  return o;
}

const opts = parseArgs(process.argv.slice(2));
if (process.getuid?.() !== 0) {
  console.error('bench:service: run as root');
  process.exit(1);
}
requireBuilt(['sys', 'rpc', 'compel'], 'bench:service: ');
const sys = await importBuilt('sys');
const rpc = await importBuilt('rpc');
const { killAndReap, startTraceable, ensureSubreaper } = await importBuilt('compel');
ensureSubreaper();
await buildWorkloads();

const work = mkdtempSync(join(tmpdir(), 'criu-ts-bench-service-'));
const owned = new Set<number>();
const services: number[] = [];

function cleanupAll(): void {
  for (const p of owned) killAndReap(p);
  for (const p of services) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanupAll);
process.on('SIGINT', () => process.exit(130));

interface Tool {
  name: string;
  argv: string[];
}
const tools: Tool[] = [{ name: 'criu-ts', argv: [process.execPath, join(repo, 'apps/cli/bin/criu-ts.cjs')] }];
if (opts.criu && existsSync(opts.criu)) tools.push({ name: 'criu', argv: [opts.criu] });
else if (opts.criu) console.error(`bench:service: no CRIU at ${opts.criu}: criu-ts alone`);

/** `TOOL service --address SOCK`, resolved when the socket exists. */
async function startService(t: Tool): Promise<string> {
  const dir = join(work, t.name);
  mkdirSync(dir);
  const address = join(dir, 'service.sock');
  const child = spawn(
    t.argv[0] as string,
    [...t.argv.slice(1), 'service', '--address', address, '-o', 'service.log', '-W', dir],
    {
      stdio: 'ignore',
      cwd: dir,
    },
  );
  services.push(child.pid as number);
  const until = Date.now() + 30_000;
  while (!existsSync(address)) {
    if (Date.now() > until) throw new Error(`${t.name} service: no socket`);
    await new Promise((r) => setTimeout(r, 5));
  }
  // criu-ts: let the first worker start (a pool worker is a node process of its own).
  await new Promise((r) => setTimeout(r, 1500));
  return address;
}

function call(
  address: string,
  req: unknown,
): { resp: { success: boolean; cr_errmsg?: string; restore?: { pid: number } }; ms: number } {
  const fd = sys.socket(sys.AF_UNIX, sys.SOCK_SEQPACKET | sys.SOCK_CLOEXEC);
  try {
    sys.connect(fd, sys.encodeSockaddrUn(address));
    const bytes = rpc.encodeRequest(req);
    const buf = Buffer.alloc(65536);
    const t0 = performance.now();
    sys.send(fd, bytes);
    const n = sys.recv(fd, buf);
    const ms = performance.now() - t0;
    if (n === 0) throw new Error('the service closed the connection');
    return { resp: rpc.decodeResponse(buf.subarray(0, n)), ms };
  } finally {
    sys.close(fd);
  }
}

async function startRow(row: string): Promise<number> {
  if (row === 'sleep') {
    const pid = startTraceable(['/usr/bin/sleep', '1000'], { setsid: true });
    owned.add(pid);
    return pid;
  }
  const dir = mkdtempSync(join(work, 'mem-'));
  const report = join(dir, 'report');
  const pid = startTraceable([workloadPath('memhog'), report, '64'], { setsid: true });
  owned.add(pid);
  await waitForLine(report, (l: string) => l.startsWith('SUM'), { pid });
  return pid;
}

function alive(pid: number): boolean {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const st = s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
    return st !== 'Z' && st !== 'X';
  } catch {
    return false;
  }
}

/** The median, NaN when there is none (a row that failed before its first round). */
const medianOf = (v: number[]) => median(v) ?? Number.NaN;

const results: Record<string, Record<string, { dump: number[]; restore: number[]; failed?: string }>> = {};
for (const t of tools) {
  const address = await startService(t);
  for (const row of opts.rows) {
    const r = { dump: [] as number[], restore: [] as number[] } as {
      dump: number[];
      restore: number[];
      failed?: string;
    };
    results[row] = { ...results[row], [t.name]: r };
    for (let round = 0; round < opts.warmup + opts.rounds && !r.failed; round++) {
      const pid = await startRow(row);
      const images = join(work, `${t.name}-${row}-${round}`);
      mkdirSync(images);
      const d = call(address, { type: 1, opts: { images_dir_fd: -1, images_dir: images, pid } });
      if (!d.resp.success) {
        r.failed = `dump: ${d.resp.cr_errmsg ?? 'failed'}`;
        break;
      }
      killAndReap(pid);
      owned.delete(pid);
      const s = call(address, { type: 2, opts: { images_dir_fd: -1, images_dir: images } });
      if (!s.resp.success || s.resp.restore?.pid !== pid || !alive(pid)) {
        r.failed = `restore: ${s.resp.cr_errmsg ?? `root ${s.resp.restore?.pid} not running`}`;
        break;
      }
      owned.add(pid);
      killAndReap(pid);
      owned.delete(pid);
      rmSync(images, { recursive: true, force: true });
      if (round >= opts.warmup) {
        r.dump.push(d.ms);
        r.restore.push(s.ms);
      }
      await new Promise((res) => setTimeout(res, opts.settle));
    }
  }
}

const f = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(1));
console.log(
  `service: request to reply, ms (median / min of ${opts.rounds} rounds after ${opts.warmup} warm-up)`,
);
console.log(
  ['row', 'tool', 'dump med', 'dump min', 'restore med', 'restore min'].map((s) => s.padEnd(12)).join(''),
);
const out: Record<string, unknown> = {};
for (const [row, byTool] of Object.entries(results)) {
  for (const [tool, r] of Object.entries(byTool)) {
    if (r.failed) console.log([row, tool].map((s) => s.padEnd(12)).join('') + `failed: ${r.failed}`);
    else
      console.log(
        [
          row,
          tool,
          f(medianOf(r.dump)),
          f(Math.min(...r.dump)),
          f(medianOf(r.restore)),
          f(Math.min(...r.restore)),
        ]
          .map((s) => s.padEnd(12))
          .join(''),
      );
    out[`${row}.${tool}`] = r.failed
      ? { failed: r.failed }
      : { dumpMs: medianOf(r.dump), restoreMs: medianOf(r.restore) };
  }
}
if (opts.json) console.log(JSON.stringify(out));
process.exit(0);
