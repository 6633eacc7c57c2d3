// Test helpers: start real target processes safely and always clean them up.
//
// Targets are never child_process children: libuv reaps those and steals their ptrace stops. The test
// process becomes a child subreaper and starts each target through `sh -c 'target & echo $!'`; when sh
// exits the target is re-parented to us, so only our own waitpid(pid) ever sees its state changes.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { __WALL, isSysError, kill, ptraceDetach, SIGKILL, setChildSubreaper, waitpid } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** A temporary directory, removed by cleanup(). */
export function makeTempDir(prefix = 'criu-ts-sys-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Compile test/fixtures/<name>.c into `dir`; returns the binary's path. */
export function compileFixture(name: string, dir: string): string {
  const out = path.join(dir, name);
  execFileSync('gcc', ['-O1', '-Wall', '-o', out, path.join(here, 'fixtures', `${name}.c`)], {
    stdio: 'pipe',
  });
  return out;
}

const started = new Set<number>();
const tempDirs = new Set<string>();

/** Start `argv` detached (double fork) as our re-parented child; returns its pid. */
export function startTarget(argv: readonly string[]): number {
  setChildSubreaper();
  const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  const out = execFileSync('sh', ['-c', `${quoted} </dev/null >/dev/null 2>&1 & echo $!`], {
    encoding: 'utf8',
  });
  const pid = Number(out.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`could not start ${argv.join(' ')}: ${out}`);
  started.add(pid);
  return pid;
}

/** Poll `cond` until it holds (no fixed sleeps: the condition decides). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(2);
  }
}

/** Kill `pid` with SIGKILL and reap it (detaching first if a ptrace stop is reported). */
export function killAndReap(pid: number): void {
  try {
    kill(pid, SIGKILL);
  } catch (e) {
    if (!isSysError(e, 'ESRCH')) throw e;
  }
  for (;;) {
    let st: ReturnType<typeof waitpid>;
    try {
      st = waitpid(pid, __WALL);
    } catch (e) {
      if (isSysError(e, 'ECHILD')) break; // already reaped, or not our child
      throw e;
    }
    if (st && (st.exited || st.signaled)) break;
    try {
      ptraceDetach(pid);
    } catch {
      // not traced (or already gone): keep waiting for the exit
    }
  }
  started.delete(pid);
}

/** Forget a pid that the test reaped itself. */
export function forget(pid: number): void {
  started.delete(pid);
}

/** Track a pid the test did not start itself (an auto-attached fork child) for cleanup. */
export function trackPid(pid: number): void {
  started.add(pid);
}

/** Kill and reap every started target (call from afterEach). */
export function cleanupProcesses(): void {
  for (const pid of [...started]) killAndReap(pid);
}

/** Kill and reap every started target and remove every temp dir (call from afterEach or afterAll). */
export function cleanup(): void {
  cleanupProcesses();
  for (const dir of [...tempDirs]) {
    fs.rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

/** /proc/PID/stat state letter ('S', 't', 'Z'...), or undefined when the pid is gone. */
export function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** What test/fixtures/target.c reports once it is set up. */
export interface TargetInfo {
  pid: number;
  mem: bigint;
  memLen: number;
  marker: bigint;
  /** The file the target holds open as fd 7. */
  openFile: string;
}

/** Start target.c (compiled into `dir`) and wait until it has written its ready file. */
export async function startReadyTarget(bin: string, dir: string, extra: string[] = []): Promise<TargetInfo> {
  const ready = path.join(dir, `ready-${started.size}-${Date.now()}`);
  const openFile = path.join(dir, 'held-open.txt');
  if (!fs.existsSync(openFile)) fs.writeFileSync(openFile, 'held open by the target as fd 7\n');
  const pid = startTarget([bin, ready, openFile, ...extra]);
  await waitFor(() => {
    const state = procState(pid);
    if (state === undefined || state === 'Z') throw new Error(`target ${pid} exited before becoming ready`);
    return fs.existsSync(ready);
  }, `target ${pid} to become ready`);
  const [mem, len, marker] = fs.readFileSync(ready, 'utf8').trim().split(' ');
  return { pid, mem: BigInt(mem ?? '0'), memLen: Number(len), marker: BigInt(marker ?? '0'), openFile };
}

/** The byte target.c stores at offset i of its pattern region. */
export function patternByte(i: number): number {
  return (i * 7 + Math.floor(i / 4096)) & 0xff;
}
