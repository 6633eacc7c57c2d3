// Shared anonymous memory comes back as a memfd that criu-ts makes and fills (as CRIU 1.4 does):
// every task that mapped the object maps the same memfd MAP_SHARED at its address, so their writes
// keep reaching each other. In /proc/PID/maps the area then shows as /memfd:... instead of
// /dev/zero (deleted); the memory behaves the same.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type ImageDir, imageFileName, PageMap, PE_PRESENT } from '@criu-ts/images';
import { close, ftruncate, memfdCreate, O_CLOEXEC, open, pread, pwrite } from '@criu-ts/sys';
import { RestoreError } from '../restore/errors.js';

const MFD_CLOEXEC = 1;
const CHUNK = 4 * 1024 * 1024;

/** A memfd of at least `size` bytes holding the dumped contents of shared object `shmid`. */
export function makeSharedAnon(dir: ImageDir, shmid: bigint, size: bigint): number {
  const fd = memfdCreate(`criu-ts-shmem-${shmid}`, MFD_CLOEXEC);
  try {
    ftruncate(fd, size);
    if (existsSync(join(dir.path, imageFileName('pagemap-shmem-%lu', shmid)))) fill(dir, fd, shmid);
    return fd;
  } catch (e) {
    close(fd);
    throw new RestoreError(`shared memory ${shmid}: ${(e as Error).message}`);
  }
}

/** Copy every present run of pagemap-shmem-SHMID.img to its offset in the memfd. */
function fill(dir: ImageDir, fd: number, shmid: bigint): void {
  const pm = PageMap.forShmem(dir.path, shmid);
  try {
    const pagesFd = open(pm.pagesFile, O_CLOEXEC);
    try {
      const buf = Buffer.alloc(CHUNK);
      for (const run of pm.runs) {
        if (!(run.flags & PE_PRESENT)) continue;
        const total = run.pages * 4096n;
        for (let done = 0n; done < total; done += BigInt(CHUNK)) {
          const len = Number(total - done < BigInt(CHUNK) ? total - done : BigInt(CHUNK));
          pread(pagesFd, buf, len, run.dataOffset + done);
          pwrite(fd, buf, len, run.vaddr + done);
        }
      }
    } finally {
      close(pagesFd);
    }
  } finally {
    pm.close();
  }
}
