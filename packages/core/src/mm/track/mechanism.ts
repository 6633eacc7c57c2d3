// Which dirty-page tracking this kernel offers, found out on criu-ts itself: soft-dirty (CRIU's way:
// clear_refs 4, then written pages have bit 55 in pagemap) where the kernel has CONFIG_MEM_SOFT_DIRTY;
// else userfaultfd write-protect in async mode read with PAGEMAP_SCAN (Linux 6.7+).
import {
  PAGE_IS_WRITTEN,
  PM_SCAN_CHECK_WPASYNC,
  PM_SCAN_WP_MATCHING,
  PM_SOFT_DIRTY,
  ProcDir,
} from '@criu-ts/bfd';
import {
  close,
  isSysError,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  mmap,
  munmap,
  O_CLOEXEC,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  processVmWritev,
  raw,
  SYS,
  UFFD_FEATURE_WP_ASYNC,
  UFFD_FEATURE_WP_UNPOPULATED,
  UFFD_USER_MODE_ONLY,
  UFFDIO_REGISTER_MODE_WP,
  uffdApi,
  uffdRegister,
} from '@criu-ts/sys';

export type DirtyTrackMechanism = 'soft-dirty' | 'uffd-wp';

export interface MechanismAnswer {
  mechanism?: DirtyTrackMechanism;
  /** Why the other ones (or all) are not there. */
  why: string;
}

let cached: MechanismAnswer | undefined;

/** The tracking criu-ts uses on this kernel (found once per process). */
export function dirtyTrackMechanism(): MechanismAnswer {
  cached ??= probe();
  return cached;
}

function probe(): MechanismAnswer {
  const sd = softDirtyWorks();
  if (sd === true) return { mechanism: 'soft-dirty', why: '' };
  const uw = uffdWpWorks();
  if (uw === true) return { mechanism: 'uffd-wp', why: `soft-dirty: ${sd}` };
  return { why: `soft-dirty: ${sd}; userfaultfd write-protect: ${uw}` };
}

/** Writes one byte of our own page at `at` through the kernel (as a task's store would be seen). */
function touch(at: bigint): void {
  processVmWritev(process.pid, [{ local: Buffer.from([1]), remote: at, len: 1 }]);
}

function softDirtyWorks(): true | string {
  const self = ProcDir.self();
  const page = mmap(0n, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  try {
    touch(page);
    try {
      self.writeText('clear_refs', '4');
    } catch (e) {
      return `clear_refs: ${(e as Error).message}`;
    }
    const pm = self.pagemap();
    const clean = pm.read(page, page + BigInt(PAGE_SIZE))[0] ?? 0n;
    touch(page);
    const dirty = pm.read(page, page + BigInt(PAGE_SIZE))[0] ?? 0n;
    if ((clean & PM_SOFT_DIRTY) === 0n && (dirty & PM_SOFT_DIRTY) !== 0n) return true;
    return 'not in this kernel (CONFIG_MEM_SOFT_DIRTY)';
  } finally {
    munmap(page, PAGE_SIZE);
  }
}

function uffdWpWorks(): true | string {
  let fd = raw.syscall(SYS.userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
  if (fd < 0) fd = raw.syscall(SYS.userfaultfd, O_CLOEXEC);
  if (fd < 0) return 'userfaultfd() fails here';
  const page = mmap(0n, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  try {
    const want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
    const api = uffdApi(fd, want);
    if ((api.features & want) !== want) return 'no UFFD_FEATURE_WP_ASYNC (Linux 6.7)';
    uffdRegister(fd, page, BigInt(2 * PAGE_SIZE), UFFDIO_REGISTER_MODE_WP);
    const pm = ProcDir.self().pagemap();
    const scan = () =>
      pm.scan(page, page + BigInt(2 * PAGE_SIZE), {
        flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        categoryMask: PAGE_IS_WRITTEN,
        returnMask: PAGE_IS_WRITTEN,
      });
    scan();
    touch(page + BigInt(PAGE_SIZE));
    const r = scan().regions;
    const first = r[0];
    if (r.length === 1 && first && first.start === page + BigInt(PAGE_SIZE)) return true;
    return 'PAGEMAP_SCAN does not report written pages';
  } catch (e) {
    return isSysError(e) ? `${e.code} (needs Linux 6.7: PAGEMAP_SCAN, UFFD_FEATURE_WP_ASYNC)` : String(e);
  } finally {
    munmap(page, 2 * PAGE_SIZE);
    close(fd);
  }
}
