// Dirty-page tracking for incremental dumps (pre-dump, dump --track-mem --prev-images-dir): which pages
// of a task were written since the previous (pre-)dump, so that the others can be PE_PARENT entries
// pointing at the parent images. The flows use one MemTracker per run:
//
//   const t = MemTracker.begin({ prevDir, arm, log });   // before seizing: takes the tracking over
//   t.prepare(parasite, pid, pidfd)                      // frozen, parasite in: a fresh userfaultfd
//   const plan = t.plan(pid, proc, vmas, present)        // frozen: read + re-arm; PE_PARENT or read
//   t.keep(dir, dumpUptime) or t.end()                   // after: a keeper goes on, or tracking ends
//
// uffd-wp (this kernel): see uffd.ts and keeper.ts. soft-dirty (CRIU's way, kernels with
// CONFIG_MEM_SOFT_DIRTY): clear_refs 4 arms, pagemap bit 55 says written, a VMA with 'sd' in VmFlags is
// new (all written); the kernel keeps the bits between runs, CRIU's pid-reuse check (the task started
// before the parent dump's uptime) tells whether they still belong to the task.
import { hasVmFlag, PAGE_IS_SOFT_DIRTY, type Pagemap, type ProcDir, type SmapsEntry } from '@criu-ts/bfd';
import type { Parasite } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { close, PAGE_SIZE, pidfdOpen } from '@criu-ts/sys';
import type { Logger } from '../../log/logger.js';
import { type DumpVma, isPrivateMemory, VMA } from '../vmas.js';
import { intersect, normalize, pagesIn, type Range, subtract } from './intervals.js';
import {
  endKeeperOf,
  type HeldTask,
  pidOfPidfd,
  type StartKeeperOptions,
  startKeeper,
  takeOver,
} from './keeper.js';
import { type DirtyTrackMechanism, dirtyTrackMechanism } from './mechanism.js';
import { heldByChain } from './parent.js';
import { makeUffdIn, register, scanWritten, type TrackVma } from './uffd.js';
import { type PlanRun, warmPlanBuffers } from './write.js';

export { endKeeperOf, KEEPER_COMM, readKeeperState, STATE_FILE } from './keeper.js';
export { type DirtyTrackMechanism, dirtyTrackMechanism, type MechanismAnswer } from './mechanism.js';
export { heldByChain } from './parent.js';
export { type PlanRun, type PlanWritten, writePlan } from './write.js';

const PAGE = BigInt(PAGE_SIZE);

export interface TrackOptions {
  /** The parent images directory (--prev-images-dir, resolved), if any. */
  prevDir?: string;
  /** Arm tracking for a later dump (pre-dump; dump --track-mem -R). */
  arm: boolean;
  log: Logger;
  keeper?: StartKeeperOptions;
}

export interface TaskPlan {
  runs: PlanRun[];
  /** Pages that go to the parent images. */
  parentPages: number;
}

export class MemTracker {
  readonly mechanism: DirtyTrackMechanism;
  /** Tracking taken over from the previous run, by pid. */
  private readonly previous = new Map<number, HeldTask>();
  /** Tracking of this run, by pid (handed to a keeper by keep()). */
  private readonly next = new Map<number, HeldTask>();
  /** Fresh userfaultfds made by prepare(), by pid. */
  private readonly fresh = new Map<number, { uffd: number; pidfd: number; start: string }>();
  /** soft-dirty: the parent dump's uptime (microseconds), when there is a parent inventory. */
  private parentUptime: bigint | undefined;

  private constructor(
    mechanism: DirtyTrackMechanism,
    private readonly opts: TrackOptions,
  ) {
    this.mechanism = mechanism;
  }

  /** Before seizing: the mechanism, and the previous run's tracking taken over (see keeper.ts). */
  static begin(opts: TrackOptions): MemTracker {
    const m = dirtyTrackMechanism();
    if (!m.mechanism)
      throw new Error('Tracking memory is not available. Consider omitting --track-mem option.');
    const t = new MemTracker(m.mechanism, opts);
    warmPlanBuffers();
    if (!opts.prevDir) return t;
    if (m.mechanism === 'uffd-wp') {
      const got = takeOver(opts.prevDir);
      for (const [pid, h] of got.tasks) t.previous.set(pid, h);
      if (got.gone) opts.log.warn(`${got.gone}: every page is dumped (no PE_PARENT)`);
      else opts.log.info(`took over the memory tracking of ${got.tasks.size} tasks from ${opts.prevDir}`);
    } else {
      try {
        t.parentUptime = ImageDir.open(opts.prevDir).one('inventory').dump_uptime;
      } catch {
        opts.log.warn(`no parent inventory in ${opts.prevDir}: every page is dumped (no PE_PARENT)`);
      }
    }
    return t;
  }

