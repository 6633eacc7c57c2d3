// criu restore, driven from TypeScript over ptrace (no helper binary):
//
//   plan       read and check every image, wait for the pids to be free, open every file: all before
//              the first process exists (planRestore, waitForFreeIds, NodeFiles);
//   stub       start the stub ELF, map the scratch area (code page, syscall table, data) into it at an
//              address no dumped VMA uses, block every signal, reset every signal action;
//   tree       clone3 with set_tid: the root from the stub (CLONE_PARENT: criu-ts's child), every other
//              task from its parent, parents first; setsid, setpgid; zombies exit with their status;
//   tasks      in each task: memory (mm.ts), threads (clone3 in the task), fds, cwd/root/umask,
//              task-wide then per-thread state (state.ts);
//   finish     each leader unmaps the scratch at a syscall-exit stop; every thread gets its registers,
//              FPU state and signal mask (as the images have them: they resume as they are); then all
//              threads are detached together (stopped tasks get their SIGSTOP first).
//
// Any error kills everything created so far and reaps it: nothing stays half alive.
import { readFileSync, writeFileSync } from 'node:fs';
import { ProcDir } from '@criu-ts/bfd';
import { codePage, killAndReap } from '@criu-ts/compel';
import type { FdinfoEntry, FileLockEntry, RestoreStatsEntry } from '@criu-ts/images';
import { ImageDir, warmUpCodecs } from '@criu-ts/images';
import {
  __WALL,
  CLONE_FILES,
  close,
  F_DUPFD_CLOEXEC,
  F_SETFD,
  isSysError,
  kill,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  O_DIRECTORY,
  O_RDONLY,
  PAGE_SIZE,
  PR_SET_DUMPABLE,
  PR_SET_NAME,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  ptraceCont,
  ptraceDetach,
  ptraceGetXstate,
  ptraceSetRegs,
  ptraceSetSigmask,
  ptraceSetXstate,
  raw,
  SIGKILL,
  SIGSTOP,
  SIGTRAP,
  SYS,
  sigmaskBit,
  syscallName,
  vmRead,
  vmWrite,
  WNOHANG,
  waitpid,
} from '@criu-ts/sys';
import { type CgroupMode, CgroupPlacer, type CgroupRoot } from '../cgroup/restore.js';
import { breakLeases, locksByTask, retakeLocks } from '../file-locks/restore.js';
import { restoreDriverFor } from '../files/drivers.js';
import { asyncFdCalls } from '../files/fown.js';
import { isProcFdFile, isProcFileOf, procPidOf } from '../files/regular/proc-path.js';
import type { NetworkLockMethod } from '../net-lock/index.js';
import { fpregsFromImage, gpregsFromImage, resumableRegs } from '../registers/x86.js';
import { RestoreError } from './errors.js';
import { NodeFiles } from './files.js';
import { HelperProcesses } from './helpers.js';
import { type Call, Injector, type ScratchLayout, type Tracee, waitStop } from './inject.js';
import { dumpableCall, mapsWritable, restoreMm } from '../mm/restore.js';
import { waitForFreeIds } from './pids.js';
import { ownVdsoLayout, planRestore, type RestorePlan, type TaskPlan, VMA } from './plan.js';
import { restoreTaskState, restoreThreadState } from './state.js';
import { STUB_SYSCALL, startStub, startStubAsSibling } from './stub.js';
import { cloneWithId } from './tree.js';

