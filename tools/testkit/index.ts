// Test helpers shared by the packages' tests (@criu-ts/testkit): workloads started through startTraceable (never child_process children, so
// libuv never reaps them or steals their ptrace stops), one temp dir per use, the criu-ts CLI run as a
// separate process (apps/cli/test/helpers.ts), crit's decoder run in one Python process per batch, and /proc read independently of
// @criu-ts/bfd so that the images are checked against a second reading of the kernel's state.
// Every wait is on a condition, bounded; cleanup() kills and reaps by pid, unmounts, removes temp dirs.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSubreaper, killAndReap, type StartOptions, startTraceable } from '@criu-ts/compel';
import { type PyJson, pyParse } from '@criu-ts/images';
import { expect } from 'vitest';
import { testResources } from '../workloads/cleanup.js';
import { buildWorkloads, type WorkloadName, workloadPath } from '../workloads/index.js';
import { readLines, waitForLine } from '../workloads/report.js';

// Every process the tests start, and every tree criu-ts restores, ends up below this process when its
// parent dies: so cleanup can tell our processes from those of test files running in parallel.
ensureSubreaper();

export { buildWorkloads, readLines, waitForLine, workloadPath };

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CRIT = '/usr/bin/crit';
export const PYTHON = '/usr/bin/python3';
const BATCH = path.join(REPO, 'tools/crit-compat/batch.py');
export const haveCrit = fs.existsSync(CRIT) && fs.existsSync(PYTHON) && fs.existsSync(BATCH);

// ---- cleanup ------------------------------------------------------------------------------------------

const resources = testResources({ killAndReap, prefix: 'criu-ts-core-' });
/** A fresh temp dir; `track` pids, `onCleanup` steps; `cleanup` undoes them after each test. */
export const { tempDir, track, onCleanup, cleanup } = resources;

/** Mount a tmpfs of `size` on `dir` (created), unmounted by cleanup(). */
export function mountTmpfs(dir: string, size: string): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'none', dir]);
  resources.afterKill(() => unmount(dir));
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir]);
  } catch {
    execFileSync('umount', ['-l', dir]);
  }
}

// ---- processes ----------------------------------------------------------------------------------------

export interface Workload {
  pid: number;
  report: string;
  dir: string;
}

/**
 * Start a workload (report in a fresh temp dir, `args` after the report path) in its own session, so
 * that a dump without --shell-job accepts it. Tracked for cleanup.
 */
export function startWorkload(name: WorkloadName, args: string[] = [], opts: StartOptions = {}): Workload {
  const dir = tempDir(`criu-ts-core-${name}-`);
  const report = path.join(dir, 'report');
  const pid = startTraceable([workloadPath(name), report, ...args], { setsid: true, ...opts });
  track(pid);
  return { pid, report, dir };
}

/**
 * Start a workload as the child of a shell that leads its own session and process group, so that
 * both leaders are outside the workload's tree whatever session the test runner itself is in.
 * `leader` is the shell. Both are tracked for cleanup.
 */
export async function startInShellSession(
  name: WorkloadName,
  args: string[] = [],
): Promise<Workload & { leader: number }> {
  const dir = tempDir(`criu-ts-core-${name}-`);
  const report = path.join(dir, 'report');
  const argv = [workloadPath(name), report, ...args];
  const leader = startTraceable(['/bin/sh', '-c', '"$@" & wait', 'sh', ...argv], { setsid: true });
  track(leader);
  let pid = 0;
  await waitFor(() => {
    const kids = fs.readFileSync(`/proc/${leader}/task/${leader}/children`, 'utf8').trim();
    pid = kids ? Number(kids.split(' ')[0]) : 0;
    return pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') === `${argv.join('\0')}\0`;
  }, `${name} to start under a shell (pid ${leader})`);
  track(pid);
  return { pid, report, dir, leader };
}

// Closes every fd above 2 (a vitest worker leaks some, e.g. a pipe) and execs the command.
const CLEAN_EXEC = 'import os, sys; os.closerange(3, 65536); os.execv(sys.argv[1], sys.argv[1:])';

/** Start `argv` in its own session with only fds 0-2 (see startCommand), without waiting. Tracked. */
export function spawnClean(argv: string[], opts: StartOptions = {}): number {
  const pid = startTraceable([PYTHON, '-c', CLEAN_EXEC, ...argv], { setsid: true, ...opts });
  track(pid);
  return pid;
}

