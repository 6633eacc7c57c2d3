// Write tracking with userfaultfd in async write-protect mode, for kernels without soft-dirty (this
// one): a userfaultfd made inside the task (its context belongs to the task's mm), copied out with
// pidfd_getfd and closed in the task again, so the task holds nothing; UFFDIO_REGISTER(MODE_WP) of its
// private memory from criu-ts; PAGEMAP_SCAN with PM_SCAN_WP_MATCHING reports the pages written since the
// previous such scan (PAGE_IS_WRITTEN) and write-protects them again in the same call. The registration
// lives as long as one copy of the userfaultfd is open (criu-ts's, then the keeper's); when the last one
// closes the kernel unregisters and unprotects everything: nothing is left in the task.
import {
  hasVmFlag,
  PAGE_IS_WRITTEN,
  type Pagemap,
  PM_SCAN_CHECK_WPASYNC,
  PM_SCAN_WP_MATCHING,
} from '@criu-ts/bfd';
import type { Parasite } from '@criu-ts/compel';
import {
  close,
  isSysError,
  O_CLOEXEC,
  O_NONBLOCK,
  pidfdGetfd,
  SYS,
  UFFD_FEATURE_WP_ASYNC,
  UFFD_FEATURE_WP_UNPOPULATED,
  UFFD_USER_MODE_ONLY,
  UFFDIO_REGISTER_MODE_WP,
  uffdApi,
  uffdRegister,
} from '@criu-ts/sys';
import type { Range } from './intervals.js';

const FEATURES = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
const EINVAL = 22n;

/** A VMA tracking may cover: its range and its smaps VmFlags. */
export interface TrackVma {
  start: bigint;
  end: bigint;
  vmFlags: number;
}

/**
 * A userfaultfd made in the task (seized, a parasite in it), now criu-ts's (close-on-exec), with the
 * async write-protect features on. The task's own copy is closed again. Throws when the task cannot
 * make one (seccomp, a kernel without WP_ASYNC).
 */
export function makeUffdIn(parasite: Parasite, pid: number, pidfd: number): number {
  let r = parasite.syscall(SYS.userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  // Kernels before 5.11 know no UFFD_USER_MODE_ONLY.
  if (r === -EINVAL) r = parasite.syscall(SYS.userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (r < 0n) throw new Error(`pid ${pid}: userfaultfd() in the task failed with errno ${-r}`);
  const remote = Number(r);
  let fd: number;
  try {
    fd = pidfdGetfd(pidfd, remote);
  } finally {
    parasite.syscall(SYS.close, remote);
  }
  try {
    const api = uffdApi(fd, FEATURES);
    if ((api.features & FEATURES) !== FEATURES) throw new Error('this kernel has no UFFD_FEATURE_WP_ASYNC');
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}

export interface ScanOutcome {
  /** VMAs whose writes are known: their written ranges are in `written`. */
  tracked: Range[];
  written: Range[];
}

/**
 * The written pages of the VMAs `uffd` tracks ('uw' in VmFlags and registered with this very
 * userfaultfd: registering again succeeds only for the same context), write-protected again. A VMA
 * another userfaultfd tracks (the task's own), or one the kernel will not scan, is not tracked.
 */
export function scanWritten(pagemap: Pagemap, vmas: TrackVma[], uffd: number, reset = true): ScanOutcome {
  const out: ScanOutcome = { tracked: [], written: [] };
  for (const v of vmas) {
    if (!hasVmFlag(v.vmFlags, 'uw')) continue;
    try {
      uffdRegister(uffd, v.start, v.end - v.start, UFFDIO_REGISTER_MODE_WP);
    } catch (e) {
      if (isSysError(e)) continue; // EBUSY: not ours; ESRCH: our context's mm is gone (exec)
      throw e;
    }
    let regions: { start: bigint; end: bigint }[];
    try {
      regions = pagemap.scan(v.start, v.end, {
        flags: (reset ? PM_SCAN_WP_MATCHING : 0) | PM_SCAN_CHECK_WPASYNC,
        categoryMask: PAGE_IS_WRITTEN,
        returnMask: PAGE_IS_WRITTEN,
      }).regions;
    } catch (e) {
      if (isSysError(e)) continue; // EPERM: not async write-protect
      throw e;
    }
    out.tracked.push({ start: v.start, end: v.end });
    for (const r of regions) out.written.push({ start: r.start, end: r.end });
  }
  return out;
}

/**
 * Registers `vmas` (not tracked yet) with `uffd` and write-protects all their pages (the first scan
 * after registering reports every page written; unpopulated ones get markers). Returns the ranges now
 * tracked and, for the log, why others are not.
 */
export function register(
  pagemap: Pagemap,
  vmas: TrackVma[],
  uffd: number,
): { armed: Range[]; refused: Array<{ vma: TrackVma; why: string }> } {
  const armed: Range[] = [];
  const refused: Array<{ vma: TrackVma; why: string }> = [];
  for (const v of vmas) {
    try {
      uffdRegister(uffd, v.start, v.end - v.start, UFFDIO_REGISTER_MODE_WP);
      pagemap.scan(v.start, v.end, {
        flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        categoryMask: PAGE_IS_WRITTEN,
        returnMask: PAGE_IS_WRITTEN,
        maxPages: 0,
      });
      armed.push({ start: v.start, end: v.end });
    } catch (e) {
      if (!isSysError(e)) throw e;
      refused.push({ vma: v, why: e.code });
    }
  }
  return { armed, refused };
}
