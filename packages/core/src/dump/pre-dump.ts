// criu pre-dump: the tree is frozen only while its memory tracking is read and armed and the list of
// pages to copy is made; it runs again while the pages are read (process_vm_readv, CRIU's "read"
// pre-dump mode) and written. Each task gets pagemap-PID.img and pages-N.img: PE_PARENT runs for
// pages unchanged since the previous pre-dump that the parent images hold, PE_PRESENT runs with data
// for the rest. A page written after the freeze is written again by the next (pre-)dump, so reading
// after the thaw loses nothing; a page unmapped meanwhile is left out. Also inventory.img (dump_uptime,
// pre_dump_mode), stats-dump and the `parent` link, as CRIU's pre-dump writes them. The tracking is kept
// for the next run by a keeper process (mm/track/keeper.ts).
import { resolve } from 'node:path';
import { ProcDir } from '@criu-ts/bfd';
import { Parasite, seizeTree } from '@criu-ts/compel';
import { type DumpStatsEntry, ImageDir } from '@criu-ts/images';
import { type Logger, silentLogger } from '../log/logger.js';
import { dedupAfterDump } from '../mm/dedup.js';
import { pagesToDump } from '../mm/pages.js';
import { MemTracker, type TaskPlan, writePlan } from '../mm/track/index.js';
import type { StartKeeperOptions } from '../mm/track/keeper.js';
import { dumpVmas } from '../mm/vmas.js';
import { callNotify, type Notify } from '../notify/index.js';
import { checkRoot, uptimeMicros } from './dump.js';
import { DumpError } from './errors.js';
import { makeParentLink } from './parent-link.js';
import { DumpStats } from './stats.js';

export interface PreDumpOptions {
  pid: number;
  /** Where images go (-D); created 0700 when missing. */
  imagesDir: string;
  /** -W: where stats-dump goes (default: the images dir). */
  workDir?: string;
  /** --prev-images-dir: the previous pre-dump's directory, relative to imagesDir (as CRIU) or absolute. */
  prevImagesDir?: string;
  /** --pre-dump-mode: 'read' (the default and the only one criu-ts has). */
  preDumpMode?: 'read' | 'splice';
  /** --timeout, in milliseconds. */
  timeoutMs?: number;
  /** --freeze-cgroup. */
  freezeCgroup?: string;
  logger?: Logger;
  /** --auto-dedup: the pages this pre-dump holds are punched out of its parent images (mm/dedup.ts). */
  autoDedup?: boolean;
  /** Called at pre-dump and post-dump, as CRIU's pre-dump runs its scripts; a throw fails it, the tree running. */
  notify?: Notify;
  /** How the tracking keeper is started (see mm/track/keeper.ts). */
  keeper?: StartKeeperOptions;
}

export interface PreDumpResult {
  tasks: number;
  pagesWritten: number;
  pagesSkippedParent: number;
  /** Pages left out: unmapped between the freeze and their read. */
  pagesDropped: number;
  stats: DumpStatsEntry;
  /** The process keeping the tracking for the next run. */
  keeperPid?: number;
}

/** CRIU's enum pre_dump_mode: SPLICE = 1, READ = 2. */
const PRE_DUMP_READ = 2;

/** The refusal of `--pre-dump-mode splice`, by name. */
export const SPLICE_REFUSED =
  '--pre-dump-mode splice is not supported by criu-ts (pages are not pinned with vmsplice): use --pre-dump-mode read, the default';

