import {
  PAGE_IS_FILE,
  PAGE_IS_GUARD,
  PAGE_IS_PFNZERO,
  PAGE_IS_PRESENT,
  PAGE_IS_SWAPPED,
  type Pagemap,
} from '@criu-ts/bfd';
import { PAGE_SIZE } from '@criu-ts/sys';
import { type DumpVma, isPrivateMemory, VMA } from './vmas.js';

const PAGE = BigInt(PAGE_SIZE);

/** A run of pages to copy (mm/write.ts copies them). */
export interface Run {
  start: bigint;
  end: bigint;
  readable: boolean;
}

/**
 * Which pages of a task's private memory dump copies, as CRIU decides: present or swapped
 * pages, but not the shared zero page, and in private file mappings only the pages the
 * task has written (anonymous copies), since the others come back from the file; and the whole vDSO;
 * never guard pages nor the pages of droppable mappings.
 */
export function pagesToDump(pagemap: Pagemap, vmas: DumpVma[]): { runs: Run[]; scanned: number } {
  const runs: Run[] = [];
  let scanned = 0;
  for (const { entry, mayHoldGuards } of vmas) {
    if (!isPrivateMemory(entry)) continue;
    scanned += Number((entry.end - entry.start) / PAGE);
    const fileBacked = (entry.status & VMA.FILE_PRIVATE) !== 0;
    // Guard pages count as swapped (they are page-table markers): never copied (see guards.ts).
    const skip = PAGE_IS_PFNZERO | (fileBacked ? PAGE_IS_FILE : 0) | (mayHoldGuards ? PAGE_IS_GUARD : 0);
    // The vDSO goes whole, as CRIU dumps it: CRIU's restore reads its ELF (symbols) from the image to
    // tell whether this kernel's vDSO is the same, also the pages the task never touched.
    // AIO rings go whole too (CRIU's should_dump_entire_vma): the kernel writes them.
    const regions =
      entry.status & (VMA.AREA_VDSO | VMA.AREA_AIORING)
        ? [{ start: entry.start, end: entry.end }]
        : pagemap.scan(entry.start, entry.end, {
            categoryAnyofMask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            categoryInverted: skip,
            categoryMask: skip,
            returnMask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
          }).regions;
    const readable = (entry.prot & 1) !== 0;
    for (const r of regions) {
      const last = runs[runs.length - 1];
      // Runs of neighbouring VMAs with the same readability are copied together.
      if (last && last.end === r.start && last.readable === readable) last.end = r.end;
      else runs.push({ start: r.start, end: r.end, readable });
    }
  }
  return { runs, scanned };
}
