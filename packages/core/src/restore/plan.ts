// Reading the images and planning the tree, before any process exists: every image a task needs is read
// and checked here, so that a missing or corrupt image, a kind of object restore cannot make yet, or a
// kernel whose vDSO differs from the dumped one is a clear error while nothing has been created.

import { existsSync, lstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ProcDir } from '@criu-ts/bfd';
import {
  type CoreEntry,
  CoreEntryMarch,
  type FdinfoEntry,
  FdTypes,
  type FileEntry,
  type FsEntry,
  ImageDir,
  type MmEntry,
  type PageMap,
  PE_LAZY,
  PE_PRESENT,
  type PstreeEntry,
  type SeccompEntry,
  type SeccompFilter,
  type TaskCoreEntry,
  type TaskKobjIdsEntry,
  type TtyInfoEntry,
  TtyType,
  type VmaEntry,
} from '@criu-ts/images';
import { PAGE_SIZE } from '@criu-ts/sys';
import { TASK_ALIVE, TASK_DEAD, TASK_STOPPED } from '../core-image/thread.js';
import { restoreDriverFor } from '../files/drivers.js';
import { checkSocketMapping } from '../files/packet/restore.js';
import { isProcFileOf } from '../files/regular/proc-path.js';
import { type Remap, readRemaps } from '../files/regular/remap-restore.js';
import { type ImagesLock, methodOfInventoryCode, type NetworkLockMethod } from '../net-lock/index.js';
import { ShmemRestore } from '../shmem/restore.js';
import { RestoreError } from './errors.js';
import { checkPageChain, checkPagemap, checkShmemPagemaps, checkVmaLayout } from './validate.js';

// task_state as CRIU defines it (core-image/thread.ts); core_entry.mtype, fd types and tty types are the
// images' enums (CoreEntryMarch, FdTypes, TtyType).
export { TASK_ALIVE, TASK_DEAD, TASK_STOPPED } from '../core-image/thread.js';
/** What older criu-ts images have for a zombie (CRIU writes TASK_DEAD): both read as one. */
export const TASK_ZOMBIE = 6;

// VMA status bits are the dump side's (one definition for both directions).
export { VMA } from '../mm/vmas.js';

import { aioRingsOf } from '../aio/restore.js';
import { isGuard, VMA } from '../mm/vmas.js';

const PAGE = BigInt(PAGE_SIZE);

export interface ThreadPlan {
  tid: number;
  core: CoreEntry;
}

export interface TaskPlan {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  state: 'alive' | 'stopped' | 'zombie';
  /** A zombie's wait status (exit code << 8, or the signal that killed it). */
  exitStatus: number;
  /** Every thread, the leader first (just the leader for a zombie). */
  threads: ThreadPlan[];
  tc: TaskCoreEntry;
  parent: TaskPlan | undefined;
  children: TaskPlan[];
  // Live tasks only:
  mm?: MmEntry;
  ids?: TaskKobjIdsEntry;
  fs?: FsEntry;
  fdinfo?: FdinfoEntry[];
  pagemap?: PageMap;
}

export interface RestorePlan {
  dir: ImageDir;
  root: TaskPlan;
  /** Parents before children (breadth first from the root). */
  tasks: TaskPlan[];
  files: Map<number, FileEntry>;
  /** files.img id -> how a file whose name was gone at the dump is reached (ghost file, link remap). */
  remaps: Map<number, Remap>;
  /**
   * Pids outside the tree that had died when a task's /proc/PID file was dumped (remap type PROCFS):
   * a helper task takes each pid for as long as its files are opened, then dies again.
   */
  deadPids: Set<number>;
  seccomp: SeccompFilter[];
  /** TTY file ids that get criu-ts's own terminal (--shell-job: the terminal of the shell). */
  inheritTty: Set<number>;
  /** How the dumped connections were locked, so the same method unlocks them. */
  /** How the dump locked the network (inventory.img), for restore to lift it. */
  networkLock: ImagesLock;
  /** --tcp-close: connections come back closed. */
  tcpClose?: boolean;
  /** Every pid and tid the restore will take. */
  ids: number[];
  /**
   * Process groups whose leader is not in the images (it had died, zombie01): a helper with the
   * leader's pid makes each again in its members' session, then dies, as CRIU's TASK_HELPER does.
   */
  pgidHelpers: number[];
  /** Bytes of page data the tasks will get back. */
  pagesBytes: bigint;
  /** Shared memory objects (memfd, anonymous shared, SysV) the tasks map or hold. */
  shmem: ShmemRestore;
}