export async function preDump(opts: PreDumpOptions): Promise<PreDumpResult> {
  const log = opts.logger ?? silentLogger;
  if (opts.preDumpMode === 'splice') throw new DumpError(SPLICE_REFUSED);
  const dir = ImageDir.create(opts.imagesDir);
  dir.checkCanWrite();
  const statsDir = opts.workDir ? ImageDir.create(opts.workDir) : dir;
  statsDir.checkCanWrite('stats-%s', 'dump');
  checkRoot(opts.pid);
  callNotify(opts.notify, 'pre-dump', opts.pid, (m, cause) => new DumpError(m, { cause }));
  const prevDir = opts.prevImagesDir ? makeParentLink(opts.imagesDir, opts.prevImagesDir, log) : undefined;
  const tracker = MemTracker.begin({
    ...(prevDir ? { prevDir } : {}),
    arm: true,
    log,
    ...(opts.keeper ? { keeper: opts.keeper } : {}),
  });
  const stats = new DumpStats();
  const plans: Array<{ pid: number; plan: TaskPlan }> = [];
  let thawAt: bigint;
  let dumpUptime: bigint;
  try {
    const tree = seizeTree(opts.pid, {
      ...(opts.freezeCgroup ? { freezeCgroup: opts.freezeCgroup } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    });
    stats.frozenAt = process.hrtime.bigint();
    dumpUptime = uptimeMicros();
    log.info(`seized ${tree.tasks.length} tasks`);
    try {
      stats.memdumpStart = process.hrtime.bigint();
      for (const task of tree.tasks) {
        if (task.state === 'zombie') continue;
        const proc = ProcDir.open(task.pid);
        try {
          const start = String(proc.stat().starttime);
          const parasite = Parasite.infect(tree, task.pid);
          try {
            tracker.prepare(parasite, task.pid, start);
          } finally {
            parasite.cure();
          }
          const smaps = proc.smaps();
          const vmas = dumpVmas(
            task.pid,
            smaps,
            () => 0,
            { memfd: () => 0n, sysv: () => 0n },
            () => 0,
          );
          const { runs, scanned } = pagesToDump(proc.pagemap(), vmas);
          stats.pagesScanned += scanned;
          plans.push({ pid: task.pid, plan: tracker.plan(task.pid, start, proc, smaps, vmas, runs) });
        } finally {
          proc.close();
        }
      }
      stats.memdumpEnd = process.hrtime.bigint();
    } finally {
      tree.release();
    }
    thawAt = process.hrtime.bigint();
    log.info('the tree runs again; pre-dumping its memory');
  } catch (e) {
    tracker.end();
    throw e;
  }
  let written = 0;
  let parent = 0;
  let dropped = 0;
  let keeperPid: number | undefined;
  let entry: DumpStatsEntry;
  try {
    let pagesId = 1;
    for (const { pid, plan } of plans) {
      const pm = dir.pageMapWriter(pid, pagesId++, { direct: true });
      try {
        const r = await writePlan(pid, plan.runs, pm, { tolerant: true });
        written += r.written;
        parent += r.parent;
        dropped += r.dropped;
        if (r.dropped)
          log.info(`pid ${pid}: ${r.dropped} pages unmapped before they could be read: left out`);
      } finally {
        pm.close();
      }
    }
    stats.memwriteEnd = process.hrtime.bigint();
    dir.write('inventory', undefined, [
      { img_version: 2, dump_uptime: dumpUptime, pre_dump_mode: PRE_DUMP_READ } as never,
    ]);
    stats.pagesWritten = written;
    stats.pagesSkippedParent = parent;
    // As CRIU's stats: the shared memory counters are there too (criu-ts pre-dumps no shared memory:
    // the final dump writes it whole).
    entry = { shpages_scanned: 0n, shpages_skipped_parent: 0n, shpages_written: 0n, ...stats.entry(thawAt) };
    statsDir.write('stats-%s', 'dump', [{ dump: entry }]);
    callNotify(opts.notify, 'post-dump', opts.pid, (m, cause) => new DumpError(m, { cause }));
    if (opts.autoDedup) dedupAfterDump(opts.imagesDir);
    keeperPid = tracker.keep(resolve(opts.imagesDir), dumpUptime);
  } catch (e) {
    tracker.end();
    throw e;
  }
  log.info(`Pre-dumping finished successfully: ${written} pages written, ${parent} in the parent images`);
  return {
    tasks: plans.length,
    pagesWritten: written,
    pagesSkippedParent: parent,
    pagesDropped: dropped,
    stats: entry,
    ...(keeperPid !== undefined ? { keeperPid } : {}),
  };
}