/** Every pid of the tree of `root` (root first), read from /proc's children lists. */
export function treeOf(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    let kids = '';
    try {
      kids = fs.readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').trim();
    } catch {
      // gone
    }
    if (kids) out.push(...kids.split(' ').map(Number));
  }
  return out;
}

/**
 * Start any command in its own session, as our re-parented child, with only fds 0-2 (the C workloads
 * close inherited fds themselves; others get them closed by a python3 trampoline). Resolves once the
 * command runs (its cmdline is argv). Tracked for cleanup.
 */
export async function startCommand(argv: string[], opts: StartOptions = {}): Promise<number> {
  const pid = spawnClean(argv, opts);
  const want = `${argv.join('\0')}\0`;
  await waitFor(() => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') === want;
    } catch {
      return false;
    }
  }, `${argv[0]} (pid ${pid}) to exec`);
  return pid;
}

/**
 * A python3 loop in the workloads' style: `READY <pid>`, then 1, 2, 3, ... one line every 10 ms (one
 * write per line). `prelude` runs first (e.g. to hold a socketpair).
 */
export async function startPythonCounter(prelude = ''): Promise<Workload> {
  const dir = tempDir('criu-ts-core-py-');
  const report = path.join(dir, 'report');
  const script = [
    'import os, sys, time',
    prelude,
    "out = open(sys.argv[1], 'a', buffering=1)",
    "out.write('READY %d\\n' % os.getpid())",
    'n = 0',
    'while True:',
    '    n += 1',
    "    out.write('%d\\n' % n)",
    '    time.sleep(0.01)',
  ].join('\n');
  const pid = await startCommand([PYTHON, '-c', script, report]);
  return { pid, report, dir };
}

// ---- waiting ------------------------------------------------------------------------------------------

/** Poll `cond` (every 2 ms) until it holds; throws after `timeoutMs` with `what`. */
export async function waitFor(
  cond: () => boolean,
  what: string | (() => string),
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Wait until the report has `more` complete lines beyond what it has now. */
export async function waitForMoreLines(report: string, more: number, pid: number): Promise<void> {
  const n = readLines(report).length;
  await waitForLine(report, (_l, i) => i >= n + more - 1, { pid, fromLine: n });
}

// ---- /proc, read independently of @criu-ts/bfd ------------------------------------------------------

/**
 * A unix socket bound to `path` listens (__SO_ACCEPTCON in /proc/net/unix's flags). The file appears at
 * bind(); only listen() takes connections, so a service is ready when this says so, not when the file is there.
 */
export function unixListening(path: string): boolean {
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[7] === path && (Number.parseInt(f[3] ?? '0', 16) & 0x10000) !== 0) return true;
  }
  return false;
}

/** /proc state letter of a process ('gone' when it does not exist). */
export function procState(pid: number, tid = pid): string {
  try {
    const s = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return 'gone';
  }
}

/**
 * The file locks /proc/locks shows (waiters left out) held by `pids`, or on a file directly in `dir` (OFD
 * locks show no pid): "KIND TYPE PID MAJ:MIN:INO START-END" each, sorted.
 */
export function fileLocksOf(pids: number[], dir?: string): string[] {
  const inodes = new Set(
    dir ? fs.readdirSync(dir).map((n) => String(fs.statSync(path.join(dir, n)).ino)) : [],
  );
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/locks', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] === '->') continue;
    const [, kind, , type, pid, file, start, end] = f;
    if (pids.includes(Number(pid)) || inodes.has(file?.split(':')[2] ?? ''))
      out.push(`${kind} ${type} ${pid} ${file} ${start}-${end}`);
  }
  return out.sort();
}

/** The fields of /proc/PID/stat after the comm, numbered as in proc(5) (index 3 = state). */
export function procStat(pid: number): { comm: string; f: (n: number) => string } {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), f: (n) => rest[n - 3] ?? '' };
}

/** /proc/PID/status as key -> value (tabs kept between values). */
export function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** The syscall a task is blocked in (first field of /proc/PID/syscall), or undefined when running. */
export function procSyscall(pid: number): number | undefined {
  try {
    const f = fs.readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0] ?? '';
    return /^\d+$/.test(f) ? Number(f) : undefined;
  } catch {
    return undefined;
  }
}

/** Wait until a task sleeps in pause() (syscall 34): a memhog or zombie workload done with its work. */
export async function waitInPause(pid: number): Promise<void> {
  await waitFor(
    () => procState(pid) === 'S' && procSyscall(pid) === 34,
    () => `pid ${pid} asleep in pause() (${procState(pid)}, syscall ${procSyscall(pid)})`,
  );
}