export interface RestoreLog {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export interface RestoreOptions {
  /** -D: the images. */
  imagesDir: string;
  /** -W: where stats-restore goes (default: the images dir), as CRIU keeps it. */
  workDir?: string;
  /**
   * --manage-cgroups: soft (default) creates a task's missing cgroups, none and props want them to
   * exist, full and strict set the properties of existing ones too (strict fails on one), ignore
   * leaves every task in criu-ts's own cgroups (see cgroup/restore.ts).
   */
  manageCgroups?: CgroupMode;
  /** --cgroup-root [controller:]/path: the dumped cgroups go under these paths. */
  cgroupRoots?: CgroupRoot[];
  /** --cgroup-yard DIR: the cgroup hierarchies are mounted in DIR (else criu-ts mounts its own). */
  cgroupYard?: string;
  /** --shell-job: sessions and groups led from outside the images are the caller's. */
  shellJob?: boolean;
  /**
   * --restore-sibling: the root task becomes the child of criu-ts's parent (who then waits for it),
   * instead of criu-ts's own child.
   */
  sibling?: boolean;
  /**
   * --network-lock: the method the dump locked connections with, which unlocks them once the tree
   * runs (default: the one inventory.img names; nftables if it names none).
   */
  networkLock?: NetworkLockMethod;
  /** --tcp-close: TCP connections come back closed (required for images dumped with it). */
  tcpClose?: boolean;
  /** How long to wait for pids still held by dying tasks (default 5 s). */
  pidWaitMs?: number;
  log?: Partial<RestoreLog>;
}

export interface RestoreResult {
  /** Pid of the restored root task (a child of this process, or of its parent with `sibling`). */
  root: number;
  pids: number[];
  stats: RestoreStatsEntry;
  /**
   * Milliseconds: reading images and opening files, creating tasks, memory, everything else, and their
   * total; `wait` (not in the total) is how long pids held by dying tasks were waited for.
   */
  timings: { plan: number; wait: number; fork: number; memory: number; rest: number; total: number };
}

const PAGE = BigInt(PAGE_SIZE);
const TABLE_ENTRIES = 1024;
const DATA_SIZE = 1024 * 1024;
const PLACE_FROM = 0x1_0000_0000n;
const USER_TOP = 0x7fff_ffff_f000n;
const STACK_GAP = 4n * 1024n * 1024n;
/** Every signal blocked but SIGTRAP (our int3) while we work. */
const ALL_BUT_TRAP = ~sigmaskBit(SIGTRAP) & 0xffff_ffff_ffff_ffffn;

const ms = (from: number) => performance.now() - from;

interface LiveThread {
  tid: number;
  t: Tracee;
  inj: Injector;
}

interface LiveTask {
  plan: TaskPlan;
  main: Injector;
  threads: LiveThread[];
  /** The helper pidfd (of criu-ts) in the task, above every restored fd. */
  pidfd: number;
}

/** criu restore -D DIR: see the file comment. */
export function restore(opts: RestoreOptions): RestoreResult {
  const noop = () => {};
  const log: RestoreLog = {
    debug: opts.log?.debug ?? noop,
    info: opts.log?.info ?? noop,
    warn: opts.log?.warn ?? noop,
  };
  const t0 = performance.now();
  warmUpCodecs([
    'core_entry',
    'mm_entry',
    'pagemap_head',
    'pagemap_entry',
    'file_entry',
    'fdinfo_entry',
    'stats_entry',
  ]);
  // stats-restore is written once the tree runs: something planted under its name is refused now.
  (opts.workDir ? ImageDir.create(opts.workDir) : ImageDir.open(opts.imagesDir)).checkCanWrite(
    'stats-%s',
    'restore',
  );
  // cgroup dirs are made before anything else, as CRIU makes them: files of the tree may be in them.
  const cgroups = new CgroupPlacer(
    ImageDir.open(opts.imagesDir),
    {
      mode: opts.manageCgroups ?? 'soft',
      roots: opts.cgroupRoots ?? [],
      ...(opts.cgroupYard ? { yard: opts.cgroupYard } : {}),
    },
    (m) => log.debug(m),
  );
  let plan: RestorePlan;
  try {
    cgroups.prepare();
    plan = planRestore(opts.imagesDir, {
      shellJob: opts.shellJob === true,
      ...(opts.networkLock ? { networkLock: opts.networkLock } : {}),
      tcpClose: opts.tcpClose === true,
    });
  } catch (e) {
    cgroups.close();
    throw e;
  }
  log.info(`restoring ${plan.tasks.length} tasks of ${opts.imagesDir}`);
  const tWait = performance.now();
  waitForFreeIds([...plan.ids, ...plan.pgidHelpers], opts.pidWaitMs ?? 5000);
  const waitMs = ms(tWait);
  const files = new NodeFiles(plan, (m) => log.debug(m));
  const r = new Restorer(plan, files, log, cgroups, opts.sibling === true);
  let tPlan = 0;
  try {
    r.openFiles();
    tPlan = ms(t0) - waitMs;
    r.run();
    files.afterRestore();
  } catch (e) {
    r.killAll();
    plan.shmem.discard();
    throw e;
  } finally {
    cgroups.close();
    files.closeAll();
    plan.shmem.close();
    for (const t of plan.tasks) t.pagemap?.close();
  }
  // The tree runs now: nothing below may undo it. Time spent waiting for pids of dying tasks is not
  // restore work: it is left out.
  const total = ms(t0) - waitMs;
  const timings = { plan: tPlan, wait: waitMs, fork: r.forkMs, memory: r.memMs, rest: 0, total };
  timings.rest = total - timings.plan - timings.fork - timings.memory;
  const stats: RestoreStatsEntry = {
    pages_compared: BigInt(r.compared),
    pages_skipped_cow: BigInt(r.sharedCow),
    forking_time: Math.round(r.forkMs * 1000),
    restore_time: Math.round(total * 1000),
    pages_restored: BigInt(r.pages),
  };
  try {
    (opts.workDir ? ImageDir.create(opts.workDir) : plan.dir).write('stats-%s', 'restore', [
      { restore: stats },
    ]);
  } catch (e) {
    log.warn(`cannot write stats-restore: ${(e as Error).message}`);
  }
  log.info(
    `restored ${plan.root.pid}: ${plan.tasks.length} tasks, ${r.pages} pages in ${total.toFixed(1)} ms`,
  );
  return { root: plan.root.pid, pids: plan.tasks.map((t) => t.pid), stats, timings };
}

class Restorer {
  forkMs = 0;
  memMs = 0;
  pages = 0;
  /** Pages of inherited areas compared with the parent's, and those left shared. */
  compared = 0;
  sharedCow = 0;
  private stub: Tracee | undefined;
  private scratch: ScratchLayout | undefined;
  /** Helper processes, made by the stub while it runs (before the tree exists). */
  private helpers: HelperProcesses | undefined;
  private readonly live = new Map<number, LiveTask>();
  /** Every task created (its pid), in creation order, for cleanup. */
  private readonly created: number[] = [];
  /** Every pid and tid of the tree. */
  private readonly treeIds: Set<number>;
  /** The tree's pids and tids, and the dead pids of /proc files: their /proc files are opened later. */
  private readonly procPidsLater: Set<number>;
  /** filelocks.img by the pid that takes each lock again. */
  private readonly locks: Map<number, FileLockEntry[]>;
  /** Keys of in-task fd work done once per restore (see FdRestoreDriver.inTask). */
  private readonly inTaskDone = new Set<string>();
  /** Tracees whose exit we still have to collect when cleaning up. */
  private readonly traced = new Set<number>();

