// Test helpers: start real processes, wait on conditions (never fixed sleeps), kill them by pid.

import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const started = new Map<number, ChildProcess>();

/** Spawn a process and remember it for killStarted(). stdout is piped so tests can wait on it. */
export function start(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess & { pid: number } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...opts });
  if (child.pid === undefined) throw new Error(`spawn ${cmd} failed`);
  started.set(child.pid, child);
  return child as ChildProcess & { pid: number };
}

/** SIGKILL every process start() made (by pid) and wait until each one has exited. */
export async function killStarted(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const [pid, child] of started) {
    if (child.exitCode === null && child.signalCode === null) {
      waits.push(new Promise((resolve) => child.once('exit', resolve)));
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  started.clear();
  await Promise.all(waits);
}

/** Poll `cond` until it returns a truthy value (returned) or the timeout passes. */
export async function waitFor<T>(
  cond: () => T | undefined | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined | false;
    try {
      v = cond();
    } catch {
      v = undefined;
    }
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Resolve with the first complete line the child prints on stdout. */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let acc = '';
    const onData = (d: Buffer) => {
      acc += d.toString();
      const i = acc.indexOf('\n');
      if (i >= 0) {
        child.stdout?.off('data', onData);
        resolve(acc.slice(0, i));
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code, sig) => reject(new Error(`process exited (${code ?? sig}) before printing`)));
  });
}

/** The process's state letter in /proc/PID/stat. */
export function procState(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** Wait until the process sleeps (S) with the given comm in /proc/PID/comm. */
export async function waitSleeping(pid: number, comm?: string): Promise<void> {
  await waitFor(() => {
    if (comm !== undefined && readFileSync(`/proc/${pid}/comm`, 'utf8') !== `${comm}\n`) return false;
    return procState(pid) === 'S';
  }, `pid ${pid} asleep`);
}

/** Read a /proc file, or undefined if the process went away (or the file is unreadable). */
export function tryRead(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

export function pidsInProc(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}
