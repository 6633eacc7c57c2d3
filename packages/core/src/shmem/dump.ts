// Shared anonymous memory (mmap MAP_SHARED|MAP_ANONYMOUS, which the kernel backs with a shmem file
// shown as "/dev/zero (deleted)"): its contents are dumped once per object, whichever tasks map it,
// into pagemap-shmem-SHMID.img (addresses are offsets in the object) and a pages image. They are
// read through the object itself (/proc/PID/map_files/...), not through one task's page tables:
// a page that only another task touched is still in the object. Holes are skipped (SEEK_DATA/HOLE).

import type { ImageDir } from '@criu-ts/images';
import { close, fstat, isSysError, lseek, O_CLOEXEC, open, pread } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import type { DumpVma } from '../mm/vmas.js';

const PAGE = 4096n;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const CHUNK = 4 * 1024 * 1024;

/** Byte ranges [start, end) of `fd` that hold data, page aligned. */
function dataRanges(fd: number, size: bigint): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  let at = 0n;
  while (at < size) {
    let start: bigint;
    try {
      start = lseek(fd, at, SEEK_DATA);
    } catch (e) {
      if (isSysError(e, 'ENXIO')) break; // nothing but holes from here
      throw e;
    }
    const end = lseek(fd, start, SEEK_HOLE);
    const s = (start / PAGE) * PAGE;
    const e = ((end + PAGE - 1n) / PAGE) * PAGE;
    out.push([s, e < size ? e : ((size + PAGE - 1n) / PAGE) * PAGE]);
    at = end;
  }
  return out;
}

/** Write the contents of the shared object behind `vma` of task `pid`. Returns the pages written. */
export function dumpSharedAnon(dir: ImageDir, pid: number, vma: DumpVma, pagesId: number): number {
  const e = vma.entry;
  const mapFile = `/proc/${pid}/map_files/${e.start.toString(16)}-${e.end.toString(16)}`;
  let fd: number;
  try {
    fd = open(mapFile, O_CLOEXEC);
  } catch (err) {
    throw new DumpError(`pid ${pid}: cannot open shared memory ${mapFile}: ${(err as Error).message}`);
  }
  const w = dir.shmemPageMapWriter(e.shmid, pagesId);
  let pages = 0;
  try {
    const size = BigInt(fstat(fd).size);
    const buf = Buffer.alloc(CHUNK);
    for (const [start, end] of dataRanges(fd, size)) {
      w.addPresent(start, (end - start) / PAGE);
      for (let at = start; at < end; at += BigInt(CHUNK)) {
        const len = Number(end - at < BigInt(CHUNK) ? end - at : BigInt(CHUNK));
        buf.fill(0, 0, len);
        pread(fd, buf, len, at);
        w.writeData(buf.subarray(0, len));
      }
      pages += Number((end - start) / PAGE);
    }
  } finally {
    w.close();
    close(fd);
  }
  return pages;
}
