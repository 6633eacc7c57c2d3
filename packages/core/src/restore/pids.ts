// Every pid and tid of the images must be free before the first task is created. A tree that was just
// killed keeps its pids for a while (its zombies are reaped by their parent or by pid 1, which can take
// over a second here): pids held by dying tasks are waited for, a bounded time; a pid held by a live
// task is an error at once.
import { readFileSync } from 'node:fs';
import { sleepMs } from '@criu-ts/compel';
import { RestoreError } from './errors.js';

interface Holder {
  state: string;
  comm: string;
  dying: boolean;
}

const SIGKILL_BIT = 1n << 8n;

function holderOf(id: number): Holder | undefined {
  let stat: string;
  let status = '';
  try {
    stat = readFileSync(`/proc/${id}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  try {
    status = readFileSync(`/proc/${id}/status`, 'utf8');
  } catch {
    // gone meanwhile: still "held" until the next look
  }
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const state = stat.slice(close + 2, close + 3);
  const pending = (name: string) => {
    const m = new RegExp(`^${name}:\\s*([0-9a-f]+)`, 'm').exec(status);
    return m ? BigInt(`0x${m[1]}`) : 0n;
  };
  const killed = ((pending('SigPnd') | pending('ShdPnd')) & SIGKILL_BIT) !== 0n;
  return { state, comm, dying: state === 'Z' || state === 'X' || state === 'x' || killed || status === '' };
}

/**
 * Wait until none of `ids` exists. Held by a dying task: wait up to `timeoutMs`. Held by a live task:
 * a short grace (it may be about to be killed by whoever started us), then an error naming it.
 */
export function waitForFreeIds(ids: readonly number[], timeoutMs = 5000, graceMs = 300): void {
  const maxPid = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  for (const id of ids) {
    if (id >= maxPid) throw new RestoreError(`pid ${id} is beyond this system's pid_max ${maxPid}`);
  }
  const t0 = performance.now();
  let pause = 1;
  for (;;) {
    const held: Array<[number, Holder]> = [];
    for (const id of ids) {
      const h = holderOf(id);
      if (h) held.push([id, h]);
    }
    if (held.length === 0) return;
    const waited = performance.now() - t0;
    const live = held.find(([, h]) => !h.dying);
    if ((live && waited >= graceMs) || waited >= timeoutMs) {
      const [id, h] = live ?? (held[0] as [number, Holder]);
      throw new RestoreError(
        `pid ${id} is in use by ${h.comm} (state ${h.state})${h.dying ? ` and still not freed after ${Math.round(waited)} ms` : ''}`,
      );
    }
    sleepMs(pause);
    pause = Math.min(pause * 2, 20);
  }
}
