// What a task and each of its threads keep besides memory and files, put back by injected syscalls:
// signal actions, interval and POSIX timers, resource limits, personality, child-subreaper (task-wide);
// alternate signal stack, clear_child_tid, robust futex list, rseq, name, parent-death signal, TLS
// descriptors, credentials, pending signals and seccomp filters (per thread, in that thread).
import { readFileSync } from 'node:fs';
import type {
  CredsEntry,
  PosixTimerEntry,
  SeccompFilter,
  SignalQueueEntry,
  TaskCoreEntry,
  ThreadCoreEntry,
  UserDescT,
} from '@criu-ts/images';
import {
  PR_CAP_AMBIENT,
  PR_CAP_AMBIENT_CLEAR_ALL,
  PR_CAP_AMBIENT_RAISE,
  PR_CAPBSET_DROP,
  PR_SET_CHILD_SUBREAPER,
  PR_SET_NAME,
  PR_SET_NO_NEW_PRIVS,
  PR_SET_PDEATHSIG,
  PR_SET_SECUREBITS,
  prlimit,
  SIGCHLD,
  SYS,
} from '@criu-ts/sys';
import { itimerval } from '../timers/restore.js';
import { RestoreError } from './errors.js';
import type { Call, Injector } from './inject.js';

/** Signals whose action can be set (all but SIGKILL and SIGSTOP), in the order dump stores them. */
const SIGACTION_SIGNALS = Array.from({ length: 64 }, (_, i) => i + 1).filter((s) => s !== 9 && s !== 19);
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;
const SS_DISABLE = 2;
const SS_AUTODISARM = 1 << 31;
const SIGEV_THREAD_ID = 4;
const PR_TIMER_CREATE_RESTORE_IDS = 77;
const SECBIT_NO_SETUID_FIXUP = 1 << 2;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_SET_MODE_STRICT = 0;
const SECCOMP_FILTER_FLAG_TSYNC = 1;

type Log = (msg: string) => void;

/** Named calls, so that a failing one is reported by what it was for. */
class Calls {
  readonly list: Call[] = [];
  readonly names: string[] = [];
  add(name: string, c: Call): void {
    this.list.push(c);
    this.names.push(name);
  }
  run(inj: Injector): bigint[] {
    return inj.batch(this.list, (i) => this.names[i] ?? `call ${i}`);
  }
}

/** sigactions: every signal's handler, flags, restorer and mask. */
export function sigactionCalls(inj: Injector, tc: TaskCoreEntry, flushSigchld: boolean, out: Calls): void {
  const sa = tc.sigactions ?? [];
  if (sa.length === 0) return;
  if (sa.length !== SIGACTION_SIGNALS.length)
    throw new RestoreError(`core image: ${sa.length} sigactions, expected ${SIGACTION_SIGNALS.length}`);
  if (flushSigchld) {
    // Zombies we made exited while their parent blocked SIGCHLD: ignoring SIGCHLD drops that pending
    // signal, which the original parent had consumed long ago (existing zombies are not reaped).
    const ign = Buffer.alloc(32);
    ign.writeBigUInt64LE(1n, 0);
    out.add('rt_sigaction(SIGCHLD, SIG_IGN)', [SYS.rt_sigaction, SIGCHLD, inj.put(ign), 0, 8]);
  }
  const buf = Buffer.alloc(32 * sa.length);
  sa.forEach((a, i) => {
    buf.writeBigUInt64LE(BigInt.asUintN(64, a.sigaction), i * 32);
    buf.writeBigUInt64LE(BigInt.asUintN(64, a.flags), i * 32 + 8);
    buf.writeBigUInt64LE(BigInt.asUintN(64, a.restorer), i * 32 + 16);
    buf.writeBigUInt64LE(BigInt.asUintN(64, a.mask), i * 32 + 24);
  });
  const at = inj.put(buf);
  SIGACTION_SIGNALS.forEach((sig, i) => {
    out.add(`rt_sigaction(${sig})`, [SYS.rt_sigaction, sig, at + BigInt(i * 32), 0, 8]);
  });
}