  constructor(
    private readonly plan: RestorePlan,
    private readonly files: NodeFiles,
    private readonly log: RestoreLog,
    private readonly cgroups: CgroupPlacer,
    /** --restore-sibling: the stub is started as criu-ts's sibling and becomes the root itself. */
    private readonly sibling = false,
  ) {
    this.locks = locksByTask(plan.dir);
    this.treeIds = new Set(plan.ids);
    this.procPidsLater = new Set([...plan.ids, ...plan.deadPids]);
    files.makeHelpersWith((use) => this.whileHelperLives(use));
  }

  /** Open every file before any task exists: a missing or changed file fails now (cgroup sets too). */
  openFiles(): void {
    for (const task of this.plan.tasks)
      this.cgroups.check(task.pid, task.threads[0]?.core.thread_core?.cg_set);
    for (const t of this.plan.tasks) {
      if (t.state === 'zombie') continue;
      for (const fd of t.fdinfo ?? []) if (!this.opensLater(fd.id)) this.files.fd(fd.id, 'fd');
      for (const id of [t.fs!.cwd_id, t.fs!.root_id]) if (!this.opensLater(id)) this.files.fd(id, 'dir');
      this.files.fd(t.mm!.exe_file_id, 'read');
      for (const v of t.mm!.vmas ?? []) {
        // memfd mappings come from shared memory objects (shmem/restore.ts).
        if (!(v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) || v.status & VMA.AREA_MEMFD) continue;
        this.files.fd(Number(v.shmid), mapsWritable(v) ? 'write' : 'read');
      }
      if (t.pagemap!.runs.length) this.files.rawFd(t.pagemap!.pagesFile);
    }
    this.plan.shmem.prepare();
  }

  /**
   * Files that name processes wait for them: /proc/PID files of the tree and of dead pids are opened
   * once PID exists again; a driver's late files (pidfds: FdRestoreDriver.openLate) once the tree
   * exists (restoreFds asks for them) or through a dying helper (openDyingFiles).
   */
  private opensLater(id: number): boolean {
    const name = this.plan.files.get(id)?.reg?.name;
    if (name !== undefined) return isProcFileOf(name, this.procPidsLater);
    return this.files.lateOpen(id, this.treeIds) !== undefined;
  }

  run(): void {
    const tFork = performance.now();
    this.startStub();
    this.openDeadPidFiles();
    this.openDyingFiles();
    this.createTree();
    // Parents' memory is restored while the tree is made (before they fork): not forking time.
    this.forkMs = ms(tFork) - this.memMs;
    for (const task of this.plan.tasks) if (task.state !== 'zombie') this.restoreTask(task);
    this.cgroups.restoreProperties();
    this.cgroups.close();
    this.plan.shmem.afterTasks();
    this.files.restoreOwners();
    this.files.unlinkGhosts();
    this.finish();
  }

  // ---- stub ------------------------------------------------------------------------------------------

  private startStub(): void {
    const stub = this.sibling ? startStubAsSibling(this.plan.root.pid) : startStub(new Set(this.plan.ids));
    if (this.sibling) this.created.push(stub.pid);
    this.stub = stub;
    this.traced.add(stub.tid);
    const size = PAGE_SIZE + pageUp((TABLE_ENTRIES + 1) * 64) + DATA_SIZE;
    const base = this.chooseScratch(stub.pid, BigInt(size));
    const s: ScratchLayout = {
      base,
      size,
      code: base,
      table: base + PAGE,
      tableEntries: TABLE_ENTRIES,
      data: base + PAGE + BigInt(pageUp((TABLE_ENTRIES + 1) * 64)),
      dataSize: DATA_SIZE,
    };
    const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
    const m = stub.syscallAt(STUB_SYSCALL, SYS.mmap, [base, size, PROT_READ | PROT_WRITE, flags, -1, 0]);
    if (m !== base) throw new RestoreError(`cannot map the scratch area at 0x${base.toString(16)}: ${m}`);
    vmWrite(stub.tid, base, codePage(PAGE_SIZE));
    const p = stub.syscallAt(STUB_SYSCALL, SYS.mprotect, [base, PAGE_SIZE, PROT_READ | PROT_EXEC]);
    if (p !== 0n) throw new RestoreError(`cannot make the scratch code executable: errno ${-p}`);
    this.scratch = s;
    this.helpers = new HelperProcesses(stub, s, this.traced);
    // Everything the restored tasks inherit from the stub: no signal delivered while we work, every
    // action SIG_DFL (the shell that started the stub ignores SIGINT and SIGQUIT).
    ptraceSetSigmask(stub.tid, ALL_BUT_TRAP);
    const inj = new Injector(stub, s);
    const dfl = inj.put(Buffer.alloc(32));
    const calls: Call[] = [];
    for (let sig = 1; sig <= 64; sig++)
      if (sig !== 9 && sig !== 19) calls.push([SYS.rt_sigaction, sig, dfl, 0, 8]);
    inj.batch(calls, (i) => `rt_sigaction(${i + 1}) in the stub`);
    this.log.debug(`stub ${stub.pid}, scratch at 0x${base.toString(16)} (${size} bytes)`);
  }