  /** Frozen, with a parasite in task `pid`: the userfaultfd that arms it (uffd-wp, when arming). */
  prepare(parasite: Parasite, pid: number, start: string): void {
    if (!this.opts.arm || this.mechanism !== 'uffd-wp') return;
    let pidfd = -1;
    try {
      pidfd = pidfdOpen(pid);
      this.fresh.set(pid, { uffd: makeUffdIn(parasite, pid, pidfd), pidfd, start });
    } catch (e) {
      if (pidfd >= 0) close(pidfd);
      this.opts.log.warn(
        `pid ${pid}: memory not tracked (${(e as Error).message}): it is dumped whole next time`,
      );
    }
  }

  /**
   * Frozen: which of `present` (the pages a dump copies, in address order) go to the parent images and
   * which are read; tracking read and armed again. Pages written since the previous run, pages of VMAs
   * not tracked (new, remapped, after exec, in new tasks) and pages the parent chain does not hold are
   * read.
   */
  plan(
    pid: number,
    start: string,
    proc: ProcDir,
    smaps: SmapsEntry[],
    vmas: DumpVma[],
    present: Array<{ start: bigint; end: bigint; readable: boolean }>,
  ): TaskPlan {
    const pagemap = proc.pagemap();
    const flagsAt = new Map(smaps.map((s) => [s.start, s.vmFlags]));
    const trackable: TrackVma[] = [];
    for (const v of vmas) {
      const e = v.entry;
      if (!isPrivateMemory(e) || e.status & (VMA.AREA_VDSO | VMA.AREA_AIORING | VMA.AREA_VVAR)) continue;
      const f = flagsAt.get(e.start);
      if (f === undefined) continue;
      trackable.push({ start: e.start, end: e.end, vmFlags: f });
    }
    const clean =
      this.mechanism === 'uffd-wp'
        ? this.uffdClean(pid, start, pagemap, trackable)
        : this.softDirtyClean(pid, proc, pagemap, trackable);
    let parentable: Range[] = [];
    if (clean.length && this.opts.prevDir) parentable = intersect(clean, heldByChain(this.opts.prevDir, pid));
    const runs: PlanRun[] = [];
    let parentPages = 0;
    let j = 0;
    for (const r of present) {
      // Cut r by the parentable ranges.
      let cur = r.start;
      while (j < parentable.length && parentable[j]!.end <= cur) j++;
      for (let k = j; k < parentable.length && parentable[k]!.start < r.end; k++) {
        const p = parentable[k]!;
        const s = p.start > cur ? p.start : cur;
        const e = p.end < r.end ? p.end : r.end;
        if (s > cur) runs.push({ start: cur, end: s, parent: false, readable: r.readable });
        if (e > s) {
          runs.push({ start: s, end: e, parent: true, readable: r.readable });
          parentPages += Number((e - s) / PAGE);
        }
        cur = e > cur ? e : cur;
      }
      if (cur < r.end) runs.push({ start: cur, end: r.end, parent: false, readable: r.readable });
    }
    return { runs, parentPages };
  }

  /** uffd-wp: the tracked, unwritten ranges of `pid`; arms the task again when asked. */
  private uffdClean(pid: number, start: string, pagemap: Pagemap, vmas: TrackVma[]): Range[] {
    const prev = this.previous.get(pid);
    let tracked: Range[] = [];
    let written: Range[] = [];
    if (prev && prev.start === start && pidOfPidfd(prev.pidfd) === pid) {
      const out = scanWritten(pagemap, vmas, prev.uffd, this.opts.arm);
      tracked = normalize(out.tracked);
      written = normalize(out.written);
      const lost = vmas.filter((v) => hasVmFlag(v.vmFlags, 'uw')).length - out.tracked.length;
      this.opts.log.debug(
        `pid ${pid}: ${out.tracked.length} VMAs tracked (${lost} not), ${pagesIn(written, PAGE)} pages written since the previous dump`,
      );
    } else if (this.opts.prevDir) {
      this.opts.log.info(
        `pid ${pid}: no memory tracking for it (a new task, or tracking lost): dumped whole`,
      );
    }
    if (this.opts.arm) this.arm(pid, pagemap, vmas, tracked, prev);
    return subtract(tracked, written);
  }

