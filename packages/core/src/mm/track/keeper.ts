// The keeper: the process that holds the tracking of a tree between two criu-ts runs (a pre-dump, then
// a dump or another pre-dump). Write-protect tracking lives as long as a copy of each task's
// userfaultfd is open; criu-ts exits after a pre-dump, so a small process keeps the copies (and a pidfd
// per task, which tells when the task is gone and never names another process with a reused pid).
// The next criu-ts finds it through STATE_FILE in the parent images directory, copies the fds out of it
// with pidfd_getfd, ends it, and hands the fds to a keeper of its own when tracking goes on.
//
// How it is started: `node -e <KEEPER_SOURCE>`, the source below, run by the very Node that runs
// criu-ts (process.execPath), with the fds as inherited descriptors 3, 4, ... It needs no file of
// criu-ts on disk, so it works the same from the CLI bundle, from the RPC service's workers and from
// @criu-ts/core used as a library (the `keeperCommand` option of MemTracker replaces the Node binary
// where process.execPath is not one, e.g. an embedding runtime). It is started through a double fork
// (`sh -c 'setsid ... &'`), in a session of its own, with / as its cwd: it is never a child libuv
// waits for, it outlives criu-ts, and it pins no mount. It exits by itself when every tracked task is
// gone, when its images directory disappears (or is replaced), on SIGTERM/SIGINT/SIGHUP (what a
// takeover sends), removing its state file; its copies close with it and the kernel unregisters the
// tracking, so nothing is left in the tasks. The keeper itself reads only its own fdinfo and the images
// directory (it cannot load @criu-ts/bfd: it has no module path).
import { existsSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { ProcDir, readStat, readUptime } from '@criu-ts/bfd';
import {
  close,
  isSysError,
  kill,
  pidfdGetfd,
  pidfdOpen,
  SIGTERM,
  WNOHANG,
  waitpidNoHang,
} from '@criu-ts/sys';

// node:child_process (with net, stream and dgram beneath it) is loaded when a keeper is started, not
// when core is imported.
const childProcess = () =>
  createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');

/** The keeper's state, in the images directory of the (pre-)dump that started it. Not a CRIU image. */
export const STATE_FILE = 'criu-ts-track.json';
/** The keeper's name (comm): what identifies it, with its pid and start time. */
export const KEEPER_COMM = 'criu-ts-keeper';

export interface KeptTask {
  pid: number;
  /** The task's start time (clock ticks after boot), as /proc/PID/stat gives it. */
  start: string;
  /** fd numbers in the keeper. */
  pidfd: number;
  uffd: number;
}

export interface KeeperState {
  version: 1;
  mechanism: 'uffd-wp';
  keeper: { pid: number; start: string };
  /** The dump's inventory dump_uptime (microseconds): a boot since then ends tracking. */
  dumpUptime: string;
  tasks: KeptTask[];
}

/** What criu-ts holds of one tracked task: its own copies of the fds. */
export interface HeldTask {
  pid: number;
  start: string;
  pidfd: number;
  uffd: number;
}

const POLL_MS = 200;

// Plain JavaScript run with `node -e`: argv[1] is a JSON object { dir, dev, ino, state, pidfds }.
const KEEPER_SOURCE = `'use strict';
const fs = require('fs');
const a = JSON.parse(process.argv[1]);
const gone = () => {
  try {
    const st = fs.statSync(a.dir, { bigint: true });
    if (String(st.dev) !== a.dev || String(st.ino) !== a.ino) return 'its images directory was replaced';
  } catch { return 'its images directory is gone'; }
  const alive = a.pidfds.some((fd) => {
    try {
      const m = /^Pid:\\s*(-?\\d+)/m.exec(fs.readFileSync('/proc/self/fdinfo/' + fd, 'utf8'));
      if (m === null || Number(m[1]) <= 0) return false;
      // a zombie is gone too (its pid is not free yet: it still names the tracked task)
      const st = fs.readFileSync('/proc/' + m[1] + '/stat', 'utf8');
      return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) !== 'Z';
    } catch { return false; }
  });
  return alive ? undefined : 'every tracked task is gone';
};
const end = () => {
  try {
    const s = JSON.parse(fs.readFileSync(a.state, 'utf8'));
    if (s && s.keeper && s.keeper.pid === process.pid) fs.unlinkSync(a.state);
  } catch {}
  process.exit(0);
};
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, end);
setInterval(() => { if (gone()) end(); }, ${POLL_MS});
process.title = '${KEEPER_COMM}';
`;

export interface StartKeeperOptions {
  /** The program (and arguments) that runs JavaScript given as `-e SOURCE ARG` (default: this Node). */
  keeperCommand?: string[];
}

let setsidExe: string | null | undefined;
function findSetsid(): string | null {
  if (setsidExe !== undefined) return setsidExe;
  setsidExe = null;
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (existsSync(join(d, 'setsid'))) {
      setsidExe = join(d, 'setsid');
      break;
    }
  }
  return setsidExe;
}