/** What this kernel's vDSO looks like in our own address space. */
export interface VdsoLayout {
  /** [vvar] + [vvar_vclock] (one area in the images), or undefined when the kernel has none. */
  vvar?: { start: bigint; size: bigint; parts: Array<{ start: bigint; size: bigint; name: string }> };
  vdso?: { start: bigint; size: bigint };
}

export function ownVdsoLayout(maps = ProcDir.self().readText('maps')): VdsoLayout {
  const out: VdsoLayout = {};
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s+(\[v\w+\])$/.exec(line);
    if (!m) continue;
    const start = BigInt(`0x${m[1]}`);
    const size = BigInt(`0x${m[2]}`) - start;
    const name = m[3] as string;
    if (name === '[vdso]') out.vdso = { start, size };
    else if (name === '[vvar]' || name === '[vvar_vclock]') {
      if (!out.vvar) out.vvar = { start, size: 0n, parts: [] };
      out.vvar.parts.push({ start, size, name });
      out.vvar.size = start + size - out.vvar.start;
    }
  }
  return out;
}

const where = (dir: ImageDir, pattern: string, id?: number) => dir.fileName(pattern, id);

function need(dir: ImageDir, pattern: string, id?: number): void {
  if (!dir.has(pattern, id)) throw new RestoreError(`missing image ${where(dir, pattern, id)}`);
}

/**
 * Read and check everything a restore of DIR needs. Throws RestoreError / ImageError. The network
 * lock method is `opts.networkLock` if given, else the one inventory.img names (as CRIU reads it),
 * else nftables (criu-ts's images from before the field).
 */