/** Task-wide state, run in the leader. */
export function restoreTaskState(
  inj: Injector,
  pid: number,
  tc: TaskCoreEntry,
  opts: { flushSigchld: boolean; log: Log },
): void {
  const c = new Calls();
  sigactionCalls(inj, tc, opts.flushSigchld, c);
  const timers = tc.timers;
  if (timers) {
    const its = [timers.real, timers.virt, timers.prof];
    its.forEach((t, which) => {
      const b = itimerval(t);
      if (b) c.add(`setitimer(${which})`, [SYS.setitimer, which, inj.put(b), 0]);
    });
  }
  for (const [i, l] of (tc.rlimits?.rlimits ?? []).entries()) {
    let cur = BigInt.asUintN(64, l.cur);
    let max = BigInt.asUintN(64, l.max);
    const now = prlimit(pid, i);
    if (max > now.max) {
      // Raising a hard limit needs CAP_SYS_RESOURCE.
      opts.log(
        `pid ${pid}: rlimit ${i} max ${fmtLimit(max)} above ours (${fmtLimit(now.max)}): kept at ours`,
      );
      max = now.max;
      if (cur > max) cur = max;
    }
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(cur, 0);
    b.writeBigUInt64LE(max, 8);
    c.add(`prlimit64(${i})`, [SYS.prlimit64, 0, i, inj.put(b), 0]);
  }
  c.add('personality', [SYS.personality, tc.personality >>> 0]);
  if (tc.child_subreaper)
    c.add('prctl(PR_SET_CHILD_SUBREAPER)', [SYS.prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0]);
  c.run(inj);
  if (timers?.posix?.length) restorePosixTimers(inj, pid, timers.posix);
}

const fmtLimit = (v: bigint) => (v === RLIM_INFINITY ? 'unlimited' : String(v));

/**
 * POSIX timers get their dumped ids: with PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15+) timer_create takes
 * the id we ask for; on older kernels timers are created in id order, deleting the ones we don't need,
 * until the kernel's counter reaches each wanted id (what CRIU does).
 */
