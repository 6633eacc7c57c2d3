// The device of the kernel's internal shmem mount: anonymous shared memory, memfd files and SysV
// segments all live there, so a mapping or fd on it is shared memory whatever its name says.
import { close, devMajor, devMinor, fstat, MFD_CLOEXEC, memfdCreate } from '@criu-ts/sys';

let shmemDev: { major: number; minor: number } | undefined;

/** Found once by asking a fresh memfd of our own where it lives. */
function probe(): { major: number; minor: number } {
  if (!shmemDev) {
    const fd = memfdCreate('criu-ts-probe', MFD_CLOEXEC);
    try {
      const st = fstat(fd);
      shmemDev = { major: devMajor(st.dev), minor: devMinor(st.dev) };
    } finally {
      close(fd);
    }
  }
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