export function planRestore(
  imagesDir: string | ImageDir,
  opts: { shellJob?: boolean; networkLock?: NetworkLockMethod; tcpClose?: boolean } = {},
): RestorePlan {
  const dir = typeof imagesDir === 'string' ? ImageDir.open(imagesDir) : imagesDir;
  need(dir, 'inventory');
  const inv = dir.inventory();
  if (inv.img_version !== 2)
    throw new RestoreError(`unsupported image version ${inv.img_version} in inventory.img`);
  // Dumped with --tcp-close, connections were recorded without their state: they can only come back closed.
  if (inv.tcp_close && !opts.tcpClose) throw new RestoreError('Need to set the --tcp-close options.');
  need(dir, 'pstree');
  const entries: PstreeEntry[] = dir.pstree();
  if (entries.length === 0) throw new RestoreError('pstree.img lists no task');

  const byPid = new Map<number, TaskPlan>();
  const ids = new Set<number>();
  const take = (id: number, what: string) => {
    if (!Number.isInteger(id) || id <= 0) throw new RestoreError(`pstree.img: bad ${what} ${id}`);
    if (ids.has(id)) throw new RestoreError(`pstree.img: ${what} ${id} appears twice`);
    ids.add(id);
  };
  for (const e of entries) {
    take(e.pid, 'pid');
    const task = taskOf(dir, e, e.threads?.length ? e.threads : [e.pid]);
    for (const th of task.threads) if (th.tid !== e.pid) take(th.tid, 'tid');
    byPid.set(e.pid, task);
  }
  const root = byPid.get(entries[0]!.pid)!;
  for (const t of byPid.values()) {
    if (t === root) continue;
    const parent = byPid.get(t.ppid);
    if (!parent) throw new RestoreError(`pstree.img: the parent ${t.ppid} of ${t.pid} is not in the tree`);
    if (parent.state === 'zombie') throw new RestoreError(`pstree.img: zombie ${parent.pid} has children`);
    t.parent = parent;
    parent.children.push(t);
  }
  const tasks: TaskPlan[] = [];
  const queue = [root];
  while (queue.length) {
    const t = queue.shift()!;
    tasks.push(t);
    queue.push(...t.children);
  }
  if (tasks.length !== byPid.size) throw new RestoreError('pstree.img: the tasks do not form one tree');
  const pgidHelpers = checkSessions(tasks, byPid, opts.shellJob === true);

  const files = new Map<number, FileEntry>();
  for (const f of dir.files()) files.set(f.id, f);
  const { remaps, deadPids } = readRemaps(dir, files, ids);
  const seccomp = dir.has('seccomp') ? (dir.one<SeccompEntry>('seccomp').seccomp_filters ?? []) : [];
  const inheritTty = ttysToInherit(dir, files, opts.shellJob === true);
  const vdso = ownVdsoLayout();
  const treeIds = new Set(tasks.flatMap((t) => [t.pid, ...t.threads.map((th) => th.tid)]));
  // /proc/PID files of these pids are not there yet: they are opened once PID exists again.
  const procPidsLater = new Set([...treeIds, ...deadPids]);
  const shmem = ShmemRestore.for(dir);
  checkShmemPagemaps(dir);
  let pagesBytes = 0n;
  const filesIds = new Map<number, number>();
  const vmIds = new Map<number, number>();
  for (const t of tasks) {
    if (t.state === 'zombie') continue;
    loadLiveTask(procPidsLater, dir, t, files, remaps, vdso, inheritTty, shmem);
    const fid = t.ids!.files_id;
    const other = filesIds.get(fid);
    // One fd table shared with the parent comes back by clone(CLONE_FILES); with another task, it cannot.
    if (other !== undefined && t.parent?.ids?.files_id !== fid)
      throw new RestoreError(
        `tasks ${other} and ${t.pid} share one fd table (CLONE_FILES), and ${t.pid}'s parent does not: cannot restore`,
      );
    filesIds.set(fid, t.pid);
    const vm = vmIds.get(t.ids!.vm_id);
    if (vm !== undefined)
      throw new RestoreError(
        `tasks ${vm} and ${t.pid} share one address space (vfork, CLONE_VM): not supported yet`,
      );
    vmIds.set(t.ids!.vm_id, t.pid);
    for (const th of t.threads) {
      const f = th.core.thread_core?.seccomp_filter;
      if (f !== undefined && f >= seccomp.length)
        throw new RestoreError(`core-${th.tid}.img: seccomp filter ${f} is not in seccomp.img`);
    }
    for (const r of t.pagemap!.runs) if (r.flags & PE_PRESENT) pagesBytes += r.pages * PAGE;
  }
  shmem.checkPlan();
  const networkLock: ImagesLock = {
    method: opts.networkLock ?? methodOfInventoryCode(inv.network_lock_method) ?? 'nftables',
    ...(inv.dump_criu_run_id !== undefined ? { runId: inv.dump_criu_run_id } : {}),
    rootPid: root.pid,
  };
  return {
    dir,
    root,
    tasks,
    files,
    remaps,
    deadPids,
    seccomp,
    inheritTty,
    networkLock,
    tcpClose: opts.tcpClose === true,
    ids: [...ids],
    pgidHelpers,
    pagesBytes,
    shmem,
  };
}

function taskOf(dir: ImageDir, e: PstreeEntry, tids: number[]): TaskPlan {
  need(dir, 'core-%u', e.pid);
  const core = dir.core(e.pid);
  if (core.mtype !== CoreEntryMarch.X86_64) throw new RestoreError(`core-${e.pid}.img: not an x86_64 task`);
  const tc = core.tc;
  if (!tc) throw new RestoreError(`core-${e.pid}.img: no task core (tc)`);
  const zombie = tc.task_state === TASK_DEAD || tc.task_state === TASK_ZOMBIE;
  if (!zombie && tc.task_state !== TASK_ALIVE && tc.task_state !== TASK_STOPPED)
    throw new RestoreError(`core-${e.pid}.img: task state ${tc.task_state} cannot be restored`);
  // A zombie has no threads: CRIU 4.2 leaves whatever its threads field held (a stray number), and
  // restores none of them: the list is checked for live tasks only.
  if (!zombie && tids[0] !== e.pid && !tids.includes(e.pid))
    throw new RestoreError(`pstree.img: task ${e.pid} does not list itself among its threads`);
  const leaderFirst = [e.pid, ...tids.filter((t) => t !== e.pid)];
  const threads: ThreadPlan[] = [];
  for (const tid of zombie ? [e.pid] : leaderFirst) {
    let c = core;
    if (tid !== e.pid) {
      need(dir, 'core-%u', tid);
      c = dir.core(tid);
    }
    if (!zombie && (!c.thread_info || !c.thread_core))
      throw new RestoreError(`core-${tid}.img: no registers (thread_info) or thread_core`);
    threads.push({ tid, core: c });
  }
  return {
    pid: e.pid,
    ppid: e.ppid,
    pgid: e.pgid,
    sid: e.sid,
    state: zombie ? 'zombie' : tc.task_state === TASK_STOPPED ? 'stopped' : 'alive',
    exitStatus: tc.exit_code,
    threads,
    tc,
    parent: undefined,
    children: [],
  };
}