/**
 * Starts a keeper holding `tasks`' fds (criu-ts keeps its own copies; close them afterwards) and writes
 * its state file into `dir`. Returns the keeper's pid.
 */
export function startKeeper(
  dir: string,
  tasks: HeldTask[],
  dumpUptime: bigint,
  opts: StartKeeperOptions = {},
): number {
  const fds: number[] = [];
  const kept: KeptTask[] = [];
  for (const t of tasks) {
    kept.push({ pid: t.pid, start: t.start, pidfd: 3 + fds.length, uffd: 4 + fds.length });
    fds.push(t.pidfd, t.uffd);
  }
  const st = statSync(dir, { bigint: true });
  const state = join(dir, STATE_FILE);
  const arg = JSON.stringify({
    dir,
    dev: String(st.dev),
    ino: String(st.ino),
    state,
    pidfds: kept.map((k) => k.pidfd),
  });
  const cmd = opts.keeperCommand ?? [process.execPath];
  const setsid = findSetsid();
  // $0 = sh; "$@" = [setsid] node -e SOURCE ARG. The job's stdio is /dev/null: the pipe of `echo $!`
  // closes when the shell exits, whatever the keeper does.
  const out = childProcess().execFileSync(
    '/bin/sh',
    [
      '-c',
      'cd / && "$@" </dev/null >/dev/null 2>&1 & echo $!',
      'sh',
      ...(setsid ? [setsid] : []),
      ...cmd,
      '-e',
      KEEPER_SOURCE,
      arg,
    ],
    // A clean environment: no NODE_OPTIONS (preloads), no NODE_CHANNEL_FD (an IPC channel on fd 3).
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore', ...fds],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    },
  );
  const pid = Number(out.trim());
  if (!Number.isInteger(pid) || pid <= 0)
    throw new Error(`the tracking keeper did not start (${out.trim()})`);
  // Ready once Node runs the source (it names itself last): until then the fds are in a shell's hands.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const s = readStat(pid);
    if (s === undefined || s.state === 'Z')
      throw new Error(`the tracking keeper (pid ${pid}) exited at once`);
    if (s.comm === KEEPER_COMM) {
      const body: KeeperState = {
        version: 1,
        mechanism: 'uffd-wp',
        keeper: { pid, start: String(s.starttime) },
        dumpUptime: String(dumpUptime),
        tasks: kept,
      };
      const tmp = `${state}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(body, null, 1)}\n`, { mode: 0o600 });
      renameSync(tmp, state);
      return pid;
    }
    if (Date.now() > deadline) {
      stopKeeper(pid);
      throw new Error(`the tracking keeper (pid ${pid}) did not start in time`);
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
}

/** Reads `dir`'s keeper state; undefined when there is none. */
export function readKeeperState(dir: string): KeeperState | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, STATE_FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const s = JSON.parse(text) as KeeperState;
    if (s.version !== 1 || !Array.isArray(s.tasks)) return undefined;
    return s;
  } catch {
    return undefined;
  }
}

