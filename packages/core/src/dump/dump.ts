import { resolve } from 'node:path';
import { type ProcStatus, procExists, readStatus, readUptime } from '@criu-ts/bfd';
import { type SeizedTree, seizeTree } from '@criu-ts/compel';
import {
  type DumpStatsEntry,
  ImageDir,
  type InventoryEntry,
  type PstreeEntry,
  type TaskKobjIdsEntry,
  warmUpCodecs,
} from '@criu-ts/images';
import { type ConnectOptions, PageServerClient } from '@criu-ts/page-server';
import { ERRNO } from '@criu-ts/sys';
import { type CgroupDumpOptions, CgroupSets } from '../cgroup/dump.js';
import { dumpCpuinfo } from '../cpuinfo/dump.js';
import type { IrmapOptions } from '../files/irmap.js';
import { FileTable } from '../files/table.js';
import { KobjIds } from '../ids/dump.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { dedupAfterDump } from '../mm/dedup.js';
import { abandonTracking, MemTracker } from '../mm/track/index.js';
import type { StartKeeperOptions } from '../mm/track/keeper.js';
import { refuseNamespaces } from '../namespaces/dump.js';
import { inventoryCodeOf, type NetworkLockMethod, newRunId } from '../net-lock/index.js';
import { callNotify, type Notify } from '../notify/index.js';
import { type Progress, ProgressTracker } from '../progress/progress.js';
import { fpregsToImage } from '../registers/x86.js';
import { SeccompFilters } from '../seccomp/dump.js';
import { ShmemDump } from '../shmem/dump.js';
import { dumpZombie } from '../zombie/dump.js';
import { DumpError } from './errors.js';
import { makeParentLink } from './parent-link.js';
import { refuseUnmakeableSessions } from './sessions.js';
import { DumpStats } from './stats.js';
import { type DumpContext, dumpTask } from './task.js';

export interface DumpOptions {
  /** Root of the tree to dump. */
  pid: number;
  /** --auto-dedup: once the images are written, their pages are punched out of the parent images. */
  autoDedup?: boolean;
  /** Where images go (-D); created 0700 when missing. */
  imagesDir: string;
  /** -W: where stats-dump goes (default: the images dir), as CRIU keeps it. */
  workDir?: string;
  /** --timeout: how long the tree may take to stop, in milliseconds (default 10 s). */
  timeoutMs?: number;
  /** --force-irmap and --irmap-scan-path: find paths of watched inodes by scanning where needed. */
  irmap?: IrmapOptions;
  /** -R: resume the tree after a successful dump (default: kill it, as CRIU does). */
  leaveRunning?: boolean;
  /** -s: leave the tree stopped (SIGSTOP) after the dump. */
  leaveStopped?: boolean;
  /** --shell-job: the tree may belong to a session and process group led from outside. */
  shellJob?: boolean;
  /** --tcp-established: dump established TCP connections (TCP repair) instead of refusing them. */
  tcpEstablished?: boolean;
  /** --tcp-close: connections are recorded as they are, without repair; restore makes them closed. */
  tcpClose?: boolean;
  /** --network-lock: how connections are held while dumped (default nftables; skip: not at all). */
  networkLock?: NetworkLockMethod;
  /** --ext-unix-sk: datagram unix sockets may send to a named socket outside the tree (a syslog). */
  extUnixSk?: boolean;
  /**
   * RPC (a client that dumps itself): the inode of criu-ts's end of the client's connection. The
   * client's socket connected to it is dumped as CRIU dumps it (files/unix/service.ts).
   */
  rpcSocketIno?: number;
  /** --skip-in-flight: connections a listener has not accepted yet are left behind (their clients reset). */
  skipInFlight?: boolean;
  /** --file-locks: dump the file locks the tree holds (without it, a lock is refused, as CRIU does). */
  fileLocks?: boolean;
  /** --ghost-limit: the most disk space an unlinked file kept in the images may take (default 1 MiB). */
  ghostLimit?: bigint;
  /** --ghost-fiemap (default true): find the data of unlinked files with FIEMAP, else SEEK_DATA/SEEK_HOLE. */
  ghostFiemap?: boolean;
  /** --link-remap: a file whose name is gone but that has other names is linked back (link_remap.N). */
  linkRemap?: boolean;
  /** --freeze-cgroup: a cgroup v2 directory whose freezer stops the tree before seizing. */
  freezeCgroup?: string;
  /**
   * --manage-cgroups (ignore: no cgroup directories are dumped), --cgroup-root, --cgroup-yard,
   * --cgroup-props(-file), --cgroup-dump-controller (see cgroup/dump.ts).
   */
  cgroups?: Omit<CgroupDumpOptions, 'log'>;
  /** --cpu-cap: CRIU's CPU_CAP bits; with IMAGE (any --cpu-cap but none), cpuinfo.img is written. */
  cpuCap?: number;
  /** Called between steps; throw from it (or reject) to abort the dump, e.g. on Ctrl-C. */
  checkpoint?: () => void;
  /** Where the dump says what it does (info: the steps); default: nowhere (silentLogger). */
  logger?: Logger;
  /** Told the step, tasks dumped, pages written and connections, as the dump goes (progress/). */
  progress?: Progress;
  /** Called at pre-dump and post-dump (see notify/); a throw fails the dump, the tree left running. */
  notify?: Notify;
  /** --track-mem: pages unchanged since the previous pre-dump go to the parent images (mm/track/). */
  trackMem?: boolean;
  /** --prev-images-dir: the parent images, relative to imagesDir (as CRIU) or absolute; a `parent` link. */
  prevImagesDir?: string;
  /** How a tracking keeper is started (dump --track-mem -R; see mm/track/keeper.ts). */
  keeper?: StartKeeperOptions;
  /**
   * --page-server --address --port: the tasks' memory goes to this page server (criu-ts's or CRIU's),
   * the other images to imagesDir. `layout`: the server's header layout (default CRIU 4.2's).
   */
  pageServer?: ConnectOptions;
}