/** Checks sessions and groups; returns the groups whose leader a helper stands for (see pgidHelpers). */
function checkSessions(tasks: TaskPlan[], byPid: Map<number, TaskPlan>, shellJob: boolean): number[] {
  const helpers = new Set<number>();
  const root = tasks[0]!;
  for (const t of tasks) {
    // sid/pgid 0: the dumped task's leader was outside its pid namespace, so also not in the images.
    if (!byPid.has(t.sid) && !shellJob)
      throw new RestoreError(
        `the session leader ${t.sid} of ${t.pid} is not in the images: restore with --shell-job`,
      );
    // --shell-job: the root's group led from outside is the caller's group. Any other group whose
    // leader is missing had lost it (an exited leader): a helper stands for it, as in CRIU.
    const callersGroup = shellJob && t.pgid === root.pgid;
    if (!byPid.has(t.pgid) && !callersGroup) {
      if (t.pgid <= 0)
        throw new RestoreError(
          `the process group leader ${t.pgid} of ${t.pid} is not in the images: restore with --shell-job`,
        );
      helpers.add(t.pgid);
    }
    const leader = byPid.get(t.pgid);
    if (leader && leader.sid !== t.sid)
      throw new RestoreError(`pstree.img: ${t.pid} is in group ${t.pgid} of another session`);
    // A session is entered by fork from a task already in it, or by setsid().
    if (t.parent && t.sid !== t.pid && t.sid !== t.parent.sid)
      throw new RestoreError(
        `pstree.img: ${t.pid} is in session ${t.sid} but its parent ${t.parent.pid} is not: not supported yet`,
      );
  }
  return [...helpers];
}

