// One-shot /proc reads, /proc/sys values and the /proc paths criu-ts hands to the kernel.
//
// ProcDir is the reader for a process looked at more than once; the functions here open, read and close
// in one call, for the single look (is this pid still there, what is its parent, its exit code). A
// vanished process is `undefined`, never an exception: processes come and go under criu-ts.
//
// procPath() is the one place the rest of criu-ts spells a /proc path: a path it does not parse but gives
// to the kernel (open() of /proc/PID/fd/N to reopen a file, exec of /proc/self/fd/N, a unix socket
// address through /proc/self/fd/N, /proc/PID/mem, a file identity to stat). Reading /proc goes through
// ProcDir or the readers below.

import { AT_FDCWD, close, O_CLOEXEC, O_RDONLY, O_WRONLY, openat, SysError, write } from '@criu-ts/sys';
import { sharedBuffer } from './buffer.js';
import { isGone, ProcDir } from './procdir.js';
import type { ProcStat } from './stat.js';
import type { ProcStatus } from './status.js';

/** The /proc mount criu-ts reads. */
export const PROC_ROOT = '/proc';

/**
 * The path of an entry under /proc: procPath(1234, 'fd', 3) is "/proc/1234/fd/3", procPath('self', 'fd', 7)
 * "/proc/self/fd/7", procPath('thread-self', 'loginuid'), procPath(1234) "/proc/1234".
 */
export function procPath(pid: number | 'self' | 'thread-self', ...parts: Array<string | number>): string {
  return parts.length === 0 ? `${PROC_ROOT}/${pid}` : `${PROC_ROOT}/${pid}/${parts.join('/')}`;
}

/** Run `fn` on an open /proc/PID, closed after; undefined when the process (or a file of it) is gone. */
export function withProcDir<T>(pid: number, fn: (dir: ProcDir) => T): T | undefined {
  let dir: ProcDir;
  try {
    dir = ProcDir.open(pid);
  } catch (e) {
    if (isGone(e)) return undefined;
    throw e;
  }
  try {
    return fn(dir);
  } catch (e) {
    if (isGone(e)) return undefined;
    throw e;
  } finally {
    dir.close();
  }
}

/** /proc/PID/stat (or /proc/PID/task/TID/stat), undefined when gone. */
export function readStat(pid: number, tid?: number): ProcStat | undefined {
  return withProcDir(pid, (d) => (tid === undefined ? d.stat() : d.task(tid).stat()));
}

/** /proc/PID/status (or /proc/PID/task/TID/status), undefined when gone. */
export function readStatus(pid: number, tid?: number): ProcStatus | undefined {
  return withProcDir(pid, (d) => (tid === undefined ? d.status() : d.task(tid).status()));
}

/** Whether /proc/PID exists (a live process or a zombie not yet reaped). */
export function procExists(pid: number): boolean {
  return withProcDir(pid, () => true) ?? false;
}

/** readlink of /proc/PID/NAME ("exe", "ns/ipc", "fd/3"), or of /proc/self/NAME; undefined when gone. */
export function readProcLink(pid: number | 'self', name: string): string | undefined {
  if (pid === 'self') return ProcDir.self().readlink(name);
  return withProcDir(pid, (d) => d.readlink(name));
}

/** A /proc/PID file's text (cmdline, oom_score_adj ...), undefined when gone. */
export function readProcText(pid: number, name: string): string | undefined {
  return withProcDir(pid, (d) => d.readText(name));
}

function readRootFile(path: string): string {
  const fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  try {
    const len = sharedBuffer.readFd(fd);
    return sharedBuffer.buf.toString('utf8', 0, len);
  } catch (e) {
    throw e instanceof SysError ? new SysError(e.call, e.errno, path) : e;
  } finally {
    close(fd);
  }
}

/** A /proc/sys value as text, without its trailing newline: readSysctl('kernel/pid_max'). */
export function readSysctl(name: string): string {
  return readRootFile(`${PROC_ROOT}/sys/${name}`).replace(/\n$/, '');
}

/** A numeric /proc/sys value: readSysctlInt('kernel/cap_last_cap'). */
export function readSysctlInt(name: string): number {
  const text = readSysctl(name).trim();
  const v = Number(text);
  if (text === '' || !Number.isInteger(v))
    throw new Error(`${PROC_ROOT}/sys/${name}: not a number: "${text}"`);
  return v;
}

/** Write a /proc/sys value in one write(): writeSysctl('kernel/shm_next_id', '42'). */
export function writeSysctl(name: string, value: string | number): void {
  const path = `${PROC_ROOT}/sys/${name}`;
  const fd = openat(AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
  try {
    write(fd, Buffer.from(String(value)));
  } catch (e) {
    throw e instanceof SysError ? new SysError(e.call, e.errno, path) : e;
  } finally {
    close(fd);
  }
}

/** Write a /proc/PID file in one write() (oom_score_adj, setgroups ...). */
export function writeProcText(pid: number, name: string, text: string): void {
  const dir = ProcDir.open(pid);
  try {
    dir.writeText(name, text);
  } finally {
    dir.close();
  }
}

/** /proc/uptime: seconds since boot and idle seconds summed over the CPUs. */
export interface Uptime {
  up: number;
  idle: number;
}

/** Parse /proc/uptime ("12345.67 54321.00\n"). */
export function parseUptime(text: string): Uptime {
  const [up = '', idle = ''] = text.trim().split(/\s+/);
  const u = Number(up);
  if (up === '' || Number.isNaN(u)) throw new Error(`/proc/uptime: cannot parse "${text.trim()}"`);
  return { up: u, idle: Number(idle) || 0 };
}

/** Read /proc/uptime. */
export function readUptime(): Uptime {
  return parseUptime(readRootFile(`${PROC_ROOT}/uptime`));
}