  /**
   * /proc/PID files of tasks that had died by the dump (CRIU 1.4's dead-pid remaps): opened while a
   * helper with that pid lives (helpers.ts).
   */
  private openDeadPidFiles(): void {
    for (const pid of this.plan.deadPids) {
      const ids = this.fdIdsUnderProc(pid);
      if (ids.length === 0) continue;
      this.helpers!.withPid(pid, () => {
        for (const id of ids) this.files.fd(id, 'fd');
      });
      this.log.debug(`dead pid ${pid}: ${ids.length} /proc files opened through a helper`);
    }
  }

  /**
   * Files whose driver needs a process that then dies (a pidfd of a process that had died by the dump):
   * opened now, while the stub can make helpers (it is gone once the tree exists).
   */
  private openDyingFiles(): void {
    for (const t of this.plan.tasks)
      for (const fd of t.state === 'zombie' ? [] : (t.fdinfo ?? []))
        if (this.files.lateOpen(fd.id, this.treeIds) === 'dying') this.files.fd(fd.id, 'fd');
  }

  /** FdRestoreContext.whileHelperLives: a helper the kernel numbers, while the stub is there. */
  private whileHelperLives<T>(use: (pid: number) => T): T {
    if (!this.helpers) throw new RestoreError('a helper process is asked for while no stub runs');
    return this.helpers.withAnyPid(use);
  }

  /** files.img ids of the fds (of any task) that are /proc/PID or a file under it. */
  private fdIdsUnderProc(pid: number): number[] {
    const ids = new Set<number>();
    for (const t of this.plan.tasks)
      for (const fd of t.fdinfo ?? []) {
        const name = this.plan.files.get(fd.id)?.reg?.name;
        if (name !== undefined && procPidOf(name) === pid) ids.add(fd.id);
      }
    return [...ids];
  }

  /** A hole for the scratch area that no dumped VMA (of any task) and no mapping of the stub uses. */
  private chooseScratch(stubPid: number, size: bigint): bigint {
    const busy: Array<{ start: bigint; end: bigint }> = [];
    for (const t of this.plan.tasks) {
      for (const v of t.mm?.vmas ?? []) {
        if (v.status & VMA.AREA_VSYSCALL) continue;
        busy.push({ start: v.flags & 0x100 ? v.start - STACK_GAP : v.start, end: v.end });
      }
    }
    const d = ProcDir.open(stubPid);
    try {
      for (const m of d.maps()) if (m.path !== '[vsyscall]') busy.push({ start: m.start, end: m.end });
    } finally {
      d.close();
    }
    busy.sort((a, b) => (a.start < b.start ? -1 : 1));
    // Room for the scratch area and, after it, a parking place for the vDSO (see mm.ts).
    const need = size + 4n * PAGE + 64n * PAGE;
    let lo = PLACE_FROM;
    for (const b of busy) {
      if (b.start > lo && b.start - lo >= need) return lo + PAGE;
      if (b.end > lo) lo = b.end;
    }
    if (USER_TOP - lo >= need) return lo + PAGE;
    throw new RestoreError('no free address range for the restore scratch area');
  }

  // ---- tree ------------------------------------------------------------------------------------------

  private createTree(): void {
    const s = this.scratch!;
    const byPid = new Map<number, Tracee>();
    const cgroups = this.cgroups;
    for (const task of this.plan.tasks) {
      const parent = task.parent ? byPid.get(task.parent.pid) : this.stub;
      if (!parent) throw new RestoreError(`parent of ${task.pid} was not created`);
      // A parent's memory is in place before it forks: its children inherit its private pages and
      // share those they still had in common at the dump (copy-on-write), as CRIU restores them.
      // Not a parent that shares its fd table (CLONE_FILES) with its parent or a child: a task sharing
      // one is restored once the task that fills the table has, its memory with it.
      const p = task.parent;
      if (p && !sharesFds(p) && !p.children.some(sharesFds)) this.restoreMemory(p);
      let t: Tracee;
      if (!task.parent && this.sibling) {
        t = parent; // the stub was born with the root's pid, as our sibling: it is the root
      } else {
        const kind = task.parent ? 'child' : 'root';
        t = cloneWithId(
          new Injector(parent, s),
          parent.pid,
          task.pid,
          kind,
          sharesFds(task) ? CLONE_FILES : 0n,
        );
        this.created.push(task.pid);
      }
      this.traced.add(task.pid);
      byPid.set(task.pid, t);
      if (task.state !== 'zombie') {
        const main = new Injector(t, s);
        this.live.set(task.pid, { plan: task, main, threads: [{ tid: task.pid, t, inj: main }], pidfd: -1 });
      }
      if (task.sid === task.pid) new Injector(t, s).call(`setsid in ${task.pid}`, SYS.setsid);
      cgroups.place(task.pid, task.threads[0]?.core.thread_core?.cg_set, task.parent?.pid);
      this.log.debug(`created ${task.pid}${task.parent ? ` (child of ${task.parent.pid})` : ''}`);
    }
    // The stub is not needed any more; the root is our child now (CLONE_PARENT), or was the stub.
    if (!this.sibling) {
      this.traced.delete(this.stub!.tid);
      killAndReap(this.stub!.pid);
    }
    this.stub = undefined;
    this.helpers = undefined;

    // Process groups: leaders first, then their members (all in their session by now). A group whose
    // leader had died is made by a helper with its pid, a child of its first member (helpers.ts).
    const inTree = new Set([...this.plan.tasks.map((t) => t.pid), ...this.plan.pgidHelpers]);
    for (const pgid of this.plan.pgidHelpers) {
      const first = this.plan.tasks.find((t) => t.pgid === pgid)!;
      const member = byPid.get(first.pid)!;
      new HelperProcesses(member, s, this.traced).withPid(pgid, () => {
        const inj = new Injector(member, s);
        inj.call(`setpgid of the helper for group ${pgid}`, SYS.setpgid, pgid, pgid);
        inj.call(`setpgid(${pgid}) in ${first.pid}`, SYS.setpgid, 0, pgid);
      });
      this.log.debug(`group ${pgid} made again by a helper for ${first.pid}`);
    }
    const order = [...this.plan.tasks].sort((a, b) => Number(b.pgid === b.pid) - Number(a.pgid === a.pid));
    for (const task of order) {
      if (!inTree.has(task.pgid)) continue; // --shell-job: the caller's group
      if (pgidOf(task.pid) === task.pgid) continue;
      new Injector(byPid.get(task.pid)!, s).call(
        `setpgid(${task.pgid}) in ${task.pid}`,
        SYS.setpgid,
        0,
        task.pgid,
      );
    }
    for (const task of this.plan.tasks) {
      const t = byPid.get(task.pid)!;
      if (task.state === 'zombie') this.makeZombie(t, task);
    }
  }

