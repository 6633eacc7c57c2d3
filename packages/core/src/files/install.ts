// Installing the fds of a task (CRIU's files.c does this in the task itself). criu-ts opened every
// file itself (files/node-files.ts); the task pulls a copy of each description in with pidfd_getfd on a
// pidfd of criu-ts it holds above every fd it will have (placeHelperPidfd), moves it to its number
// with dup3 and sets FD_CLOEXEC and O_ASYNC; then enters its cwd and root and sets its umask; then
// runs what drivers need the task itself to do (epoll_ctl with its own fd numbers, file locks).

import { ProcDir } from '@criu-ts/bfd';
import type { FdinfoEntry } from '@criu-ts/images';
import { close, F_DUPFD_CLOEXEC, F_SETFD, O_DIRECTORY, O_RDONLY, SYS, syscallName } from '@criu-ts/sys';
import { breakLeases, retakeLocks } from '../file-locks/restore.js';
import { RestoreError } from '../restore/errors.js';
import { HelperProcesses } from '../restore/helpers.js';
import type { Call } from '../restore/inject.js';
import type { LiveTask, RestoreRun } from '../restore/live.js';
import { sharesFds } from '../restore/tree.js';
import { restoreDriverFor } from './drivers.js';
import { asyncFdCalls } from './fown.js';
import { isProcFdFile, isProcFileOf, procPidOf } from './regular/proc-path.js';

/**
 * The helper pidfd in task `lt`, through which it pulls its memory's files and its fds: the stub's fds
 * go, and a pidfd of criu-ts comes above every fd the task will have. A task sharing its parent's fd
 * table (CLONE_FILES) keeps what is in it (filled already, or holding the parent's pidfd when the
 * parent's memory came first): the pidfd comes through its first gap, above the rest. Returns the
 * lowest free fd while the task's memory is restored.
 */
export function placeHelperPidfd(lt: LiveTask): number {
  const task = lt.plan;
  const targets = (task.fdinfo ?? []).map((f) => f.fd);
  const shared = sharesFds(task);
  const inTable = new Set(shared ? openFds(task.pid) : []);
  let high = Math.max(2, ...targets) + 1;
  while (inTable.has(high)) high++;
  // Where pidfd_open lands: 0 in an emptied table, the first gap of a shared one (maybe `high` itself).
  const first = lowestFree(inTable);
  const calls: Call[] = [];
  if (!shared) for (const fd of openFds(task.pid)) calls.push([SYS.close, fd]);
  calls.push([SYS.pidfd_open, process.pid, 0]);
  if (first !== high) calls.push([SYS.fcntl, first, F_DUPFD_CLOEXEC, high], [SYS.close, first]);
  const at = first === high ? calls.length - 1 : calls.length - 3;
  const r = lt.main.batch(calls, (i) => (i < at ? 'close' : 'pidfd_open of criu-ts'));
  const landed = first === high ? r[at] : r[at + 1];
  if (r[at] !== BigInt(first) || landed !== BigInt(high))
    throw new RestoreError(`pid ${task.pid}: helper pidfd landed at ${landed}`);
  lt.pidfd = high;
  // The lowest free fd while the task's memory is restored (the pidfd is there, above the rest).
  return shared ? lowestFree(new Set([...inTable, high])) : 0;
}

/**
 * The task's fds (unless it shares its parent's table, filled already), then its cwd, root and umask,
 * then the drivers' in-task work.
 */
