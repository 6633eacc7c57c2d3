// Every pid and tid of the images must be free before the first task is created. A tree that was just
// killed keeps its pids for a while (its zombies are reaped by their parent or by pid 1, which can take
// over a second here): pids held by dying tasks are waited for, a bounded time; a pid held by a live
// task is an error at once.
import { readStat, readStatus, readSysctlInt } from '@criu-ts/bfd';
import { sleepMs } from '@criu-ts/compel';
import { ERRNO, SIGKILL, sigmaskBit } from '@criu-ts/sys';
import { RestoreError } from './errors.js';

interface Holder {
  state: string;
  comm: string;
  dying: boolean;
}

function holderOf(id: number): Holder | undefined {
  const stat = readStat(id);
  if (stat === undefined) return undefined;
  // gone meanwhile: still "held" until the next look
  const status = readStatus(id);
  const { state, comm } = stat;
  const killed = status !== undefined && ((status.sigPnd | status.shdPnd) & sigmaskBit(SIGKILL)) !== 0n;
  return {
    state,
    comm,
    dying: state === 'Z' || state === 'X' || state === 'x' || killed || status === undefined,
  };
}

/**
 * Wait until none of `ids` exists. Held by a dying task: wait up to `timeoutMs`. Held by a live task:
 * a short grace (it may be about to be killed by whoever started us), then an error naming it.
 */
export function waitForFreeIds(ids: readonly number[], timeoutMs = 5000, graceMs = 300): void {
  const maxPid = readSysctlInt('kernel/pid_max');
  for (const id of ids) {
    if (id >= maxPid) throw new RestoreError(`pid ${id} is beyond this system's pid_max ${maxPid}`);
  }
  const t0 = process.uptime() * 1000;
  let pause = 1;
  for (;;) {
    const held: Array<[number, Holder]> = [];
    for (const id of ids) {
      const h = holderOf(id);
      if (h) held.push([id, h]);
    }
    if (held.length === 0) return;
    const waited = process.uptime() * 1000 - t0;
    const live = held.find(([, h]) => !h.dying);
    if ((live && waited >= graceMs) || waited >= timeoutMs) {
      const [id, h] = live ?? (held[0] as [number, Holder]);
      throw new RestoreError(
        `pid ${id} is in use by ${h.comm} (state ${h.state})${h.dying ? ` and still not freed after ${Math.round(waited)} ms` : ''}`,
        { errno: ERRNO.EEXIST },
      );
    }
    sleepMs(pause);
    pause = Math.min(pause * 2, 20);
  }
}