function restorePosixTimers(inj: Injector, pid: number, timers: PosixTimerEntry[]): void {
  const sorted = [...timers].sort((a, b) => a.it_id - b.it_id);
  const byId = inj.syscall(SYS.prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) === 0n;
  for (const t of sorted) {
    inj.resetData();
    const ev = Buffer.alloc(64);
    ev.writeBigUInt64LE(BigInt.asUintN(64, t.sival_ptr), 0);
    ev.writeInt32LE(t.si_signo, 8);
    ev.writeInt32LE(t.it_sigev_notify, 12);
    if (t.it_sigev_notify === SIGEV_THREAD_ID) ev.writeInt32LE(t.notify_thread_id ?? pid, 16);
    const evAt = inj.put(ev);
    const idb = Buffer.alloc(8);
    idb.writeInt32LE(t.it_id, 0);
    const idAt = inj.put(idb);
    for (let tries = 0; ; tries++) {
      inj.call(`timer_create(id ${t.it_id})`, SYS.timer_create, t.clock_id, evAt, idAt);
      const got = inj.read(idAt, 4).readInt32LE(0);
      if (got === t.it_id) break;
      if (byId) throw new RestoreError(`pid ${pid}: timer_create gave id ${got}, not ${t.it_id}`);
      inj.call('timer_delete', SYS.timer_delete, got);
      if (got > t.it_id || tries > 65536)
        throw new RestoreError(`pid ${pid}: cannot get POSIX timer id ${t.it_id} (the kernel gave ${got})`);
    }
    if (t.vsec !== 0n || t.vnsec !== 0n) {
      const spec = Buffer.alloc(32);
      spec.writeBigInt64LE(t.isec, 0);
      spec.writeBigInt64LE(t.insec, 8);
      spec.writeBigInt64LE(t.vsec, 16);
      spec.writeBigInt64LE(t.vnsec, 24);
      inj.call(`timer_settime(${t.it_id})`, SYS.timer_settime, t.it_id, 0, inj.put(spec), 0);
    }
  }
  inj.resetData();
  if (byId)
    inj.call('prctl(PR_TIMER_CREATE_RESTORE_IDS, off)', SYS.prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
}

let lastCap: number | undefined;
function capLastCap(): number {
  lastCap ??= Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  return lastCap;
}

const capBits = (words: number[] | undefined): bigint =>
  BigInt(words?.[0] ?? 0) | (BigInt(words?.[1] ?? 0) << 32n);

/** Credentials of one thread, in the order that keeps the capabilities needed for the next step. */
function credsCalls(inj: Injector, cr: CredsEntry, c: Calls): void {
  // Capabilities survive uid changes with SECURE_NO_SETUID_FIXUP; the real securebits come after.
  c.add('prctl(PR_SET_SECUREBITS, NO_SETUID_FIXUP)', [
    SYS.prctl,
    PR_SET_SECUREBITS,
    SECBIT_NO_SETUID_FIXUP,
    0,
    0,
    0,
  ]);
  const groups = cr.groups ?? [];
  const g = Buffer.alloc(Math.max(4, groups.length * 4));
  groups.forEach((x, i) => {
    g.writeUInt32LE(x >>> 0, i * 4);
  });
  c.add('setgroups', [SYS.setgroups, groups.length, inj.put(g)]);
  c.add('setresuid', [SYS.setresuid, cr.uid >>> 0, cr.euid >>> 0, cr.suid >>> 0]);
  c.add('setfsuid', [SYS.setfsuid, cr.fsuid >>> 0]);
  c.add('setresgid', [SYS.setresgid, cr.gid >>> 0, cr.egid >>> 0, cr.sgid >>> 0]);
  c.add('setfsgid', [SYS.setfsgid, cr.fsgid >>> 0]);
  c.add('prctl(PR_SET_SECUREBITS)', [SYS.prctl, PR_SET_SECUREBITS, cr.secbits >>> 0, 0, 0, 0]);
  const bnd = capBits(cr.cap_bnd);
  if (cr.cap_bnd?.length) {
    for (let cap = 0; cap <= capLastCap(); cap++) {
      if (!(bnd & (1n << BigInt(cap))))
        c.add(`prctl(PR_CAPBSET_DROP, ${cap})`, [SYS.prctl, PR_CAPBSET_DROP, cap, 0, 0, 0]);
    }
  }
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  const data = Buffer.alloc(24);
  for (let w = 0; w < 2; w++) {
    data.writeUInt32LE((cr.cap_eff?.[w] ?? 0) >>> 0, w * 12);
    data.writeUInt32LE((cr.cap_prm?.[w] ?? 0) >>> 0, w * 12 + 4);
    data.writeUInt32LE((cr.cap_inh?.[w] ?? 0) >>> 0, w * 12 + 8);
  }
  c.add('capset', [SYS.capset, inj.put(hdr), inj.put(data)]);
  c.add('prctl(PR_CAP_AMBIENT_CLEAR_ALL)', [SYS.prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0]);
  const amb = capBits(cr.cap_amb);
  for (let cap = 0; cap <= capLastCap(); cap++) {
    if (amb & (1n << BigInt(cap)))
      c.add(`prctl(PR_CAP_AMBIENT_RAISE, ${cap})`, [
        SYS.prctl,
        PR_CAP_AMBIENT,
        PR_CAP_AMBIENT_RAISE,
        cap,
        0,
        0,
      ]);
  }
  if (cr.no_new_privs) c.add('prctl(PR_SET_NO_NEW_PRIVS)', [SYS.prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0]);
}

function userDesc(d: UserDescT): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(d.entry_number >>> 0, 0);
  b.writeUInt32LE(d.base_addr >>> 0, 4);
  b.writeUInt32LE(d.limit >>> 0, 8);
  const bits =
    (d.seg_32bit ? 1 : 0) |
    (((d.contents_h ? 2 : 0) | (d.contents_l ? 1 : 0)) << 1) |
    (d.read_exec_only ? 8 : 0) |
    (d.limit_in_pages ? 16 : 0) |
    (d.seg_not_present ? 32 : 0) |
    (d.usable ? 64 : 0);
  b.writeUInt32LE(bits, 12);
  return b;
}

/** A TLS slot the thread never set reads back as "not present", everything else zero. */
const isEmptyTls = (d: UserDescT) => d.base_addr === 0 && d.limit === 0 && !d.usable && !d.seg_32bit;

function signalCalls(
  inj: Injector,
  q: SignalQueueEntry | undefined,
  c: Calls,
  pid: number,
  tid?: number,
): void {
  for (const s of q?.signals ?? []) {
    const info = Buffer.alloc(128);
    Buffer.from(s.siginfo).copy(info, 0, 0, 128);
    const sig = info.readInt32LE(0);
    const at = inj.put(info);
    if (tid === undefined) c.add(`rt_sigqueueinfo(${sig})`, [SYS.rt_sigqueueinfo, pid, sig, at]);
    else c.add(`rt_tgsigqueueinfo(${sig})`, [SYS.rt_tgsigqueueinfo, pid, tid, sig, at]);
  }
}

