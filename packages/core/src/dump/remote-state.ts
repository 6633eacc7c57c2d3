import type { Parasite } from '@criu-ts/compel';
import type { SaEntry } from '@criu-ts/images';
import {
  MEMBARRIER_CMD_GET_REGISTRATIONS,
  PR_GET_CHILD_SUBREAPER,
  PR_GET_DUMPABLE,
  PR_GET_PDEATHSIG,
  PR_GET_SECUREBITS,
  PR_GET_THP_DISABLE,
  PR_GET_TID_ADDRESS,
  RLIM_NLIMITS,
  raw,
  SYS,
} from '@criu-ts/sys';
import { RLIMIT_SIZE, rlimitReadCalls, rlimitsFrom } from '../rlimits/dump.js';
import { DumpError } from './errors.js';

/** Signals 1..64 but SIGKILL and SIGSTOP, whose actions cannot change (CRIU stores these 62). */
export const SIGACTION_SIGNALS = Array.from({ length: 64 }, (_, i) => i + 1).filter(
  (s) => s !== 9 && s !== 19,
);

const SIGACTION_SIZE = 32; // struct sigaction as rt_sigaction(2) sees it: handler, flags, restorer, mask
const ITIMERVAL_SIZE = 32;
const STACK_T_SIZE = 24;
const ITIMERSPEC_SIZE = 32;

/** What only the task knows about itself, read with one batch of injected syscalls. */
export interface RemoteTaskState {
  sigactions: SaEntry[];
  itimers: Array<{ isec: bigint; iusec: bigint; vsec: bigint; vusec: bigint }>;
  secbits: number;
  dumpable: number;
  childSubreaper: boolean;
  thpDisabled: boolean;
  brk: bigint;
  /** Thread-level values of the thread the parasite runs in (the leader). */
  clearTidAddr: bigint;
  sas: { ss_sp: bigint; ss_size: bigint; ss_flags: number };
  pdeathSig: number;
  posixTimers: Array<{ id: number; overrun: number; value: Buffer }>;
  /** Every resource limit: read by the task itself, since prlimit64() on a task with other ids
   *  needs CAP_SYS_RESOURCE, which a container's root often lacks. */
  rlimits: Array<{ cur: bigint; max: bigint }>;
  /** membarrier() registrations (MEMBARRIER_CMD_GET_REGISTRATIONS), 0 where the kernel cannot tell. */
  membarrierMask: number;
}

/** membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS): Linux 6.3+. */
let membarrierGet: boolean | undefined;
/** Whether this kernel answers MEMBARRIER_CMD_GET_REGISTRATIONS (asked once, of criu-ts itself). */
function hasMembarrierGet(): boolean {
  membarrierGet ??= Number(raw.syscall(SYS.membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0)) >= 0;
  return membarrierGet;
}

/** Lays out out-parameters in the parasite's scratch area. */
class ScratchLayout {
  private next = 0;
  take(size: number): number {
    const at = this.next;
    this.next += (size + 7) & ~7;
    return at;
  }
  get size(): number {
    return this.next;
  }
}