  private arm(
    pid: number,
    pagemap: Pagemap,
    vmas: TrackVma[],
    tracked: Range[],
    prev: HeldTask | undefined,
  ): void {
    const fresh = this.fresh.get(pid);
    this.fresh.delete(pid);
    // The previous userfaultfd goes on when it still tracks something in this mm; else the fresh one.
    let held: HeldTask | undefined;
    if (prev && tracked.length) {
      held = prev;
      this.previous.delete(pid);
      if (fresh) close(fresh.uffd);
      if (fresh && fresh.pidfd !== prev.pidfd) close(fresh.pidfd);
    } else if (fresh) {
      held = { pid, start: fresh.start, pidfd: fresh.pidfd, uffd: fresh.uffd };
    }
    if (!held) return;
    const writable = vmas.filter(
      (v) => hasVmFlag(v.vmFlags, 'wr') && !tracked.some((t) => t.start <= v.start && v.end <= t.end),
    );
    const { armed, refused } = register(pagemap, writable, held.uffd);
    for (const r of refused)
      this.opts.log.info(
        `pid ${pid}: VMA ${r.vma.start.toString(16)}-${r.vma.end.toString(16)} not tracked (${r.why}): dumped whole next time`,
      );
    if (armed.length || tracked.length) this.next.set(pid, held);
    else {
      close(held.uffd);
      close(held.pidfd);
    }
  }

  /** soft-dirty: the tracked, unwritten ranges (the kernel's bits; CRIU's pid-reuse check). */
  private softDirtyClean(pid: number, proc: ProcDir, pagemap: Pagemap, vmas: TrackVma[]): Range[] {
    let clean: Range[] = [];
    const ticksPerSec = 100n; // USER_HZ on x86_64
    if (
      this.parentUptime !== undefined &&
      proc.stat().starttime < (this.parentUptime * ticksPerSec) / 1_000_000n
    ) {
      const tracked = normalize(vmas.filter((v) => !hasVmFlag(v.vmFlags, 'sd')));
      const dirty: Range[] = [];
      for (const v of tracked)
        for (const r of pagemap.scan(v.start, v.end, {
          categoryMask: PAGE_IS_SOFT_DIRTY,
          returnMask: PAGE_IS_SOFT_DIRTY,
        }).regions)
          dirty.push(r);
      clean = subtract(tracked, normalize(dirty));
    }
    if (this.opts.arm) proc.writeText('clear_refs', '4');
    return clean;
  }

  /** After the run: a keeper holds the tracking for the next one, its state in `dir`. */
  keep(dir: string, dumpUptime: bigint): number | undefined {
    this.closeMap(this.previous);
    this.closeFresh();
    if (this.mechanism !== 'uffd-wp' || this.next.size === 0) return undefined;
    try {
      const pid = startKeeper(dir, [...this.next.values()], dumpUptime, this.opts.keeper);
      this.opts.log.info(`memory tracking of ${this.next.size} tasks kept by pid ${pid} (${dir})`);
      return pid;
    } finally {
      this.closeMap(this.next);
    }
  }

  /** Tracking ends (final dump, failure): every fd closes, the kernel unregisters. */
  end(): void {
    this.closeMap(this.previous);
    this.closeMap(this.next);
    this.closeFresh();
  }

  private closeMap(m: Map<number, HeldTask>): void {
    for (const h of m.values()) {
      close(h.uffd);
      close(h.pidfd);
    }
    m.clear();
  }

  private closeFresh(): void {
    for (const f of this.fresh.values()) {
      close(f.uffd);
      close(f.pidfd);
    }
    this.fresh.clear();
  }
}

/** Ends the tracking a parent directory's keeper holds (a dump that does not track). */
export function abandonTracking(dir: string, log: Logger): void {
  if (endKeeperOf(dir)) log.info(`memory tracking kept for ${dir} ended`);
}
