// The few /proc facts compel needs (state letter, ids, threads, children, maps), read through
// @criu-ts/bfd's ProcDir. A vanished process or thread is `undefined` / `[]`, never an exception:
// tasks come and go while a tree is being seized.
import { type MapsEntry, readStat, readStatus, withProcDir as withDir } from '@criu-ts/bfd';

// The one-shot readers are bfd's; compel's modules import them from here with the helpers below.
export { readStat, readStatus };

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