export interface DumpResult {
  tasks: number;
  threads: number;
  pagesWritten: number;
  /** What stats-dump holds. */
  stats: DumpStatsEntry;
}

const IMG_VERSION = 2;

/**
 * criu dump: seize the tree, write its images, then kill it (or leave it running/stopped).
 * Any failure before the end resumes every task exactly as it was and rethrows.
 * Between tasks it yields to the event loop so a Ctrl-C handler can run; no ptrace request
 * is in flight then.
 */
export async function dump(opts: DumpOptions): Promise<DumpResult> {
  const logger = opts.logger ?? silentLogger;
  const log = (msg: string) => logger.info(msg);
  const dir = ImageDir.create(opts.imagesDir);
  // Something planted under an image's name (a symlink out of the dir, a FIFO) is refused now.
  dir.checkCanWrite();
  (opts.workDir ? ImageDir.create(opts.workDir) : dir).checkCanWrite('stats-%s', 'dump');
  checkRoot(opts.pid);
  dumpCpuinfo(dir, opts.cpuCap, logger); // --cpu-cap: cpuinfo.img, before the tree is seized (as CRIU)
  warmUp();
  callNotify(opts.notify, 'pre-dump', opts.pid, (m, cause) => new DumpError(m, { cause }));
  if (opts.pageServer && opts.trackMem)
    throw new DumpError('--track-mem with --page-server is not supported by criu-ts yet');
  const track = beginTracking(opts, logger);
  // Connected before the tree is seized, as CRIU does: a page server that is not there fails the dump first.
  const pageServer = opts.pageServer ? await connectPageServer(opts.pageServer) : undefined;
  const stats = new DumpStats();
  const progress = new ProgressTracker(opts.progress);
  progress.phase('freezing');
  let tree: SeizedTree;
  try {
    tree = seizeTree(opts.pid, {
      ...(opts.freezeCgroup ? { freezeCgroup: opts.freezeCgroup } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    });
  } catch (e) {
    track?.end();
    pageServer?.destroy();
    throw e;
  }
  stats.frozenAt = process.hrtime.bigint();
  log(`seized ${tree.tasks.length} tasks`);
  const files = new FileTable(new Set(tree.tasks.map((t) => t.pid)), {
    tcpEstablished: opts.tcpEstablished === true,
    tcpClose: opts.tcpClose === true,
    networkLock: opts.networkLock ?? 'nftables',
    runId: newRunId(), // CRIU's criu_run_id: names the network lock (see net-lock/)
    extUnixSk: opts.extUnixSk === true,
    ...(opts.rpcSocketIno ? { rpcSocketIno: opts.rpcSocketIno } : {}),
    skipInFlight: opts.skipInFlight === true,
    ...(opts.irmap ? { irmap: opts.irmap } : {}),
    fileLocks: opts.fileLocks === true,
    log,
    ...(opts.ghostLimit !== undefined ? { ghostLimit: opts.ghostLimit } : {}),
    ghostFiemap: opts.ghostFiemap !== false,
    linkRemap: opts.linkRemap === true,
    leaveStopped: opts.leaveStopped === true,
  });
  const ctx: DumpContext = {
    dir,
    tree,
    files,
    ids: new KobjIds(files.nsIds),
    stats,
    fdTablesDone: new Set(),
    sharedBy: new Map(),
    pagesId: 1,
    seccomp: new SeccompFilters(),
    cgroups: new CgroupSets({ ...opts.cgroups, log }),
    shellJob: opts.shellJob === true,
    ttyInfos: [],
    shmem: new ShmemDump(dir, files, stats, () => ctx.pagesId++),
    progress,
    ...(track ? { track } : {}),
    ...(pageServer ? { pageServer } : {}),
  };
  // inventory.img's root_ids are criu-ts's own ids, numbered first (see KobjIds.ofDumper).
  const dumperIds = ctx.ids.ofDumper();
  let statsEntry: ReturnType<DumpStats['entry']>;
  try {
    const root = tree.tasks.find((t) => t.pid === opts.pid);
    if (root?.state === 'zombie') throw new DumpError(`pid ${opts.pid} exited before it could be dumped`);
    checkSessions(tree, opts.shellJob === true);
    refuseNamespaces(tree);
    refuseUnmakeableSessions(tree);
    progress.phase('dumping tasks');
    progress.total('tasks', tree.tasks.length);
    for (const task of tree.tasks) {
      await yieldToEventLoop();
      opts.checkpoint?.();
      if (task.state === 'zombie') dumpZombie(ctx, task);
      else await dumpTask(ctx, task);
      log(`dumped pid ${task.pid}`);
      progress.add('tasks');
    }
    await yieldToEventLoop();
    opts.checkpoint?.();
    progress.phase('writing images');
    writeTreeImages(ctx, dumperIds);
    // CLOSE, and the server's answer: the memory is on its disk before the tree may go.
    if (pageServer) await closePageServer(pageServer);
    // Images written, tree frozen and its connections locked: CRIU asks here whether to go on.
    callNotify(opts.notify, 'post-dump', opts.pid, (m, cause) => new DumpError(m, { cause }));
    // Inside the try: a stats-dump that cannot be written leaves the tree running, as any failed write.
    statsEntry = stats.entry(process.hrtime.bigint());
    (opts.workDir ? ImageDir.create(opts.workDir) : dir).write('stats-%s', 'dump', [{ dump: statsEntry }]);
    // --auto-dedup: the pages this dump holds are punched out of its parent images (mm/dedup.ts).
    if (opts.autoDedup) dedupAfterDump(opts.imagesDir);
  } catch (err) {
    track?.end();
    pageServer?.destroy(); // without CLOSE: the server keeps none of it
    ctx.files.undo();
    tree.release();
    ctx.files.close();
    throw err;
  }
  // A tree that goes on gets its connections unlocked. A killed one keeps them locked for the restore,
  // and its sockets go back into repair mode once it is dead (killAll waits for that): criu-ts's copies
  // of the fds close last, and a socket in repair mode goes away without a FIN or an RST.
  if (opts.leaveRunning || opts.leaveStopped) ctx.files.undo();
  finish(tree, opts);
  if (track) keepTracking(track, opts, logger);
  ctx.files.keep();
  ctx.files.close();
  return {
    tasks: tree.tasks.length,
    threads: tree.tasks.reduce((n, t) => n + t.threads.length, 0),
    pagesWritten: stats.pagesWritten,
    stats: statsEntry,
  };
}

/**
 * Work that does not need the tasks stopped is done before seizing them, so it does not
 * count as frozen time: compiling the image codecs, the CPU's XSAVE layout.
 */
function warmUp(): void {
  warmUpCodecs([
    'inventory_entry',
    'pstree_entry',
    'core_entry',
    'task_kobj_ids_entry',
    'mm_entry',
    'pagemap_head',
    'fs_entry',
    'file_entry',
    'fdinfo_entry',
    'seccomp_entry',
    'cgroup_entry',
    'remap_file_path_entry',
    'ghost_file_entry',
    'stats_entry',
    'tty_info_entry',
  ]);
  fpregsToImage(Buffer.alloc(4096));
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function finish(tree: SeizedTree, opts: DumpOptions): void {
  if (opts.leaveStopped) {
    for (const t of tree.tasks) if (t.state !== 'zombie') process.kill(t.pid, 'SIGSTOP');
    tree.release();
  } else if (opts.leaveRunning) {
    tree.release();
  } else {
    tree.killAll();
  }
}

/**
 * --track-mem / --prev-images-dir: the `parent` link, and the tracking taken over (armed again for a
 * later dump with -R or -s). A parent without tracking (or no --track-mem) means every page is written.
 */
function beginTracking(opts: DumpOptions, log: Logger): MemTracker | undefined {
  const prevDir = opts.prevImagesDir ? makeParentLink(opts.imagesDir, opts.prevImagesDir, log) : undefined;
  if (!opts.trackMem) {
    if (prevDir) abandonTracking(prevDir, log);
    return undefined;
  }
  return MemTracker.begin({
    ...(prevDir ? { prevDir } : {}),
    arm: opts.leaveRunning === true || opts.leaveStopped === true,
    log,
    ...(opts.keeper ? { keeper: opts.keeper } : {}),
  });
}

/** After the dump: the tracking goes on in a keeper (-R, -s) or ends with the tree. */
function keepTracking(track: MemTracker, opts: DumpOptions, log: Logger): void {
  try {
    if (opts.leaveRunning || opts.leaveStopped) track.keep(resolve(opts.imagesDir), uptimeMicros());
    else track.end();
  } catch (e) {
    // The dump is done and good: only the next one loses its tracking.
    log.warn(`memory tracking not kept: ${(e as Error).message}`);
    track.end();
  }
}

/** The root must be a live process (thread-group leader), not a thread or a zombie. */
export function checkRoot(pid: number): void {
  let status: ProcStatus | undefined;
  try {
    status = readStatus(pid);
  } catch {
    status = undefined;
  }
  if (status === undefined) throw new DumpError(`no process with pid ${pid}`, { errno: ERRNO.ESRCH });
  const tgid = status.tgid;
  if (tgid !== pid)
    throw new DumpError(`pid ${pid} is a thread of process ${tgid}: dump the process (-t ${tgid})`);
  if (status.state === 'Z')
    throw new DumpError(`pid ${pid} is a zombie: there is nothing left of it to dump`);
}

/**
 * Sessions and process groups must be led from inside the tree, or restore could not give
 * them back; a process started from a shell is in the shell's session, which --shell-job
 * accepts (restore then puts it in the restoring shell's session, as CRIU does).
 */
function checkSessions(tree: SeizedTree, shellJob: boolean): void {
  if (shellJob) return;
  const inside = new Set(tree.tasks.map((t) => t.pid));
  // 0: the leader lives outside our pid namespace (the caller was started from beyond it).
  const leader = (id: number) => (id === 0 ? 'outside this pid namespace' : `${id}`);
  for (const t of tree.tasks) {
    if (!inside.has(t.sid)) {
      throw new DumpError(
        `the session leader (${leader(t.sid)}) of pid ${t.pid} is outside the tree: dump with --shell-job, or start it with setsid`,
      );
    }
    // A group whose leader has died (a zombie's, zombie01) comes back through a helper with the
    // leader's pid, as CRIU does; one led by a live process outside the tree cannot.
    if (!inside.has(t.pgid) && (t.pgid === 0 || procExists(t.pgid))) {
      throw new DumpError(
        `the process group leader (${leader(t.pgid)}) of pid ${t.pid} is outside the tree: use --shell-job`,
      );
    }
  }
}

function writeTreeImages(ctx: DumpContext, rootIds: TaskKobjIdsEntry): void {
  const pstree: PstreeEntry[] = ctx.tree.tasks.map((t) => ({
    pid: t.pid,
    ppid: t.pid === ctx.tree.root ? 0 : t.ppid,
    pgid: t.pgid,
    sid: t.sid,
    threads: t.state === 'zombie' ? [t.pid] : t.threads.map((th) => th.tid),
  }));
  ctx.dir.write('pstree', undefined, pstree);
  ctx.files.writeImages(ctx.dir);
  if (ctx.ttyInfos.length) ctx.dir.write('tty-info', undefined, ctx.ttyInfos);
  if (ctx.seccomp.filters.length)
    ctx.dir.write('seccomp', undefined, [{ seccomp_filters: ctx.seccomp.filters }]);
  const cgroup = ctx.cgroups.entry();
  if (cgroup) ctx.dir.write('cgroup', undefined, [cgroup]);
  const inventory: InventoryEntry = {
    img_version: IMG_VERSION,
    fdinfo_per_id: true,
    root_ids: rootIds,
    ns_per_id: true,
    root_cg_set: ctx.cgroups.ownId,
    lsmtype: 0,
    dump_uptime: uptimeMicros(),
    // as CRIU writes it: restore unlocks with the method that locked
    network_lock_method: inventoryCodeOf(ctx.files.options.networkLock ?? 'nftables'),
    ...(ctx.files.options.runId ? { dump_criu_run_id: ctx.files.options.runId } : {}),
    // as CRIU writes it: a restore of these images must be asked for --tcp-close too
    ...(ctx.files.options.tcpClose ? { tcp_close: true } : {}),
  };
  ctx.dir.write('inventory', undefined, [inventory]);
}

export function uptimeMicros(): bigint {
  return BigInt(Math.round(readUptime().up * 1e6));
}

async function connectPageServer(o: ConnectOptions): Promise<PageServerClient> {
  try {
    return await PageServerClient.connect(o);
  } catch (e) {
    throw new DumpError(e instanceof Error ? e.message : String(e));
  }
}

async function closePageServer(c: PageServerClient): Promise<void> {
  try {
    await c.close();
  } catch (e) {
    throw new DumpError(`page server: ${e instanceof Error ? e.message : String(e)}`);
  }
}
