// The few /proc facts compel needs (state letter, ids, threads, children, maps), read through
// @criu-ts/bfd's ProcDir. A vanished process or thread is `undefined` / `[]`, never an exception:
// tasks come and go while a tree is being seized.
import { isGone, type MapsEntry, ProcDir, type ProcStat, type ProcStatus } from '@criu-ts/bfd';

function withDir<T>(pid: number, fn: (dir: ProcDir) => T): T | undefined {
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
  return withDir(pid, (d) => (tid === undefined ? d.stat() : d.task(tid).stat()));
}

/** /proc/PID/status, undefined when gone. */
export function readStatus(pid: number): ProcStatus | undefined {
  return withDir(pid, (d) => d.status());
}

/** The state letter (R S D T t Z X I ...) of a process or thread, undefined when gone. */
export function stateOf(pid: number, tid?: number): string | undefined {
  return readStat(pid, tid)?.state;
}

/** True when the task is gone, a zombie or dead. */
export function isDeadOrZombie(pid: number, tid?: number): boolean {
  const s = stateOf(pid, tid);
  return s === undefined || s === 'Z' || s === 'X' || s === 'x';
}

/** Thread ids of a process, ascending ([] when gone). */
export function threadsOf(pid: number): number[] {
  return withDir(pid, (d) => d.tasks()) ?? [];
}

/** Children of every thread of a process ([] when gone). */
export function childrenOf(pid: number): number[] {
  return withDir(pid, (d) => d.allChildren()) ?? [];
}

/** /proc/PID/maps ([] when gone). */
export function mapsOf(pid: number): MapsEntry[] {
  return withDir(pid, (d) => d.maps()) ?? [];
}
