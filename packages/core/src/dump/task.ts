import { ProcDir, procPath } from '@criu-ts/bfd';
import { Parasite, type SeizedTask, type SeizedTree } from '@criu-ts/compel';
import type { CoreEntry, ImageDir, TaskCoreEntry, TtyInfoEntry, UserDescT } from '@criu-ts/images';
import type { PageServerClient } from '@criu-ts/page-server';
import {
  KCMP_FILES,
  kcmp,
  PAGE_SIZE,
  ptraceGetSigmask,
  ptraceGetThreadArea,
  ptraceGetXstate,
  raw,
  SIGSTOP,
  SIGTSTP,
  SIGTTIN,
  SIGTTOU,
  SYS,
  TIOCGPGRP,
  TIOCGSID,
} from '@criu-ts/sys';
import type { CgroupSets } from '../cgroup/dump.js';
import { coreEntry, TASK_ALIVE, TASK_STOPPED, type ThreadState } from '../core-image/thread.js';
import { dumpCreds } from '../creds/dump.js';
import { dumpFds } from '../files/dump-fds.js';
import { socketMappingId } from '../files/packet/dump.js';
import { pathEntry } from '../files/regular/dump.js';
import type { FdDumpContext, FileTable } from '../files/table.js';
import { dumpFs } from '../fs/dump.js';
import type { KobjIds } from '../ids/dump.js';
import { dumpMm } from '../mm/dump.js';
import { dumpGuardRegions } from '../mm/guards.js';
import { pagesToDump } from '../mm/pages.js';
import type { MemTracker } from '../mm/track/index.js';
import { dumpVmas } from '../mm/vmas.js';
import { writePlan } from '../mm/write.js';
import type { ProgressTracker } from '../progress/progress.js';
import { rseqOf } from '../rseq/dump.js';
import type { SeccompFilters } from '../seccomp/dump.js';
import type { ShmemDump } from '../shmem/dump.js';
import { pendingSignals, signalQueue } from '../signals/dump.js';
import { listPosixTimers, taskTimers } from '../timers/dump.js';
import { DumpError } from './errors.js';
import { readRemoteState, readRemoteThreadState } from './remote-state.js';
import type { DumpStats } from './stats.js';

/** Everything one dump shares between its tasks. */
export interface DumpContext {
  dir: ImageDir;
  tree: SeizedTree;
  files: FileTable;
  ids: KobjIds;
  stats: DumpStats;
  /** files_id values whose fdinfo image is written already. */
  fdTablesDone: Set<number>;
  /** The task already dumped with each vm_id and files_id: restore cannot share them yet. */
  sharedBy: Map<string, number>;
  pagesId: number;
  /** --page-server: the connection the tasks' memory goes through. */
  pageServer?: PageServerClient;
  seccomp: SeccompFilters;
  cgroups: CgroupSets;
  shellJob: boolean;
  /** tty-info.img entries, one per terminal. */
  ttyInfos: TtyInfoEntry[];
  /** Shared memory objects (memfd, anonymous shared, SysV), dumped once for the tree. */
  shmem: ShmemDump;
  /** What the dump tells its progress hook. */
  progress?: ProgressTracker;
  /** --track-mem: dirty-page tracking (mm/track/); pages unchanged since the parent go there. */
  track?: MemTracker;
}

// GDT TLS slots x86-64 userspace may use (GDT_ENTRY_TLS_MIN .. MAX).
const TLS_ENTRIES = [12, 13, 14];

/**
 * Two tasks sharing an address space (a vfork child before its exec) or an fd table cannot be restored
 * yet: refused now, while the tree can still go on, not after it is killed.
 */
function refuseShared(ctx: DumpContext, pid: number, key: string, what: string): void {
  const other = ctx.sharedBy.get(key);
  if (other !== undefined) throw new DumpError(`tasks ${other} and ${pid} share ${what}: not supported yet`);
  ctx.sharedBy.set(key, pid);
}