function loadLiveTask(
  /** pids whose /proc files cannot be checked now (see isProcFileOf) */
  ids: ReadonlySet<number>,
  dir: ImageDir,
  t: TaskPlan,
  files: Map<number, FileEntry>,
  remaps: Map<number, Remap>,
  vdso: VdsoLayout,
  inheritTty: Set<number>,
  shmem: ShmemRestore,
): void {
  for (const p of ['mm-%u', 'ids-%u', 'fs-%u', 'pagemap-%lu'] as const) need(dir, p, t.pid);
  t.mm = dir.mm(t.pid);
  t.ids = dir.ids(t.pid);
  t.fs = dir.fs(t.pid);
  need(dir, 'fdinfo-%u', t.ids.files_id);
  t.fdinfo = dir.fdinfo(t.ids.files_id);
  const fileOf = (id: number, what: string): FileEntry => {
    const f = files.get(id);
    if (!f) throw new RestoreError(`${what} of ${t.pid}: file id ${id} is not in files.img`);
    if (f.type === FdTypes.TTY && inheritTty.has(f.id)) return f;
    // Any other terminal fd is the console driver's to accept or refuse (files/tty/restore.ts).
    const isFd = what.startsWith('fd ');
    if (f.type === FdTypes.TTY && !isFd)
      throw new RestoreError(
        `${what} of ${t.pid} is a terminal: only a shell's terminal (--shell-job) can be restored yet`,
      );
    if (isFd && f.type !== FdTypes.REG) {
      const driver = restoreDriverFor(f.type);
      if (driver) {
        driver.check?.(f, { dir, files });
        return f;
      }
    }
    if (f.type !== FdTypes.REG || !f.reg)
      throw new RestoreError(`${what} of ${t.pid}: ${fileKind(f)} files cannot be restored yet`);
    return f;
  };
  const seen = new Set<number>();
  for (const fd of t.fdinfo) {
    if (seen.has(fd.fd)) throw new RestoreError(`fdinfo-${t.ids.files_id}.img: fd ${fd.fd} twice`);
    seen.add(fd.fd);
    const f = fileOf(fd.id, `fd ${fd.fd}`);
    if (f.reg) checkFile(f, remaps, true, ids);
  }
  checkFile(fileOf(t.fs.cwd_id, 'cwd'), remaps, false, ids);
  checkFile(fileOf(t.fs.root_id, 'root'), remaps, false, ids);
  checkFile(fileOf(t.mm.exe_file_id, 'exe'), remaps, false, ids);
  const vmas = t.mm.vmas ?? [];
  for (const v of vmas) {
    checkVma(t.pid, v);
    // memfd mappings are file mappings too: shared memory first.
    if (v.status & (VMA.AREA_MEMFD | VMA.ANON_SHARED)) shmem.addVma(t.pid, v, files, t.ids.ipc_ns_id ?? 0);
    else if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED))
      checkFile(fileOf(Number(v.shmid), `mapping ${hex(v.start)}`), remaps, false, ids);
    else if (v.status & VMA.AREA_SOCKET) checkSocketMapping(v, files, `mm-${t.pid}.img: VMA ${hex(v.start)}`);
  }
  checkVdso(t.pid, vmas, vdso);
  aioRingsOf(t.pid, t.mm);
  const pm = dir.pageMap(t.pid);
  t.pagemap = pm;
  for (const r of pm.runs) {
    // CRIU 4.2 marks every private anonymous run PE_LAZY|PE_PRESENT, also without lazy pages: the data
    // is in pages-N.img, the mark only says a lazy restore could fetch it later. PE_LAZY alone means the
    // data is on a page server.
    if (r.flags & PE_LAZY && !(r.flags & PE_PRESENT))
      throw new RestoreError(`pagemap-${t.pid}.img: lazy pages need a page server`);
  }
  // Aligned, ordered, not overlapping, inside the VMAs (which do not overlap), data in the pages file,
  // and PE_PARENT pages in the chain of parent images (incremental dumps).
  checkPagemap(join(dir.path, pm.pagemapName), pm.runs, pm.pagesFile, checkVmaLayout(t.pid, vmas));
  checkPageChain(pm);
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/**
 * With --shell-job, a pty slave whose master is not in the images is the terminal of the shell the job
 * ran in: the restored tasks get criu-ts's own terminal (its stdin) instead, as CRIU does.
 */
function ttysToInherit(dir: ImageDir, files: Map<number, FileEntry>, shellJob: boolean): Set<number> {
  const out = new Set<number>();
  const ttys = [...files.values()].filter((f) => f.type === FdTypes.TTY && f.tty);
  if (!shellJob || ttys.length === 0) return out;
  need(dir, 'tty-info');
  const infos = new Map(dir.messages<TtyInfoEntry>('tty-info').map((i) => [i.id, i]));
  for (const f of ttys) {
    const info = infos.get(f.tty!.tty_info_id);
    if (!info) throw new RestoreError(`tty-info.img has no terminal ${f.tty!.tty_info_id} (file ${f.id})`);
    const master = (info.id & 1) === 1;
    if (info.type === TtyType.PTY && !master) out.add(f.id);
  }
  return out;
}

function fileKind(f: FileEntry): string {
  for (const k of Object.keys(f)) if (k !== 'type' && k !== 'id') return k;
  return `type ${f.type}`;
}

const SUPPORTED_STATUS =
  VMA.AREA_REGULAR |
  VMA.AREA_STACK |
  VMA.AREA_VSYSCALL |
  VMA.AREA_VDSO |
  VMA.AREA_HEAP |
  VMA.FILE_PRIVATE |
  VMA.FILE_SHARED |
  VMA.ANON_PRIVATE |
  VMA.ANON_SHARED |
  VMA.AREA_SYSVIPC |
  VMA.AREA_MEMFD |
  VMA.AREA_VVAR |
  VMA.AREA_AIORING |
  VMA.AREA_SOCKET;