export function readRemoteState(p: Parasite, pid: number, posixTimerIds: number[]): RemoteTaskState {
  const L = new ScratchLayout();
  const sa = L.take(SIGACTION_SIZE * SIGACTION_SIGNALS.length);
  const it = L.take(ITIMERVAL_SIZE * 3);
  const subreaper = L.take(8);
  const tidAddr = L.take(8);
  const sas = L.take(STACK_T_SIZE);
  const pdeath = L.take(8);
  const timers = L.take(ITIMERSPEC_SIZE * posixTimerIds.length);
  const rlim = L.take(RLIMIT_SIZE * RLIM_NLIMITS);
  if (L.size > p.scratch.size)
    throw new DumpError(`pid ${pid}: parasite scratch area too small (${L.size} bytes)`);
  const A = (off: number) => p.scratch.addr + BigInt(off);

  const calls: Array<[number, ...(number | bigint)[]]> = [];
  for (const [i, sig] of SIGACTION_SIGNALS.entries())
    calls.push([SYS.rt_sigaction, sig, 0, A(sa + i * SIGACTION_SIZE), 8]);
  for (let w = 0; w < 3; w++) calls.push([SYS.getitimer, w, A(it + w * ITIMERVAL_SIZE)]);
  const idx = calls.length;
  calls.push([SYS.prctl, PR_GET_SECUREBITS, 0, 0, 0, 0]);
  calls.push([SYS.prctl, PR_GET_DUMPABLE, 0, 0, 0, 0]);
  calls.push([SYS.prctl, PR_GET_CHILD_SUBREAPER, A(subreaper), 0, 0, 0]);
  calls.push([SYS.prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0]);
  calls.push([SYS.brk, 0]);
  calls.push([SYS.prctl, PR_GET_TID_ADDRESS, A(tidAddr), 0, 0, 0]);
  calls.push([SYS.sigaltstack, 0, A(sas)]);
  calls.push([SYS.prctl, PR_GET_PDEATHSIG, A(pdeath), 0, 0, 0]);
  const timerIdx = calls.length;
  for (const [i, id] of posixTimerIds.entries()) {
    calls.push([SYS.timer_gettime, id, A(timers + i * ITIMERSPEC_SIZE)]);
    calls.push([SYS.timer_getoverrun, id]);
  }
  calls.push(...rlimitReadCalls((off) => A(rlim + off)));
  const membarrierIdx = hasMembarrierGet() ? calls.length : -1;
  if (membarrierIdx >= 0) calls.push([SYS.membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0]);

  const r = p.runBatch(calls);
  if (!r.ok) {
    const failed = calls[r.failIndex ?? 0];
    throw new DumpError(`pid ${pid}: injected syscall ${failed?.[0]} failed with errno ${r.errno}`);
  }
  const out = p.readScratch(0, L.size);
  const res = (i: number) => r.results[i] ?? 0n;
  return {
    sigactions: SIGACTION_SIGNALS.map((_, i) => {
      const o = sa + i * SIGACTION_SIZE;
      return {
        sigaction: out.readBigUInt64LE(o),
        flags: out.readBigUInt64LE(o + 8),
        restorer: out.readBigUInt64LE(o + 16),
        mask: out.readBigUInt64LE(o + 24),
        compat_sigaction: false,
      };
    }),
    itimers: [0, 1, 2].map((w) => {
      const o = it + w * ITIMERVAL_SIZE;
      return {
        isec: out.readBigUInt64LE(o),
        iusec: out.readBigUInt64LE(o + 8),
        vsec: out.readBigUInt64LE(o + 16),
        vusec: out.readBigUInt64LE(o + 24),
      };
    }),
    secbits: Number(res(idx)),
    dumpable: Number(res(idx + 1)),
    childSubreaper: out.readInt32LE(subreaper) !== 0,
    thpDisabled: res(idx + 3) !== 0n,
    brk: res(idx + 4),
    clearTidAddr: out.readBigUInt64LE(tidAddr),
    sas: {
      ss_sp: out.readBigUInt64LE(sas),
      ss_flags: out.readInt32LE(sas + 8),
      ss_size: out.readBigUInt64LE(sas + 16),
    },
    pdeathSig: out.readInt32LE(pdeath),
    posixTimers: posixTimerIds.map((id, i) => ({
      id,
      value: Buffer.from(out.subarray(timers + i * ITIMERSPEC_SIZE, timers + (i + 1) * ITIMERSPEC_SIZE)),
      overrun: Number(res(timerIdx + 2 * i + 1)),
    })),
    rlimits: rlimitsFrom(out, rlim),
    membarrierMask: membarrierIdx >= 0 ? Number(res(membarrierIdx)) : 0,
  };
}

/** Thread-level values of one thread, read by a parasite running in that thread. */
export function readRemoteThreadState(
  p: Parasite,
  tid: number,
): Pick<RemoteTaskState, 'clearTidAddr' | 'sas' | 'pdeathSig'> {
  const L = new ScratchLayout();
  const tidAddr = L.take(8);
  const sas = L.take(STACK_T_SIZE);
  const pdeath = L.take(8);
  const A = (off: number) => p.scratch.addr + BigInt(off);
  const r = p.runBatch([
    [SYS.prctl, PR_GET_TID_ADDRESS, A(tidAddr), 0, 0, 0],
    [SYS.sigaltstack, 0, A(sas)],
    [SYS.prctl, PR_GET_PDEATHSIG, A(pdeath), 0, 0, 0],
  ]);
  if (!r.ok)
    throw new DumpError(`thread ${tid}: injected syscall ${r.failIndex} failed with errno ${r.errno}`);
  const out = p.readScratch(0, L.size);
  return {
    clearTidAddr: out.readBigUInt64LE(tidAddr),
    sas: {
      ss_sp: out.readBigUInt64LE(sas),
      ss_flags: out.readInt32LE(sas + 8),
      ss_size: out.readBigUInt64LE(sas + 16),
    },
    pdeathSig: out.readInt32LE(pdeath),
  };
}