/**
 * An fd table shared with the parent (clone(CLONE_FILES)) comes back the same way; one shared with any
 * other task (its parent has a table of its own) cannot: refused.
 */
function refuseSharedFds(ctx: DumpContext, task: SeizedTask, filesId: number): void {
  const key = `files:${filesId}`;
  const other = ctx.sharedBy.get(key);
  if (other === undefined) {
    ctx.sharedBy.set(key, task.pid);
    return;
  }
  const parent = ctx.tree.tasks.find((t) => t.pid === task.ppid);
  if (!parent || parent.state === 'zombie' || kcmp(task.pid, parent.pid, KCMP_FILES) !== 0)
    throw new DumpError(
      `tasks ${other} and ${task.pid} share one fd table (CLONE_FILES), and ${task.pid}'s parent does not: cannot restore`,
    );
}

/** Dumps one task: its threads' core images, mm, pages, files, fs and ids. */
export async function dumpTask(ctx: DumpContext, task: SeizedTask): Promise<void> {
  if (task.state === 'zombie') throw new DumpError(`pid ${task.pid}: zombies are handled by dumpZombie`);
  const proc = ProcDir.open(task.pid);
  try {
    const stat = proc.stat();
    const status = proc.status();
    const timers = listPosixTimers(proc);
    const ids = ctx.ids.of(task.pid);
    refuseShared(ctx, task.pid, `vm:${ids.vm_id}`, 'one address space (vfork, CLONE_VM)');
    refuseSharedFds(ctx, task, ids.files_id);
    ctx.dir.write('ids-%u', task.pid, [ids]);

    // What only the task can tell (one injected batch), and its fds, which may need it too.
    const parasite = Parasite.infect(ctx.tree, task.pid);
    let remote: ReturnType<typeof readRemoteState>;
    try {
      remote = readRemoteState(
        parasite,
        task.pid,
        timers.map((t) => t.id),
      );
      ctx.track?.prepare(parasite, task.pid, String(stat.starttime));
      if (!ctx.fdTablesDone.has(ids.files_id)) {
        ctx.dir.write(
          'fdinfo-%u',
          ids.files_id,
          dumpFds(task.pid, proc, ctx.files, fdContext(ctx, parasite)),
        );
        ctx.fdTablesDone.add(ids.files_id);
      }
    } finally {
      parasite.cure();
    }

    // Memory, read after the parasite left so its scratch area is not in the maps.
    const smaps = proc.smaps();
    const vmas = dumpVmas(
      task.pid,
      smaps,
      (s) =>
        pathEntry(
          ctx.files,
          // an unlinked file (a POSIX semaphore, a replaced library) becomes a ghost file
          s.deleted ? `${s.path} (deleted)` : s.path,
          procPath(task.pid, 'map_files', `${s.start.toString(16)}-${s.end.toString(16)}`),
        ),
      ctx.shmem.forTask(task.pid, ids.ipc_ns_id ?? 0),
      (m) => socketMappingId(ctx.files, m),
    );
    const exeId = pathEntry(ctx.files, proc.readlink('exe'), procPath(task.pid, 'exe'));
    const guards = dumpGuardRegions(task.pid, proc.pagemap(), vmas);
    ctx.dir.write('mm-%u', task.pid, [
      dumpMm(proc, stat, [...vmas, ...guards], exeId, {
        brk: remote.brk,
        dumpable: remote.dumpable,
        thpDisabled: remote.thpDisabled,
      }),
    ]);
    ctx.stats.memdumpStart = process.hrtime.bigint();
    const { runs, scanned } = pagesToDump(proc.pagemap(), vmas);
    const plan = ctx.track?.plan(task.pid, String(stat.starttime), proc, smaps, vmas, runs);
    // --page-server: the memory goes to the page server (OPEN2 of this pid, its runs), not to -D
    // (dump refuses --track-mem with it, so there is no plan then).
    const pm = ctx.pageServer
      ? await ctx.pageServer.open('task', task.pid)
      : ctx.dir.pageMapWriter(task.pid, ctx.pagesId++, { direct: true });
    ctx.progress?.more('pages', pageCount(runs) - (plan?.parentPages ?? 0));
    ctx.progress?.phase('writing memory');
    try {
      const r = await writePlan(task.pid, plan?.runs ?? runs.map((run) => ({ ...run, parent: false })), pm, {
        tolerant: false,
        progress: ctx.progress?.pages,
      });
      ctx.stats.pagesWritten += r.written;
      ctx.stats.pagesSkippedParent += r.parent;
    } finally {
      pm.close();
    }
    ctx.progress?.phase('dumping tasks');
    ctx.stats.pagesScanned += scanned;
    ctx.stats.memdumpEnd = ctx.stats.memwriteEnd = process.hrtime.bigint();

    ctx.dir.write('fs-%u', task.pid, [dumpFs(task.pid, proc, status, ctx.files)]);

    // Task-wide state goes into the leader's core image.
    const tc: TaskCoreEntry = {
      task_state: task.state === 'stopped' ? TASK_STOPPED : TASK_ALIVE,
      exit_code: 0,
      personality: Number.parseInt(proc.readText('personality').trim(), 16),
      flags: stat.flags,
      blk_sigset: ptraceGetSigmask(task.pid),
      comm: stat.comm,
      timers: taskTimers(remote.itimers, timers, remote.posixTimers),
      rlimits: { rlimits: remote.rlimits },
      sigactions: remote.sigactions,
      child_subreaper: remote.childSubreaper,
      loginuid: Number(readOr(proc, 'loginuid', '4294967295')),
      oom_score_adj: Number(readOr(proc, 'oom_score_adj', '0')),
    };
    if (remote.membarrierMask) tc.membarrier_registration_mask = remote.membarrierMask;
    const shared = pendingSignals(task.pid, true);
    if (shared.length) tc.signals_s = signalQueue(shared);
    // The signal that stopped it (SIGSTOP, SIGTSTP...): what restore stops it with again.
    if (task.state === 'stopped') tc.stop_signo = stopSignalOf(task);

    const seccomp = ctx.seccomp.addTask(
      task.threads.map((t) => ({ tid: t.tid, mode: proc.task(t.tid).status().seccomp })),
    );
    for (const [ti, thread] of task.threads.entries()) {
      const isLeader = thread.tid === task.pid;
      const tproc = proc.task(thread.tid);
      const tstatus = tproc.status();
      const state: ThreadState = {
        tid: thread.tid,
        regs: thread.regs,
        xstate: ptraceGetXstate(thread.tid),
        sigmask: ptraceGetSigmask(thread.tid),
        clearTidAddr: 0n,
        tls: readTls(thread.tid),
        creds: dumpCreds(tstatus, remote.secbits),
        comm: tproc.stat().comm,
        sched: schedOf(thread.tid),
        pendingSignals: pendingSignals(thread.tid, false),
        seccompMode: seccomp[ti]!.mode,
        rseq: rseqOf(thread.tid),
        robustList: robustListOf(thread.tid),
      };
      const own = isLeader ? remote : readThreadState(ctx.tree, task.pid, thread.tid);
      state.clearTidAddr = own.clearTidAddr;
      state.sas = own.sas;
      state.pdeathSig = own.pdeathSig;
      const filter = seccomp[ti]!.filter;
      if (filter !== undefined) state.seccompFilter = filter;
      const core: CoreEntry = coreEntry(state, isLeader ? tc : undefined);
      if (core.thread_core) core.thread_core.cg_set = ctx.cgroups.of(proc.task(thread.tid));
      ctx.dir.write('core-%u', thread.tid, [core]);
    }
  } finally {
    proc.close();
  }
}