export function tracerPid(pid: number): number {
  try {
    return Number(procStatus(pid).TracerPid);
  } catch {
    return -1;
  }
}

export interface MapsLine {
  start: bigint;
  end: bigint;
  prot: number;
  shared: boolean;
  pgoff: bigint;
  inode: bigint;
  path: string;
}

/** /proc/PID/maps, parsed here (not by bfd). prot: r=1 w=2 x=4. */
export function readMaps(pid: number): MapsLine[] {
  return parseMapsText(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
}

export function parseMapsText(text: string): MapsLine[] {
  const out: MapsLine[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ (\d+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const perms = m[3]!;
    out.push({
      start: BigInt(`0x${m[1]}`),
      end: BigInt(`0x${m[2]}`),
      prot: (perms[0] === 'r' ? 1 : 0) | (perms[1] === 'w' ? 2 : 0) | (perms[2] === 'x' ? 4 : 0),
      shared: perms[3] === 's',
      pgoff: BigInt(`0x${m[4]}`),
      inode: BigInt(m[5]!),
      path: m[6]!,
    });
  }
  return out;
}

/** Per-VMA smaps counters (kB) by start address. */
export function readSmapsCounters(pid: number): Map<bigint, Record<string, number>> {
  const out = new Map<bigint, Record<string, number>>();
  let cur: Record<string, number> | undefined;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ /.exec(line);
    if (head) {
      cur = {};
      out.set(BigInt(`0x${head[1]}`), cur);
      continue;
    }
    const kv = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (kv && cur) cur[kv[1]!] = Number(kv[2]);
  }
  return out;
}

export interface FdState {
  fd: number;
  link: string;
  pos: bigint;
  /** fdinfo flags (octal in /proc), O_CLOEXEC included */
  flags: number;
  mntId: number;
}

/** Every fd of a task: readlink and fdinfo (pos, flags, mnt_id). */
export function readFds(pid: number): FdState[] {
  const out: FdState[] = [];
  for (const name of fs.readdirSync(`/proc/${pid}/fd`)) {
    const fd = Number(name);
    try {
      const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      const get = (k: string) => new RegExp(`^${k}:\\s+(\\S+)`, 'm').exec(info)?.[1] ?? '0';
      out.push({
        fd,
        link,
        pos: BigInt(get('pos')),
        flags: Number.parseInt(get('flags'), 8),
        mntId: Number(get('mnt_id')),
      });
    } catch {
      // closed meanwhile
    }
  }
  return out.sort((a, b) => a.fd - b.fd);
}

/** The state a failed dump must leave exactly as it found it. */
export interface ProcSnapshot {
  state: string;
  tracer: number;
  maps: string;
  sig: string;
  fds: string;
  threads: string;
}

export function snapshot(pid: number): ProcSnapshot {
  const st = procStatus(pid);
  return {
    state: st.State ?? '',
    tracer: Number(st.TracerPid),
    maps: fs.readFileSync(`/proc/${pid}/maps`, 'utf8'),
    sig: ['SigBlk', 'SigIgn', 'SigCgt', 'ShdPnd', 'SigPnd', 'NoNewPrivs', 'Seccomp']
      .map((k) => `${k}=${st[k]}`)
      .join(' '),
    fds: readFds(pid)
      .map((f) => `${f.fd}:${f.link}:${f.flags.toString(8)}`)
      .join(' '),
    threads: fs.readdirSync(`/proc/${pid}/task`).sort().join(' '),
  };
}

/** Every task (pid) whose session is `sid`. */
export function tasksInSession(sid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (Number(procStat(Number(name)).f(6)) === sid) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

// ---- crit ---------------------------------------------------------------------------------------------

/** Image files crit can decode (pages-N.img are raw data; stats-dump and stats-restore have no .img, as in CRIU). */
export function decodableImages(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => (f.endsWith('.img') && !f.startsWith('pages-')) || /^stats-(dump|restore)$/.test(f))
    .sort();
}

export interface CritResult {
  ok: boolean;
  error?: string;
  stderr?: string;
}

/**
 * `crit decode` (plain: numbers stay numbers) of every named image of `dir`, in one Python process (tools/crit-compat/
 * batch.py). Resolves to file -> parsed JSON (big integers exact), and the failures.
 */
export function critDecodeAll(
  dir: string,
  files = decodableImages(dir),
): { decoded: Map<string, PyJson>; failures: string[] } {
  const out = tempDir('criu-ts-core-crit-');
  const jobs = files.map((f, i) => ({
    op: 'decode',
    in: path.join(dir, f),
    out: path.join(out, `${i}.json`),
    pretty: false,
    id: f,
  }));
  const text = execFileSync(PYTHON, [BATCH], {
    input: JSON.stringify(jobs),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const results = JSON.parse(text) as Array<CritResult & { id: string }>;
  const decoded = new Map<string, PyJson>();
  const failures: string[] = [];
  results.forEach((r, i) => {
    if (r.ok) decoded.set(r.id, pyParse(fs.readFileSync(path.join(out, `${i}.json`), 'utf8')));
    else failures.push(`${r.id}: ${r.error} ${r.stderr ?? ''}`.trim());
  });
  return { decoded, failures };
}

// ---- crit JSON access ---------------------------------------------------------------------------------

export type Obj = { [key: string]: PyJson };

/** The entries of a decoded image. */
export function entries(img: PyJson | undefined): Obj[] {
  if (!img || typeof img !== 'object' || Array.isArray(img)) throw new Error('not a decoded image');
  return (img as Obj).entries as Obj[];
}

/** A number of crit's JSON (int, or big int kept exact by pyParse) as bigint. */
export function big(v: PyJson | undefined): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string' && /^-?(0x[0-9a-f]+|\d+)$/i.test(v)) return BigInt(v);
  throw new Error(`not a number: ${JSON.stringify(String(v))}`);
}

export const num = (v: PyJson | undefined): number => Number(big(v));

export const obj = (v: PyJson | undefined): Obj => v as Obj;

// ---- memhog's checksum, computed from dumped memory -----------------------------------------------------

const M64 = (1n << 64n) - 1n;

/** The first word memhog writes for `seed` (xorshift64 of its seeded state): finds its area. */
export function memhogFirstWord(seed = 1n): bigint {
  let x = (seed * 0x9e3779b97f4a7c15n + 0x2545f4914f6cdd1dn) & M64;
  if (x === 0n) x = 1n;
  x ^= (x << 13n) & M64;
  x ^= x >> 7n;
  x ^= (x << 17n) & M64;
  return x;
}

/** memhog's checksum() over `words` 64-bit words, as the C code computes it. */
export function memhogChecksum(words: BigUint64Array): bigint {
  let h = 0xcbf29ce484222325n;
  let s = 0n;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    h = BigInt.asUintN(64, (h ^ w) * 0x100000001b3n);
    s = BigInt.asUintN(64, s + w * BigInt(2 * i + 1));
  }
  return BigInt.asUintN(64, h ^ BigInt.asUintN(64, s * 0x9e3779b97f4a7c15n));
}

/** The numbers of a counter report (the lines after READY), checked consecutive from 1. */
export function counterNumbers(report: string): number[] {
  return readLines(report)
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

export function isConsecutiveFromOne(ns: number[]): boolean {
  return ns.every((v, i) => v === i + 1);
}

export function failLines(report: string): string[] {
  return readLines(report).filter((l) => l.startsWith('FAIL'));
}

// ---- what a failed dump must leave as it found ------------------------------------------------------------

/**
 * The task as it was: untraced, asleep or running as before (not stopped), same signal masks, fds,
 * threads and (unless `maps: false`) maps. Waits (bounded) for the tracer to be gone first.
 */
export async function expectAsBefore(
  pid: number,
  before: ProcSnapshot,
  opts: { maps?: boolean } = {},
): Promise<void> {
  await waitFor(() => tracerPid(pid) === 0, `pid ${pid} untraced`);
  const now = snapshot(pid);
  expect(now.tracer).toBe(0);
  expect(['S', 'R']).toContain(now.state[0]);
  expect(now.sig).toBe(before.sig);
  expect(now.fds).toBe(before.fds);
  expect(now.threads).toBe(before.threads);
  if (opts.maps !== false) expect(now.maps).toBe(before.maps);
}

/** A counter (C or python) that counts on, without a gap, its own checks passing. */
export async function expectCountsOn(report: string, pid: number): Promise<void> {
  await waitForMoreLines(report, 5, pid);
  expect(failLines(report)).toEqual([]);
  expect(isConsecutiveFromOne(counterNumbers(report))).toBe(true);
}