export function installFds(run: RestoreRun, lt: LiveTask): void {
  const { plan, files } = run;
  const task = lt.plan;
  const shared = sharesFds(task);
  // A shared table may also hold what another task sharing it keeps there (its helper pidfd).
  const open = new Set<number>([lt.pidfd, ...(shared ? openFds(task.pid) : [])]);
  // The lowest free fd, found from where the last search ended (fds are installed in ascending order,
  // and one taken and freed again is the lowest then): not from 0 each time, for a task of many fds.
  let low = 0;
  const lowest = () => {
    while (open.has(low)) low++;
    return low;
  };
  const calls: Call[] = [];
  const names: string[] = [];
  const expect = new Map<number, bigint>();
  const add = (name: string, c: Call, want?: number) => {
    if (want !== undefined) expect.set(calls.length, BigInt(want));
    calls.push(c);
    names.push(name);
  };
  // A /proc/PID/fd(info)/N file of the tree opens once the fd it names is there: in a second batch.
  const sorted = shared ? [] : [...(task.fdinfo ?? [])].sort((a, b) => a.fd - b.fd);
  const fdFile = (f: FdinfoEntry) => {
    const name = plan.files.get(f.id)?.reg?.name;
    return name !== undefined && isProcFdFile(name) && isProcFileOf(name, run.treeIds);
  };
  const later = sorted.filter(fdFile);
  const runBatch = () => {
    const res = lt.main.batch(calls, (i) => names[i] ?? `call ${i}`);
    for (const [i, want] of expect) {
      if (res[i] !== want)
        throw new RestoreError(`pid ${task.pid}: ${names[i]} gave ${res[i]}, expected ${want}`);
    }
    calls.length = 0;
    names.length = 0;
    expect.clear();
  };
  for (const f of [...sorted.filter((f) => !fdFile(f)), ...later]) {
    if (f === later[0]) runBatch();
    const tmp = lowest();
    add(`pidfd_getfd for fd ${f.fd}`, [SYS.pidfd_getfd, lt.pidfd, files.fd(f.id, 'fd'), 0], tmp);
    open.add(tmp);
    if (tmp !== f.fd) {
      add(`dup3 to fd ${f.fd}`, [SYS.dup3, tmp, f.fd, 0], f.fd);
      add('close', [SYS.close, tmp]);
      open.delete(tmp);
      if (tmp < low) low = tmp;
      open.add(f.fd);
    }
    add(`fcntl(F_SETFD) of fd ${f.fd}`, [SYS.fcntl, f.fd, F_SETFD, f.flags & 1]);
    for (const c of asyncFdCalls(plan.files.get(f.id), plan.files, f.fd))
      add(`fcntl(F_SETFL) of fd ${f.fd} (O_ASYNC)`, c);
  }
  const fsEntry = task.fs!;
  const rootName = plan.files.get(fsEntry.root_id)?.reg?.name;
  const deadDirFds: number[] = [];
  const dirFd = (id: number, what: string, then: Call[]) => {
    const tmp = lowest();
    // /proc/PID of a task that had died is opened on the helper that has PID now (see below).
    const dead = plan.deadPids.has(procPidOf(plan.files.get(id)?.reg?.name ?? '') ?? 0);
    const mine = dead ? files.openPath(id, O_RDONLY | O_DIRECTORY) : files.fd(id, 'dir');
    if (dead) deadDirFds.push(mine);
    add(`pidfd_getfd of the ${what}`, [SYS.pidfd_getfd, lt.pidfd, mine, 0], tmp);
    add(`fchdir to the ${what}`, [SYS.fchdir, tmp]);
    for (const c of then) add(`chroot`, c);
    add('close', [SYS.close, tmp]);
  };
  // A cwd or root in /proc/PID of a task that had died is opened and entered while a child of the
  // task has PID: the kernel lets no one into the /proc directory of a process that is gone.
  whileDeadPidsLive(run, lt, [fsEntry.root_id, fsEntry.cwd_id], () => {
    if (rootName !== undefined && rootName !== '/') {
      const dot = lt.main.put(Buffer.from('.\0'));
      dirFd(fsEntry.root_id, 'root', [[SYS.chroot, dot]]);
    }
    dirFd(fsEntry.cwd_id, 'cwd', []);
    add('umask', [SYS.umask, fsEntry.umask ?? 0o022]);
    try {
      runBatch();
    } finally {
      for (const fd of deadDirFds) close(fd);
    }
  });
  restoreInTaskFdState(run, lt);
}