// Terminal ioctls that only answer in the task that holds the terminal.

/** What the fd drivers need of one task: terminals ask the task itself for their session. */
function fdContext(ctx: DumpContext, parasite: Parasite): FdDumpContext {
  const session = (_pid: number, fd: number) => {
    const out = parasite.scratch.addr;
    const sid = parasite.syscall(SYS.ioctl, fd, TIOCGSID, out);
    const sidValue = sid < 0n ? 0 : parasite.readScratch(0, 4).readInt32LE(0);
    const pg = parasite.syscall(SYS.ioctl, fd, TIOCGPGRP, out);
    const pgrp = pg < 0n ? 0 : parasite.readScratch(0, 4).readInt32LE(0);
    return { sid: sidValue, pgrp };
  };
  return {
    tty: { shellJob: ctx.shellJob, session, infos: ctx.ttyInfos, seenInfo: new Set() },
    memfds: ctx.shmem.memfds,
    ...(ctx.progress ? { onFd: (kind) => kind === 'inet' && ctx.progress?.add('connections') } : {}),
  };
}

/** The per-thread values a non-leader thread keeps (its own parasite, a small batch). */
function readThreadState(tree: SeizedTree, pid: number, tid: number) {
  const p = Parasite.infect(tree, pid, { tid, tableEntries: 8, dataSize: 4096 });
  try {
    return readRemoteThreadState(p, tid);
  } finally {
    p.cure();
  }
}