function checkVma(pid: number, v: VmaEntry): void {
  const what = `mm-${pid}.img: VMA ${hex(v.start)}-${hex(v.end)}`;
  if (v.start >= v.end || v.start % PAGE !== 0n || v.end % PAGE !== 0n)
    throw new RestoreError(`${what}: bad bounds`);
  if (isGuard(v)) return; // guard pages inside a VMA (mm.ts installs them)
  if (v.status & ~SUPPORTED_STATUS || v.status & VMA.UNSUPP) {
    const kinds = ['ANON_SHARED', 'AREA_SYSVIPC', 'AREA_SOCKET', 'AREA_AIORING', 'AREA_MEMFD', 'UNSUPP']
      .filter((k) => v.status & VMA[k as keyof typeof VMA])
      .join(', ');
    throw new RestoreError(
      `${what}: ${kinds || `status 0x${v.status.toString(16)}`} mappings cannot be restored yet`,
    );
  }
  if (v.status & (VMA.AREA_VSYSCALL | VMA.AREA_AIORING)) return; // rings: aio/restore.ts checks them
  if (!(v.status & VMA.AREA_REGULAR)) throw new RestoreError(`${what}: not a regular area`);
}

function checkVdso(pid: number, vmas: VmaEntry[], cur: VdsoLayout): void {
  const vvar = vmas.find((v) => v.status & VMA.AREA_VVAR);
  const vdso = vmas.find((v) => v.status & VMA.AREA_VDSO);
  if (!vvar && !vdso) return;
  const differ = (why: string) =>
    new RestoreError(
      `the vDSO of ${pid} differs from this kernel's (${why}): restore it on the kernel it was dumped on`,
    );
  if (vdso && !cur.vdso) throw differ('no vDSO here');
  if (vdso && cur.vdso && vdso.end - vdso.start !== cur.vdso.size)
    throw differ(`[vdso] ${vdso.end - vdso.start} bytes, here ${cur.vdso.size}`);
  if (vvar && !cur.vvar) throw differ('no [vvar] here');
  if (!vvar && cur.vvar) throw differ('no [vvar] in the images');
  if (vvar && cur.vvar && vvar.end - vvar.start !== cur.vvar.size)
    throw differ(`[vvar] ${vvar.end - vvar.start} bytes, here ${cur.vvar.size}`);
  if (vvar && vdso && cur.vvar && cur.vdso && vdso.start - vvar.start !== cur.vdso.start - cur.vvar.start)
    throw differ('[vvar] and [vdso] are placed differently');
}

function checkFile(f: FileEntry, remaps: Map<number, Remap>, isFd: boolean, ids: ReadonlySet<number>): void {
  const reg = f.reg!;
  if (remaps.has(f.id) || isProcFileOf(reg.name, ids)) return;
  let st: ReturnType<typeof statSync>;
  try {
    // An fd of a symlink itself (O_PATH | O_NOFOLLOW) is checked as the link, not as its target.
    const link = reg.mode !== undefined && (reg.mode & 0o170000) === 0o120000;
    st = (link ? lstatSync : statSync)(reg.name, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new RestoreError(`file ${reg.name} (id ${f.id}) is missing: ${code}`);
  }
  if (reg.mode !== undefined && Number(st.mode) !== reg.mode)
    throw new RestoreError(
      `file ${reg.name} has mode 0${Number(st.mode).toString(8)}, the images have 0${reg.mode.toString(8)}`,
    );
  // A file the task only writes (a log, redirected output) may have grown since: the task goes on
  // writing at its own position, as it would have; restoring the same images twice would otherwise be
  // impossible for most programs. CRIU accepts it only for O_WRONLY|O_APPEND, for which its dump (and
  // criu-ts's) writes no size. Files it reads or maps must be unchanged.
  const writeOnly = (reg.flags & 3) === 1;
  const regular = (st.mode & 0o170000n) === 0o100000n;
  if (regular && reg.size !== undefined && !(isFd && writeOnly) && st.size !== reg.size)
    throw new RestoreError(
      `file ${reg.name} has size ${st.size}, the images have ${reg.size}: it changed since the dump`,
    );
}

/** Whether a path exists (pid checks). */
export const exists = (p: string) => existsSync(p);
