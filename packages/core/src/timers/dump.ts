import type { ProcDir } from '@criu-ts/bfd';
import type { ItimerEntry, PosixTimerEntry, TaskTimersEntry } from '@criu-ts/images';
import { SIGEV_THREAD_ID } from '@criu-ts/sys';

/** A POSIX timer as /proc/PID/timers lists it. */
export interface ProcTimer {
  id: number;
  signo: number;
  sivalPtr: bigint;
  notify: number;
  notifyTid?: number;
  clockId: number;
}

const SIGEV = { signal: 0, none: 1, thread: 2 } as const;

/** Parses /proc/PID/timers (blocks of "ID:", "signal:", "notify:", "ClockID:" lines). */
export function listPosixTimers(proc: ProcDir): ProcTimer[] {
  let text: string;
  try {
    text = proc.readText('timers');
  } catch {
    return [];
  }
  const out: ProcTimer[] = [];
  let cur: Partial<ProcTimer> = {};
  for (const line of text.split('\n')) {
    const [key, value = ''] = line.split(/:\s*/, 2).map((x) => x.trim());
    if (key === 'ID') cur = { id: Number(value) };
    else if (key === 'signal') {
      const [sig, ptr] = value.split('/');
      cur.signo = Number(sig);
      cur.sivalPtr = BigInt(`0x${ptr ?? '0'}`);
    } else if (key === 'notify') {
      const [kind, target = ''] = value.split('/');
      const tid = /\.(\d+)$/.exec(target)?.[1];
      cur.notify = target.startsWith('tid') ? SIGEV_THREAD_ID : (SIGEV[kind as keyof typeof SIGEV] ?? 0);
      if (tid && target.startsWith('tid')) cur.notifyTid = Number(tid);
    } else if (key === 'ClockID') {
      cur.clockId = Number(value);
      out.push(cur as ProcTimer);
    }
  }
  return out;
}

/** task_timers_entry: the three itimers and the POSIX timers with their remaining time. */
export function taskTimers(
  itimers: ItimerEntry[],
  posix: ProcTimer[],
  values: Array<{ id: number; overrun: number; value: Buffer }>,
): TaskTimersEntry {
  const posixEntries: PosixTimerEntry[] = posix.map((t) => {
    const v = values.find((x) => x.id === t.id);
    const b = v?.value ?? Buffer.alloc(32);
    const e: PosixTimerEntry = {
      it_id: t.id,
      clock_id: t.clockId,
      si_signo: t.signo,
      it_sigev_notify: t.notify,
      sival_ptr: t.sivalPtr,
      overrun: v?.overrun ?? 0,
      isec: b.readBigUInt64LE(0),
      insec: b.readBigUInt64LE(8),
      vsec: b.readBigUInt64LE(16),
      vnsec: b.readBigUInt64LE(24),
    };
    if (t.notifyTid !== undefined) e.notify_thread_id = t.notifyTid;
    return e;
  });
  const [real, virt, prof] = itimers as [ItimerEntry, ItimerEntry, ItimerEntry];
  return { real, virt, prof, posix: posixEntries };
}
