// Consistency of a task's memory images, checked while planning, before any process exists: VMAs that
// overlap or reach past user space, pagemap runs that are unaligned, empty, out of order, overlapping,
// outside every VMA, or whose data is not in the pages file. Any of these would otherwise map memory
// wrongly or fill it with the wrong bytes, and the restored task would die at once (or, worse, run on
// with corrupt memory). Each is one RestoreError naming the image file, the field and the values.

import { closeSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  type ImageDir,
  openImageForRead,
  PageChainError,
  type PageMap,
  type PageRun,
  type PageSources,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  pageSources,
  parseImageFileName,
  type VmaEntry,
} from '@criu-ts/images';
import { PAGE_SIZE } from '@criu-ts/sys';
import { isGuard, VMA } from '../mm/vmas.js';
import { RestoreError } from './errors.js';

const PAGE = BigInt(PAGE_SIZE);
/** Highest user address + 1 with 5-level paging (x86_64); [vsyscall] is the one area above it. */
const USER_END = 1n << 56n;
const KNOWN_FLAGS = PE_PARENT | PE_LAZY | PE_PRESENT;

const hex = (v: bigint) => `0x${v.toString(16)}`;

/**
 * The VMAs of mm-PID.img (guard areas aside) in address order, none overlapping another, all below the
 * end of user space. Returns them sorted.
 */
export function checkVmaLayout(pid: number, vmas: VmaEntry[]): VmaEntry[] {
  const file = `mm-${pid}.img`;
  const sorted = vmas
    .filter((v) => !isGuard(v))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let prev: VmaEntry | undefined;
  for (const v of sorted) {
    const what = `${file}: VMA ${hex(v.start)}-${hex(v.end)}`;
    if (v.start >= v.end || v.start % PAGE !== 0n || v.end % PAGE !== 0n)
      throw new RestoreError(`${what}: bad bounds (start and end must be page-aligned, start below end)`);
    if (v.end > USER_END && !(v.status & VMA.AREA_VSYSCALL))
      throw new RestoreError(`${what}: end is beyond user space`);
    if (prev && v.start < prev.end)
      throw new RestoreError(`${what} overlaps VMA ${hex(prev.start)}-${hex(prev.end)}`);
    prev = v;
  }
  return sorted;
}

/**
 * The runs of a pagemap: each page-aligned, at least one page, flags CRIU knows, in address order
 * without overlap; with `vmas` (sorted, see checkVmaLayout), each covered by VMAs. The bytes of its
 * present pages must be in the pages file, a regular file (not a symlink, FIFO or device).
 */
export function checkPagemap(
  pagemapFile: string,
  runs: PageRun[],
  pagesFile: string,
  vmas?: VmaEntry[],
): void {
  const file = basename(pagemapFile);
  let prevEnd = 0n;
  let present = 0n;
  let vi = 0;
  for (const [i, r] of runs.entries()) {
    const what = `${file}: entry ${i + 1} (vaddr ${hex(r.vaddr)}, nr_pages ${r.pages})`;
    if (r.vaddr % PAGE !== 0n) throw new RestoreError(`${what}: vaddr is not page-aligned`);
    if (r.pages <= 0n) throw new RestoreError(`${what}: nr_pages is 0`);
    if (r.flags & ~KNOWN_FLAGS) throw new RestoreError(`${what}: unknown flags 0x${r.flags.toString(16)}`);
    const end = r.vaddr + r.pages * PAGE;
    if (end > 1n << 64n) throw new RestoreError(`${what}: runs past the end of the address space`);
    if (r.vaddr < prevEnd)
      throw new RestoreError(
        `${what}: overlaps or comes before the previous entry, which ends at ${hex(prevEnd)}`,
      );
    prevEnd = end;
    if (vmas) {
      // Covered by VMAs, possibly several neighbours; runs and VMAs are both in address order.
      for (let at = r.vaddr; at < end; ) {
        while (vi < vmas.length && vmas[vi]!.end <= at) vi++;
        const v = vmas[vi];
        if (!v || v.start > at) throw new RestoreError(`${what}: pages at ${hex(at)} are outside every VMA`);
        at = v.end < end ? v.end : end;
      }
    }
    if (r.flags & PE_PRESENT) present += r.pages * PAGE;
  }
  if (present === 0n) return;
  let size: bigint;
  try {
    const { fd, size: n } = openImageForRead(pagesFile);
    closeSync(fd);
    size = BigInt(n);
  } catch (e) {
    throw new RestoreError((e as Error).message);
  }
  if (size < present)
    throw new RestoreError(
      `${pagesFile} holds ${size} bytes, ${file} needs ${present}: truncated image (or a bad nr_pages)`,
    );
}

/** Every pagemap-shmem-ID.img of the directory: its runs as checkPagemap checks them (no VMAs: offsets). */
export function checkShmemPagemaps(dir: ImageDir): void {
  // Only names that can be one are parsed: a directory of 1,000 connections has 1,000 other images.
  for (const file of readdirSync(dir.path).sort()) {
    if (!file.startsWith('pagemap-shmem-')) continue;
    const f = parseImageFileName(file);
    if (f?.name.pattern !== 'pagemap-shmem-%lu' || f.id === undefined) continue;
    const pm = dir.shmemPageMap(BigInt(f.id));
    try {
      checkPagemap(join(dir.path, file), pm.runs, pm.pagesFile);
      checkPageChain(pm);
    } finally {
      pm.close();
    }
  }
}

/**
 * The pages of a pagemap through its chain of parent images (incremental dumps): every PE_PARENT run
 * found in some level, no loop, and each parent pagemap used as sound as checkPagemap wants it, with
 * its data in its pages file. Checked while planning, before any task exists; one line naming the
 * pagemap and the address otherwise.
 */
export function checkPageChain(pm: PageMap): PageSources {
  let src: PageSources;
  try {
    src = pageSources(pm);
  } catch (e) {
    if (e instanceof PageChainError) throw new RestoreError(e.message);
    throw new RestoreError((e as Error).message);
  }
  for (const [k, lv] of src.levels.entries())
    if (k > 0 && lv.pm) checkPagemap(join(lv.shown, lv.pm.pagemapName), lv.pm.runs, lv.pm.pagesFile);
  return src;
}
