// The devices of the kernel's internal memory filesystems. Anonymous shared memory, memfd files and
// SysV segments live on the internal shmem mount, so a mapping or fd on it is shared memory whatever
// its name says. Hugetlb memory the kernel makes itself (MAP_HUGETLB, memfd_create(MFD_HUGETLB), SysV
// SHM_HUGETLB) lives on one internal hugetlbfs mount per huge page size, each with its own device; a
// hugetlbfs someone mounted has yet another one.
import {
  close,
  devMajor,
  devMinor,
  fstat,
  isSysError,
  MAP_HUGE_SHIFT,
  MFD_CLOEXEC,
  MFD_HUGETLB,
  memfdCreate,
} from '@criu-ts/sys';

interface Dev {
  major: number;
  minor: number;
}

let shmemDev: Dev | undefined;

/** The device of a fresh memfd of our own, made with `flags`. */
function memfdDev(flags: number): Dev {
  const fd = memfdCreate('criu-ts-probe', MFD_CLOEXEC | flags);
  try {
    const st = fstat(fd);
    return { major: devMajor(st.dev), minor: devMinor(st.dev) };
  } finally {
    close(fd);
  }
}

/** Found once by asking a fresh memfd of our own where it lives. */
function probe(): Dev {
  shmemDev ??= memfdDev(0);
  return shmemDev;
}

export function isShmemDev(major: number, minor: number): boolean {
  const d = probe();
  return d.major === major && d.minor === minor;
}

/** The same test for a stat's st_dev. */
export function isShmemStDev(dev: bigint): boolean {
  return isShmemDev(devMajor(dev), devMinor(dev));
}

/** log2 of the huge page sizes Linux knows on some architecture (16 KiB ... 16 GiB), as CRIU lists them. */
const HUGE_PAGE_SHIFTS = [14, 16, 19, 20, 21, 23, 24, 25, 28, 29, 30, 31, 34];
/** log2 of a huge page size -> the device of its internal hugetlbfs mount (sizes this kernel has). */
let hugetlbDevs: Map<number, Dev> | undefined;

/**
 * The internal hugetlbfs devices, found once by making an empty hugetlb memfd of each size (which
 * takes no huge page). A kernel without MFD_HUGETLB (before 4.14) or without hugetlbfs has none.
 */
function hugetlbProbe(): Map<number, Dev> {
  if (hugetlbDevs) return hugetlbDevs;
  hugetlbDevs = new Map();
  for (const shift of HUGE_PAGE_SHIFTS) {
    try {
      hugetlbDevs.set(shift, memfdDev(MFD_HUGETLB | (shift << MAP_HUGE_SHIFT)));
    } catch (e) {
      if (!isSysError(e)) throw e; // EINVAL: no such size here; ENOSYS/ENOENT: no hugetlbfs
    }
  }
  return hugetlbDevs;
}

/**
 * The MAP_HUGE_<size> bits (log2 of the page size << 26) if major:minor is the kernel's internal
 * hugetlbfs of that size: the file behind MAP_HUGETLB memory, a hugetlb memfd or a SysV SHM_HUGETLB
 * segment. undefined for anything else, a mounted hugetlbfs too.
 */
export function hugetlbSizeFlag(major: number, minor: number): number | undefined {
  for (const [shift, d] of hugetlbProbe())
    if (d.major === major && d.minor === minor) return shift << MAP_HUGE_SHIFT;
  return undefined;
}

/** The same test for a stat's st_dev. */
export function hugetlbSizeFlagOfStDev(dev: bigint): number | undefined {
  return hugetlbSizeFlag(devMajor(dev), devMinor(dev));
}

/** Whether this kernel makes hugetlb memfds (memfd_create(MFD_HUGETLB), Linux 4.14). */
export function hasMemfdHugetlb(): boolean {
  return hugetlbProbe().size > 0;
}