  /** A zombie: the task exits with its dumped status and stays unreaped (its parent is stopped). */
  private makeZombie(t: Tracee, task: TaskPlan): void {
    const status = task.exitStatus;
    const sig = status & 0x7f;
    const inj = new Injector(t, this.scratch!);
    const comm = Buffer.alloc(16);
    comm.write(task.tc.comm.slice(0, 15), 'utf8');
    inj.call('prctl(PR_SET_NAME)', SYS.prctl, PR_SET_NAME, inj.put(comm), 0, 0, 0);
    inj.resetData();
    // A zombie killed by a signal that dumps core is killed by it again: no core file this time.
    if (sig !== 0) inj.call('prctl(PR_SET_DUMPABLE, 0)', SYS.prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
    ptraceSetSigmask(t.tid, 0n);
    if (sig === 0) {
      const regs = t.regs.clone();
      regs
        .set('rip', this.scratch!.code + 0x38n)
        .set('rax', SYS.exit_group)
        .set('rdi', (status >> 8) & 0xff);
      regs.set('orig_rax', -1n);
      ptraceSetRegs(t.tid, regs);
    } else {
      kill(t.tid, sig);
    }
    // SIGKILL needs no resume: it ends the task even in its ptrace stop (a PTRACE_CONT would find it gone).
    if (sig !== SIGKILL) ptraceCont(t.tid, 0);
    for (;;) {
      const st = waitStop(t.tid);
      if (st.exited || st.signaled) break;
      // The signal we sent, at its delivery stop: let it kill the task.
      ptraceCont(t.tid, st.event === 0 && st.stopSignal === sig ? sig : 0);
    }
    this.traced.delete(t.tid);
    this.log.debug(`zombie ${task.pid} with status 0x${status.toString(16)}`);
  }

  // ---- one task --------------------------------------------------------------------------------------

  /**
   * The task's memory (and the helper pidfd it is restored through): done before the task forks its
   * children (createTree), or first thing in restoreTask for those that have none.
   */
  private restoreMemory(task: TaskPlan): void {
    const lt = this.live.get(task.pid);
    if (!lt) throw new RestoreError(`pid ${task.pid} forks children but was not created as a live task`);
    if (lt.pidfd >= 0) return;
    const inj = lt.main;
    const s = this.scratch!;
    // fds: the stub's go, a pidfd of criu-ts comes above every fd the task will have. A task sharing its
    // parent's fd table (CLONE_FILES) keeps what is in it (filled already, or holding the parent's
    // pidfd when the parent's memory came first): the pidfd comes through its first gap, above the rest.
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
    const r = inj.batch(calls, (i) => (i < at ? 'close' : 'pidfd_open of criu-ts'));
    const landed = first === high ? r[at] : r[at + 1];
    if (r[at] !== BigInt(first) || landed !== BigInt(high))
      throw new RestoreError(`pid ${task.pid}: helper pidfd landed at ${landed}`);
    // The lowest free fd while the task's memory is restored (the pidfd is there, above the rest).
    const free = shared ? lowestFree(new Set([...inTable, high])) : 0;
    lt.pidfd = high;

    const tMem = performance.now();
    const mm = restoreMm(
      inj,
      task.pid,
      task.mm!,
      task.pagemap!,
      {
        files: this.files,
        pidfd: high,
        freeFd: free,
        scratch: s,
        parking: s.base + BigInt(s.size) + PAGE,
        log: (m) => this.log.warn(m),
        shmem: this.plan.shmem,
        ...(task.parent?.mm?.vmas ? { parentVmas: task.parent.mm.vmas } : {}),
      },
      ownVdsoLayout(),
    );
    this.pages += mm.pages;
    this.compared += mm.compared;
    this.sharedCow += mm.sharedCow;
    this.memMs += ms(tMem);
    this.log.debug(
      `pid ${task.pid}: ${mm.pages} pages written, ${mm.sharedCow} of ${mm.compared} compared shared with the parent`,
    );
  }

  private restoreTask(task: TaskPlan): void {
    this.restoreMemory(task);
    const lt = this.live.get(task.pid)!;
    const inj = lt.main;
    const s = this.scratch!;
    const high = lt.pidfd;

    for (const th of task.threads.slice(1)) {
      const t = cloneWithId(inj, task.pid, th.tid, 'thread');
      this.traced.add(th.tid);
      lt.threads.push({ tid: th.tid, t, inj: new Injector(t, s) });
      this.cgroups.placeThread(task.pid, th.tid, th.core.thread_core?.cg_set);
    }
    this.restoreFds(lt, sharesFds(task));
    const hasZombieChild = task.children.some((c) => c.state === 'zombie');
    const pendingChld = [task.tc.signals_s, ...task.threads.map((t) => t.core.thread_core?.signals_p)].some(
      (q) => (q?.signals ?? []).some((x) => Buffer.from(x.siginfo).readInt32LE(0) === 17),
    );
    restoreTaskState(inj, task.pid, task.tc, {
      flushSigchld: hasZombieChild && !pendingChld,
      log: (m) => this.log.warn(m),
    });
    if (task.tc.oom_score_adj !== undefined) {
      try {
        writeFileSync(`/proc/${task.pid}/oom_score_adj`, String(task.tc.oom_score_adj));
      } catch (e) {
        this.log.warn(`pid ${task.pid}: oom_score_adj ${task.tc.oom_score_adj}: ${(e as Error).message}`);
      }
    }
    for (const th of task.threads) this.setSched(th.tid, th.core.thread_core!);
    for (const [i, th] of task.threads.entries()) {
      const live = lt.threads[i]!;
      const tcore = th.core.thread_core!;
      const leader = i === 0;
      restoreThreadState(
        live.inj,
        task.pid,
        th.tid,
        tcore,
        th.core.thread_info!.clear_tid_addr,
        th.core.thread_info!.tls ?? [],
        task.tc.comm,
        {
          ...(leader && task.tc.signals_s ? { sharedSignals: task.tc.signals_s } : {}),
          ...(task.tc.loginuid !== undefined ? { loginuid: task.tc.loginuid } : {}),
          seccomp: this.plan.seccomp,
        },
      );
    }
    // Last (new credentials reset it): dumpable; and the helper pidfd goes.
    const last: Call[] = [[SYS.close, high]];
    const d = dumpableCall(task.mm!);
    if (d) last.unshift(d);
    inj.batch(last, (i) =>
      last[i]![0] === SYS.close ? 'close of the helper pidfd' : 'prctl(PR_SET_DUMPABLE)',
    );
    this.log.debug(`restored pid ${task.pid}: ${task.threads.length} threads`);
  }

  /** The task's fds (unless `shared`: its parent's table, filled already), then its cwd, root and umask. */
  private restoreFds(lt: LiveTask, shared: boolean): void {
    const task = lt.plan;
    // A shared table may also hold what another task sharing it keeps there (its helper pidfd).
    const open = new Set<number>([lt.pidfd, ...(shared ? openFds(task.pid) : [])]);
    const lowest = () => {
      let n = 0;
      while (open.has(n)) n++;
      return n;
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
      const name = this.plan.files.get(f.id)?.reg?.name;
      return name !== undefined && isProcFdFile(name) && isProcFileOf(name, this.treeIds);
    };
    const later = sorted.filter(fdFile);
    const run = () => {
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
      if (f === later[0]) run();
      const tmp = lowest();
      add(`pidfd_getfd for fd ${f.fd}`, [SYS.pidfd_getfd, lt.pidfd, this.files.fd(f.id, 'fd'), 0], tmp);
      open.add(tmp);
      if (tmp !== f.fd) {
        add(`dup3 to fd ${f.fd}`, [SYS.dup3, tmp, f.fd, 0], f.fd);
        add('close', [SYS.close, tmp]);
        open.delete(tmp);
        open.add(f.fd);
      }
      add(`fcntl(F_SETFD) of fd ${f.fd}`, [SYS.fcntl, f.fd, F_SETFD, f.flags & 1]);
      for (const c of asyncFdCalls(this.plan.files.get(f.id), this.plan.files, f.fd))
        add(`fcntl(F_SETFL) of fd ${f.fd} (O_ASYNC)`, c);
    }
    const fsEntry = task.fs!;
    const rootName = this.plan.files.get(fsEntry.root_id)?.reg?.name;
    const deadDirFds: number[] = [];
    const dirFd = (id: number, what: string, then: Call[]) => {
      const tmp = lowest();
      // /proc/PID of a task that had died is opened on the helper that has PID now (see below).
      const dead = this.plan.deadPids.has(procPidOf(this.plan.files.get(id)?.reg?.name ?? '') ?? 0);
      const mine = dead ? this.files.openPath(id, O_RDONLY | O_DIRECTORY) : this.files.fd(id, 'dir');
      if (dead) deadDirFds.push(mine);
      add(`pidfd_getfd of the ${what}`, [SYS.pidfd_getfd, lt.pidfd, mine, 0], tmp);
      add(`fchdir to the ${what}`, [SYS.fchdir, tmp]);
      for (const c of then) add(`chroot`, c);
      add('close', [SYS.close, tmp]);
    };
    // A cwd or root in /proc/PID of a task that had died is opened and entered while a child of the
    // task has PID: the kernel lets no one into the /proc directory of a process that is gone.
    this.whileDeadPidsLive(lt, [fsEntry.root_id, fsEntry.cwd_id], () => {
      if (rootName !== undefined && rootName !== '/') {
        const dot = lt.main.put(Buffer.from('.\0'));
        dirFd(fsEntry.root_id, 'root', [[SYS.chroot, dot]]);
      }
      dirFd(fsEntry.cwd_id, 'cwd', []);
      add('umask', [SYS.umask, fsEntry.umask ?? 0o022]);
      try {
        run();
      } finally {
        for (const fd of deadDirFds) close(fd);
      }
    });
    this.restoreInTaskFdState(lt);
  }

  /**
   * Run `use` while a child of the task has each dead pid (of the tree's dead-pid remaps) whose /proc
   * directory one of the files `ids` is in: the kernel refuses to fchdir into /proc/PID of no process.
   */
  private whileDeadPidsLive<T>(lt: LiveTask, ids: number[], use: () => T): T {
    const pids = new Set<number>();
    for (const id of ids) {
      const pid = procPidOf(this.plan.files.get(id)?.reg?.name ?? '');
      if (pid !== undefined && this.plan.deadPids.has(pid)) pids.add(pid);
    }
    const helpers = new HelperProcesses(lt.main.t, lt.main.s, this.traced);
    const nest = (rest: number[]): T =>
      rest.length ? helpers.withPid(rest[0]!, () => nest(rest.slice(1))) : use();
    return nest([...pids]);
  }

  /** What fd drivers need the task itself to do, once all its fds are in place (epoll_ctl, locks). */
  private restoreInTaskFdState(lt: LiveTask): void {
    const task = lt.plan;
    const ctx = {
      pid: task.pid,
      put: (b: Buffer) => lt.main.put(b),
      firstTime: (key: string) => !this.inTaskDone.has(key) && this.inTaskDone.add(key) !== undefined,
      lend: (id: number) => lendFd(task.fdinfo ?? [], lt.pidfd, this.files.fd(id, 'fd')),
    };
    const calls: Call[] = [];
    const names: string[] = [];
    for (const f of task.fdinfo ?? []) {
      const entry = this.plan.files.get(f.id);
      const driver = entry && !entry.reg ? restoreDriverFor(entry.type) : undefined;
      for (const c of driver?.inTask?.(entry!, f, ctx) ?? []) {
        calls.push(c);
        names.push(`${driver!.kind} fd ${f.fd}: ${syscallName(c[0]) ?? c[0]}`);
      }
    }
    for (const entry of this.plan.files.values()) {
      const driver = entry.reg ? undefined : restoreDriverFor(entry.type);
      for (const c of driver?.inAnyTask?.(entry, ctx) ?? []) {
        calls.push(c);
        names.push(`${driver!.kind} ${entry.id}: ${syscallName(c[0]) ?? c[0]}`);
      }
    }
    // File locks: OFD ones taken here on criu-ts's copy, POSIX and flock ones by the task.
    const fileOf = new Map((task.fdinfo ?? []).map((f) => [f.fd, f.id]));
    const nodeFd = (fd: number) => {
      const id = fileOf.get(fd);
      if (id === undefined) throw new RestoreError(`filelocks.img: pid ${task.pid} has no fd ${fd}`);
      return this.files.fd(id, 'fd');
    };
    for (const { call, what } of retakeLocks(task.pid, this.locks.get(task.pid) ?? [], nodeFd, ctx.put)) {
      calls.push(call);
      names.push(what);
    }
    if (calls.length) lt.main.batch(calls, (i) => names[i] ?? `call ${i}`);
    breakLeases(task.pid, this.locks.get(task.pid) ?? [], nodeFd, lt.main);
  }

  /** Scheduling policy, priority and nice value, set from here by tid. */
  private setSched(
    tid: number,
    tc: { sched_policy?: number; sched_prio?: number; sched_nice?: number },
  ): void {
    const policy = tc.sched_policy ?? 0;
    const param = Buffer.alloc(4);
    param.writeInt32LE(tc.sched_prio ?? 0, 0);
    if (policy !== 0 || (tc.sched_prio ?? 0) !== 0) {
      if (raw.syscall(SYS.sched_setscheduler, tid, policy, param) !== 0)
        this.log.warn(`thread ${tid}: sched_setscheduler(${policy}) failed: errno ${raw.lastErrno()}`);
    }
    if ((tc.sched_nice ?? 0) !== 0 && raw.syscall(SYS.setpriority, 0, tid, tc.sched_nice ?? 0) !== 0)
      this.log.warn(`thread ${tid}: setpriority(${tc.sched_nice}) failed: errno ${raw.lastErrno()}`);
  }

  // ---- finish ----------------------------------------------------------------------------------------

  private finish(): void {
    const s = this.scratch!;
    for (const lt of this.live.values()) {
      // The leader unmaps the scratch area; it cannot return into it, so it stops at the syscall's exit.
      const leader = lt.threads[0]!;
      const r = leader.t.syscallToExitStop(s.code + 0x38n, SYS.munmap, [s.base, s.size]);
      if (r !== 0n) throw new RestoreError(`pid ${lt.plan.pid}: munmap of the scratch area: errno ${-r}`);
      for (const [i, th] of lt.plan.threads.entries()) this.loadRegisters(lt.threads[i]!, th.core, lt.plan);
    }
    // Everybody is ready: let them all go.
    for (const lt of this.live.values()) {
      if (lt.plan.state === 'stopped') kill(lt.plan.pid, stopSignalOf(lt.plan));
      for (const th of [...lt.threads].reverse()) {
        ptraceDetach(th.tid, 0);
        this.traced.delete(th.tid);
      }
    }
    this.live.clear();
  }

  private loadRegisters(th: LiveThread, core: TaskPlan['threads'][number]['core'], task: TaskPlan): void {
    const ti = core.thread_info!;
    // Images carry registers that resume as they are (CRIU's, and criu-ts's since it folds the syscall
    // restart in at dump); older criu-ts images still hold -ERESTART*: folded here the same way. Loaded
    // at a syscall-exit stop with orig_rax -1, they skip the kernel's restart logic.
    const regs = resumableRegs(gpregsFromImage(ti.gpregs));
    if (regs.getSigned('orig_rax') >= 0n) regs.set('orig_rax', -1n);
    const rseq = core.thread_core?.rseq_entry;
    if (rseq && rseq.rseq_abi_pointer !== 0n) {
      const abort = rseqAbort(th.tid, rseq.rseq_abi_pointer, regs.rip);
      if (abort !== undefined) regs.set('rip', abort);
    }
    const mask = core.thread_core?.blk_sigset ?? (th.tid === task.pid ? task.tc.blk_sigset : 0n);
    try {
      const template = ptraceGetXstate(th.tid);
      ptraceSetXstate(th.tid, fpregsFromImage(ti.fpregs, template.length, template));
      ptraceSetRegs(th.tid, regs);
      ptraceSetSigmask(th.tid, mask);
    } catch (e) {
      throw new RestoreError(
        `thread ${th.tid}: the kernel refuses the registers of core-${th.tid}.img: ${(e as Error).message}`,
      );
    }
  }

  // ---- cleanup ---------------------------------------------------------------------------------------

  /** SIGKILL every task created and collect every exit; reap what ends up as our child. */
  killAll(): void {
    this.cgroups.close();
    const pids = [...this.created];
    if (this.stub) pids.unshift(this.stub.pid);
    for (const pid of pids) {
      try {
        kill(pid, SIGKILL);
      } catch {
        // gone
      }
    }
    const deadline = performance.now() + 10_000;
    const pending = new Set<number>([...pids, ...this.traced]);
    while (pending.size > 0 && performance.now() < deadline) {
      for (const id of [...pending]) {
        try {
          const st = waitpid(id, __WALL | WNOHANG);
          // Dead and reaped; or dead and another's to reap: a --restore-sibling root is our parent's
          // (a task whose parent we created waits for that parent to die and comes to us).
          if (st && (st.exited || st.signaled) && (!existsProc(id) || parentOf(id) === process.ppid))
            pending.delete(id);
        } catch (e) {
          if (!isSysError(e, 'ECHILD')) throw e;
          if (!existsProc(id)) pending.delete(id);
        }
      }
      if (pending.size) raw.syscall(SYS.sched_yield);
    }
    if (pending.size) this.log.warn(`cleanup: ${[...pending].join(' ')} still there`);
    this.created.length = 0;
    this.traced.clear();
    this.live.clear();
  }
}

/** Whether `task` shares its parent's fd table (CLONE_FILES): created with it, restored by the parent. */
function sharesFds(task: TaskPlan): boolean {
  const fid = task.ids?.files_id;
  return fid !== undefined && task.parent?.ids?.files_id === fid;
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

/** The signal a stopped task is stopped with again: the dumped one when it is a stop signal. */
function stopSignalOf(task: TaskPlan): number {
  const sig = task.tc.stop_signo ?? 0;
  return sig >= 19 && sig <= 22 ? sig : SIGSTOP;
}

const pageUp = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

function parentOf(id: number): number {
  try {
    const stat = readFileSync(`/proc/${id}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

function existsProc(id: number): boolean {
  try {
    readFileSync(`/proc/${id}/stat`);
    return true;
  } catch {
    return false;
  }
}

function openFds(pid: number): number[] {
  const d = ProcDir.open(pid);
  try {
    return d.fds();
  } finally {
    d.close();
  }
}

function pgidOf(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[2]);
}

/** rip inside the thread's rseq critical section: the kernel would abort it; we must, too. */
function rseqAbort(tid: number, rseqAbi: bigint, rip: bigint): bigint | undefined {
  try {
    const p = Buffer.alloc(8);
    vmRead(tid, rseqAbi + 8n, p);
    const cs = p.readBigUInt64LE(0);
    if (cs === 0n) return undefined;
    const d = Buffer.alloc(32);
    vmRead(tid, cs, d);
    const start = d.readBigUInt64LE(8);
    const len = d.readBigUInt64LE(16);
    return rip >= start && rip < start + len ? d.readBigUInt64LE(24) : undefined;
  } catch {
    return undefined;
  }
}