/**
 * Run `use` while a child of the task has each dead pid (of the tree's dead-pid remaps) whose /proc
 * directory one of the files `ids` is in: the kernel refuses to fchdir into /proc/PID of no process.
 */
function whileDeadPidsLive<T>(run: RestoreRun, lt: LiveTask, ids: number[], use: () => T): T {
  const pids = new Set<number>();
  for (const id of ids) {
    const pid = procPidOf(run.plan.files.get(id)?.reg?.name ?? '');
    if (pid !== undefined && run.plan.deadPids.has(pid)) pids.add(pid);
  }
  const helpers = new HelperProcesses(lt.main.t, lt.main.s, run.traced);
  const nest = (rest: number[]): T =>
    rest.length ? helpers.withPid(rest[0]!, () => nest(rest.slice(1))) : use();
  return nest([...pids]);
}

/** What fd drivers need the task itself to do, once all its fds are in place (epoll_ctl, locks). */
function restoreInTaskFdState(run: RestoreRun, lt: LiveTask): void {
  const { plan, files } = run;
  const task = lt.plan;
  const ctx = {
    pid: task.pid,
    put: (b: Buffer) => lt.main.put(b),
    firstTime: (key: string) => !run.inTaskDone.has(key) && run.inTaskDone.add(key) !== undefined,
    lend: (id: number) => lendFd(task.fdinfo ?? [], lt.pidfd, files.fd(id, 'fd')),
  };
  const calls: Call[] = [];
  const names: string[] = [];
  for (const f of task.fdinfo ?? []) {
    const entry = plan.files.get(f.id);
    const driver = entry && !entry.reg ? restoreDriverFor(entry.type) : undefined;
    for (const c of driver?.inTask?.(entry!, f, ctx) ?? []) {
      calls.push(c);
      names.push(`${driver!.kind} fd ${f.fd}: ${syscallName(c[0]) ?? c[0]}`);
    }
  }
  for (const entry of plan.files.values()) {
    const driver = entry.reg ? undefined : restoreDriverFor(entry.type);
    for (const c of driver?.inAnyTask?.(entry, ctx) ?? []) {
      calls.push(c);
      names.push(`${driver!.kind} ${entry.id}: ${syscallName(c[0]) ?? c[0]}`);
    }
  }
  // File locks: OFD ones taken here on criu-ts's copy, POSIX and flock ones by the task.
  const locks = run.locks.get(task.pid) ?? [];
  const fileOf = new Map((task.fdinfo ?? []).map((f) => [f.fd, f.id]));
  const nodeFd = (fd: number) => {
    const id = fileOf.get(fd);
    if (id === undefined) throw new RestoreError(`filelocks.img: pid ${task.pid} has no fd ${fd}`);
    return files.fd(id, 'fd');
  };
  for (const { call, what } of retakeLocks(task.pid, locks, nodeFd, ctx.put)) {
    calls.push(call);
    names.push(what);
  }
  if (calls.length) lt.main.batch(calls, (i) => names[i] ?? `call ${i}`);
  breakLeases(task.pid, locks, nodeFd, lt.main);
}

function lowestFree(used: ReadonlySet<number>): number {
  let fd = 0;
  while (used.has(fd)) fd++;
  return fd;
}

/**
 * InTaskContext.lend: criu-ts's fd `nodeFd` pulled into a task whose fds are `fds` plus the helper pidfd,
 * at the lowest number free there (where pidfd_getfd puts it), and closed again.
 */
function lendFd(fds: FdinfoEntry[], pidfd: number, nodeFd: number): { fd: number; get: Call; put: Call } {
  const fd = lowestFree(new Set([pidfd, ...fds.map((f) => f.fd)]));
  return { fd, get: [SYS.pidfd_getfd, pidfd, nodeFd, 0], put: [SYS.close, fd] };
}

function openFds(pid: number): number[] {
  const d = ProcDir.open(pid);
  try {
    return d.fds();
  } finally {
    d.close();
  }
}