const pageCount = (runs: { start: bigint; end: bigint }[]) =>
  runs.reduce((n, r) => n + Number((r.end - r.start) / BigInt(PAGE_SIZE)), 0);

/** The group stop's signal, as the seize saw it in the task's threads; SIGSTOP when none tells. */
function stopSignalOf(task: SeizedTask): number {
  const stops = [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU];
  const sig = task.threads.map((t) => t.stopSignal).find((s) => stops.includes(s));
  return sig ?? SIGSTOP;
}

function readOr(proc: ProcDir, name: string, fallback: string): string {
  try {
    return proc.readText(name).trim();
  } catch {
    return fallback;
  }
}

function readTls(tid: number): UserDescT[] {
  return TLS_ENTRIES.map((n) => {
    const d = ptraceGetThreadArea(tid, n);
    return {
      entry_number: d.entryNumber,
      base_addr: d.baseAddr,
      limit: d.limit,
      seg_32bit: d.seg32bit,
      contents_h: (d.contents & 2) !== 0,
      contents_l: (d.contents & 1) !== 0,
      read_exec_only: d.readExecOnly,
      limit_in_pages: d.limitInPages,
      seg_not_present: d.segNotPresent,
      usable: d.useable,
    };
  });
}

/** Scheduling policy, RT priority and nice value, read from outside by tid. */
function schedOf(tid: number): { policy: number; prio: number; nice: number } {
  const policy = Number(raw.syscall(SYS.sched_getscheduler, tid));
  const param = Buffer.alloc(4);
  raw.syscall(SYS.sched_getparam, tid, param);
  // getpriority returns 20 - nice so that it is never negative.
  const prio = Number(raw.syscall(SYS.getpriority, 0 /* PRIO_PROCESS */, tid));
  // SCHED_RESET_ON_FORK stays in the policy, as sched_getscheduler gives it (CRIU stores it so too).
  return { policy, prio: param.readInt32LE(0), nice: 20 - prio };
}

/** The robust futex list head and its length, read from outside with get_robust_list(tid). */
function robustListOf(tid: number): { head: bigint; len: number } {
  const head = Buffer.alloc(8);
  const len = Buffer.alloc(8);
  if (Number(raw.syscall(SYS.get_robust_list, tid, head, len)) < 0) return { head: 0n, len: 0 };
  return { head: head.readBigUInt64LE(0), len: Number(len.readBigUInt64LE(0)) };
}
