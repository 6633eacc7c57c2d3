// The contents of one shared memory object, once per object (not per task that maps it):
// pagemap-shmem-SHMID.img lists runs of pages by their offset in the object (vaddr = offset), their
// data goes to pages-N.img, as CRIU writes them. They are read through the object itself (a fd of the
// shmem file), so a page that no task ever touched but that is in the object is dumped too, and only
// holes (SEEK_DATA / SEEK_HOLE) are left out.
import { closeSync, readSync } from 'node:fs';
import {
  type ImageDir,
  openImageForRead,
  PageChainError,
  type PageMap,
  type PageSources,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  pageSources,
} from '@criu-ts/images';
import {
  isSysError,
  lseek,
  MAP_SHARED,
  mmap,
  munmap,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  preadFull,
  processVmWritev,
  pwrite,
  SEEK_DATA,
  SEEK_HOLE,
  type VmIovec,
} from '@criu-ts/sys';
import type { HolePuncher } from '../mm/punch.js';
import { RestoreError } from '../restore/errors.js';

const PAGE = BigInt(PAGE_SIZE);
/** Data is copied through a buffer of this size. */
const CHUNK = 4 * 1024 * 1024;

export interface ShmemPages {
  /** Pages of the object (its size rounded up). */
  scanned: number;
  /** Pages written to the image (the ones that are not holes). */
  written: number;
}

const pageUp = (n: bigint) => (n + PAGE - 1n) & ~(PAGE - 1n);
const min = (a: bigint, b: bigint) => (a < b ? a : b);

/** The [start, end) byte ranges of `fd` holding data, page aligned, within `size`. */
function dataRanges(fd: number, size: bigint): Array<[bigint, bigint]> {
  const end = pageUp(size);
  const out: Array<[bigint, bigint]> = [];
  for (let at = 0n; at < end; ) {
    let data: bigint;
    try {
      data = lseek(fd, at, SEEK_DATA);
    } catch (e) {
      if (isSysError(e, 'ENXIO')) break; // no data after `at`
      throw e;
    }
    const hole = lseek(fd, data, SEEK_HOLE);
    const from = data & ~(PAGE - 1n);
    const to = min(pageUp(hole), end);
    if (to > from) out.push([from, to]);
    at = to > at ? to : at + PAGE;
  }
  return out;
}

/**
 * Write pagemap-shmem-SHMID.img and pages-PAGESID.img for the object open as `fd` (read only, never
 * changed: pread does not move any position, lseek moves only criu-ts's own description).
 */
export function dumpShmemContents(
  dir: ImageDir,
  shmid: bigint,
  fd: number,
  size: bigint,
  pagesId: number,
): ShmemPages {
  const pm = dir.shmemPageMapWriter(shmid, pagesId);
  let written = 0;
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (const [from, to] of dataRanges(fd, size)) {
      pm.addPresent(from, (to - from) / PAGE);
      written += Number((to - from) / PAGE);
      for (let at = from; at < to; ) {
        const n = Number(to - at < BigInt(CHUNK) ? to - at : BigInt(CHUNK));
        // The last page may be past the end of the object: the kernel reads it as zeroes.
        const got = preadFull(fd, buf, n, at);
        buf.fill(0, got, n);
        pm.writeData(buf.subarray(0, n));
        at += BigInt(n);
      }
    }
  } finally {
    pm.close();
  }
  return { scanned: Number(pageUp(size) / PAGE), written };
}

/**
 * Fill `fd` (a fresh memfd of `size` bytes) from pagemap-shmem-SHMID.img, with pwrite; a hugetlb memfd
 * (`hugetlb`), which cannot be written to, through a shared mapping of it, and only its pages that
 * are not zero (a fresh huge page is zero: no huge page is taken for nothing). No image means no
 * pages: the object was all holes. PE_PARENT runs are read from the parent images (incremental dumps,
 * the chain checked while planning). With `punch` (--auto-dedup), what is read is punched out of the
 * images. Returns the number of pages in the images.
 */