/** The seccomp chain ending at filter `index`, oldest first. */
function seccompChain(filters: SeccompFilter[], index: number): SeccompFilter[] {
  const chain: SeccompFilter[] = [];
  const seen = new Set<number>();
  for (let i: number | undefined = index; i !== undefined; i = filters[i]?.prev) {
    if (seen.has(i) || !filters[i]) throw new RestoreError(`seccomp.img: broken filter chain at ${i}`);
    seen.add(i);
    chain.push(filters[i] as SeccompFilter);
  }
  return chain.reverse();
}

/**
 * Per-thread state, run in that thread: everything but registers and the signal mask. Creds, pending
 * signals and seccomp come last (creds may take away what the calls before need; filters would judge
 * our own calls, were they not suspended by PTRACE_O_SUSPEND_SECCOMP while we trace).
 */
export function restoreThreadState(
  inj: Injector,
  pid: number,
  tid: number,
  th: ThreadCoreEntry,
  clearTidAddr: bigint,
  tls: UserDescT[],
  fallbackComm: string,
  opts: { sharedSignals?: SignalQueueEntry; seccomp: SeccompFilter[]; extra?: Call[] },
): void {
  const c = new Calls();
  const sas = th.sas;
  if (sas && !(sas.ss_flags & SS_DISABLE)) {
    const b = Buffer.alloc(24);
    b.writeBigUInt64LE(BigInt.asUintN(64, sas.ss_sp), 0);
    b.writeInt32LE(sas.ss_flags & SS_AUTODISARM, 8);
    b.writeBigUInt64LE(BigInt.asUintN(64, sas.ss_size), 16);
    c.add('sigaltstack', [SYS.sigaltstack, inj.put(b), 0]);
  }
  c.add('set_tid_address', [SYS.set_tid_address, clearTidAddr]);
  if (th.futex_rla !== 0n) c.add('set_robust_list', [SYS.set_robust_list, th.futex_rla, th.futex_rla_len]);
  const rs = th.rseq_entry;
  if (rs && rs.rseq_abi_pointer !== 0n)
    c.add('rseq', [SYS.rseq, rs.rseq_abi_pointer, rs.rseq_abi_size, 0, rs.signature >>> 0]);
  const comm = Buffer.alloc(16);
  comm.write((th.comm ?? fallbackComm).slice(0, 15), 'utf8');
  c.add('prctl(PR_SET_NAME)', [SYS.prctl, PR_SET_NAME, inj.put(comm), 0, 0, 0]);
  if (th.pdeath_sig) c.add('prctl(PR_SET_PDEATHSIG)', [SYS.prctl, PR_SET_PDEATHSIG, th.pdeath_sig, 0, 0, 0]);
  for (const d of tls)
    if (!isEmptyTls(d))
      c.add(`set_thread_area(${d.entry_number})`, [SYS.set_thread_area, inj.put(userDesc(d))]);
  for (const x of opts.extra ?? []) c.add(`call ${x[0]}`, x);
  if (th.creds) credsCalls(inj, th.creds, c);
  signalCalls(inj, th.signals_p, c, pid, tid);
  signalCalls(inj, opts.sharedSignals, c, pid);
  if (th.seccomp_mode === 2 && th.seccomp_filter !== undefined) {
    for (const f of seccompChain(opts.seccomp, th.seccomp_filter)) {
      const prog = Buffer.from(f.filter);
      const progAt = inj.put(prog);
      const fprog = Buffer.alloc(16);
      fprog.writeUInt16LE(prog.length / 8, 0);
      fprog.writeBigUInt64LE(progAt, 8);
      const flags = (f.flags ?? 0) & ~SECCOMP_FILTER_FLAG_TSYNC;
      c.add('seccomp(SECCOMP_SET_MODE_FILTER)', [
        SYS.seccomp,
        SECCOMP_SET_MODE_FILTER,
        flags,
        inj.put(fprog),
      ]);
    }
  } else if (th.seccomp_mode === 1) {
    c.add('seccomp(SECCOMP_SET_MODE_STRICT)', [SYS.seccomp, SECCOMP_SET_MODE_STRICT, 0, 0]);
  }
  c.run(inj);
}