/** Whether `state`'s keeper still runs (the same process: pid, start time and name). */
export function keeperAlive(state: KeeperState): boolean {
  const s = readStat(state.keeper.pid);
  return (
    s !== undefined && s.state !== 'Z' && String(s.starttime) === state.keeper.start && s.comm === KEEPER_COMM
  );
}

/** Ends keeper `pid` (SIGTERM) and waits until it is gone; reaps it when it is our child. */
export function stopKeeper(pid: number, start?: string): void {
  const s = readStat(pid);
  if (s === undefined || (start !== undefined && String(s.starttime) !== start)) return;
  try {
    kill(pid, SIGTERM);
  } catch (e) {
    if (!isSysError(e, 'ESRCH')) throw e;
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    const now = readStat(pid);
    if (now === undefined || String(now.starttime) !== String(s.starttime)) return;
    if (now.state === 'Z') {
      try {
        waitpidNoHang(pid, WNOHANG);
      } catch {
        // not our child: its parent reaps it
      }
      return;
    }
    if (Date.now() > deadline) throw new Error(`the tracking keeper (pid ${pid}) does not exit`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
}

export interface TakeOver {
  /** Tasks whose tracking goes on, by pid (criu-ts's copies of their fds). */
  tasks: Map<number, HeldTask>;
  /** Why there is no tracking, when there is none. */
  gone?: string;
}

/**
 * Takes the tracking over from the keeper whose state is in `dir`: copies its fds, checks each task is
 * still the one tracked, ends the keeper and removes the state file. A keeper that is gone (killed, a
 * reboot) means no tracking: `gone` says why.
 */
export function takeOver(dir: string): TakeOver {
  const tasks = new Map<number, HeldTask>();
  const state = readKeeperState(dir);
  if (!state) return { tasks, gone: `no memory tracking was kept for ${dir}` };
  const file = join(dir, STATE_FILE);
  const drop = () => {
    try {
      unlinkSync(file);
    } catch {
      // gone already
    }
  };
  if (BigInt(Math.round(readUptime().up * 1e6)) < BigInt(state.dumpUptime)) {
    drop();
    return { tasks, gone: 'the system was rebooted since the previous dump' };
  }
  if (!keeperAlive(state)) {
    drop();
    return { tasks, gone: `the tracking keeper (pid ${state.keeper.pid}) is gone` };
  }
  let keeperFd: number;
  try {
    keeperFd = pidfdOpen(state.keeper.pid);
  } catch {
    drop();
    return { tasks, gone: `the tracking keeper (pid ${state.keeper.pid}) is gone` };
  }
  try {
    for (const t of state.tasks) {
      let pidfd = -1;
      let uffd = -1;
      try {
        pidfd = pidfdGetfd(keeperFd, t.pidfd);
        uffd = pidfdGetfd(keeperFd, t.uffd);
      } catch {
        if (pidfd >= 0) close(pidfd);
        continue;
      }
      // The pidfd names the tracked process for good: its pid is gone once that process is.
      if (pidOfPidfd(pidfd) !== t.pid) {
        close(pidfd);
        close(uffd);
        continue;
      }
      tasks.set(t.pid, { pid: t.pid, start: t.start, pidfd, uffd });
    }
  } finally {
    close(keeperFd);
  }
  // Ours now: the keeper goes (its copies close; ours keep the tracking), and so does its file.
  stopKeeper(state.keeper.pid, state.keeper.start);
  drop();
  return { tasks };
}

/** The pid a pidfd stands for (fdinfo's Pid:), or -1 once the process is gone. */
export function pidOfPidfd(pidfd: number): number {
  try {
    const m = /^Pid:\s*(-?\d+)/m.exec(ProcDir.self().readText(`fdinfo/${pidfd}`));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

/** Ends the keeper of `dir`, if any (tracking abandoned). */
export function endKeeperOf(dir: string): boolean {
  const state = readKeeperState(dir);
  if (!state) return false;
  if (keeperAlive(state)) stopKeeper(state.keeper.pid, state.keeper.start);
  try {
    unlinkSync(join(dir, STATE_FILE));
  } catch {
    // the keeper removed it
  }
  return true;
}