export function restoreShmemContents(
  dir: ImageDir,
  shmid: bigint,
  fd: number,
  size: bigint,
  hugetlb = false,
  punch?: HolePuncher,
): number {
  if (!dir.has('pagemap-shmem-%lu', shmid)) return 0;
  const pm = dir.shmemPageMap(shmid);
  let pages = 0;
  const src = new Map<number, number>();
  const mapped = hugetlb && size > 0n ? mmap(0n, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : undefined;
  const write = (b: Buffer, len: number, pos: bigint) =>
    mapped === undefined ? writeFully(fd, b, len, pos) : writeMapped(mapped, b, len, pos);
  try {
    for (const r of pm.runs) {
      if (r.flags & PE_LAZY && !(r.flags & (PE_PRESENT | PE_PARENT)))
        throw new RestoreError(`pagemap-shmem-${shmid}.img: lazy pages need a page server`);
      const end = r.vaddr + r.pages * PAGE;
      if (r.flags & (PE_PRESENT | PE_PARENT) && end > pageUp(size))
        throw new RestoreError(
          `pagemap-shmem-${shmid}.img: pages up to ${end} are beyond the object's ${size} bytes`,
        );
    }
    const sources = shmemSources(pm, shmid);
    const buf = Buffer.allocUnsafe(CHUNK);
    for (const r of sources.slices) {
      const file = sources.files[r.level]!;
      let from = src.get(r.level);
      if (from === undefined) {
        from = openImageForRead(file).fd;
        src.set(r.level, from);
      }
      for (let at = 0n; at < r.len; ) {
        const n = Number(r.len - at < BigInt(CHUNK) ? r.len - at : BigInt(CHUNK));
        const got = readSync(from, buf, 0, n, r.off + at);
        if (got !== n) throw new RestoreError(`${file}: page data missing at ${r.off + at}`);
        // Nothing is written past the object's end (its size is restored exactly).
        const off = r.addr + at;
        const keep = off + BigInt(n) > size ? Number(size - off) : n;
        if (keep > 0) write(buf, keep, off);
        punch?.punch(file, r.off + at, BigInt(n));
        at += BigInt(n);
      }
      pages += Number(r.len / PAGE);
    }
  } finally {
    for (const f of src.values()) closeSync(f);
    if (mapped !== undefined) munmap(mapped, size);
    pm.close();
  }
  return pages;
}

/** The pages of a shared memory object through its chain of parent images, as one-line errors. */
function shmemSources(pm: PageMap, shmid: bigint): PageSources {
  try {
    return pageSources(pm);
  } catch (e) {
    if (e instanceof PageChainError) throw new RestoreError(e.message);
    throw new RestoreError(`pagemap-shmem-${shmid}.img: ${(e as Error).message}`);
  }
}

function writeFully(fd: number, buf: Buffer, len: number, pos: bigint): void {
  for (let done = 0; done < len; ) done += pwrite(fd, buf, len - done, pos + BigInt(done), done);
}

/** Copy buf[0, len) to `base + pos` of criu-ts's own mapping, leaving zero pages out. */
function writeMapped(base: bigint, buf: Buffer, len: number, pos: bigint): void {
  const page = Number(PAGE);
  const iovs: VmIovec[] = [];
  let want = 0;
  for (let off = 0; off < len; off += page) {
    const n = Math.min(page, len - off);
    if (isZero(buf, off, n)) continue;
    const last = iovs[iovs.length - 1];
    if (last && (last.offset ?? 0) + (last.len ?? 0) === off) last.len = (last.len ?? 0) + n;
    else iovs.push({ local: buf, offset: off, remote: base + pos + BigInt(off), len: n });
    want += n;
  }
  if (iovs.length && processVmWritev(process.pid, iovs) !== want)
    throw new RestoreError(`short write into the mapping of a hugetlb memfd at offset ${pos}`);
}

const ZERO = Buffer.alloc(Number(PAGE));
const isZero = (b: Buffer, off: number, n: number) => b.compare(ZERO, 0, n, off, off + n) === 0;
