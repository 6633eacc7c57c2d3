// Guard regions (madvise MADV_GUARD_INSTALL, Linux 6.13+): pages inside a VMA that fault with SIGSEGV.
// The kernel keeps them as page-table markers, not as VMAs: only PAGEMAP_SCAN shows them
// (PAGE_IS_GUARD, Linux 6.14+). CRIU 4.2 records each run as a VMA entry with status AREA_GUARD only,
// after the real VMAs; restore installs them again once the memory is in place.

import { PAGE_IS_GUARD, type Pagemap } from '@criu-ts/bfd';
import { PAGE_SIZE } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import { type DumpVma, VMA } from './vmas.js';

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** The guard regions of a task's VMAs that may hold some ('gu' in VmFlags), as VMA entries. */
export function dumpGuardRegions(pid: number, pagemap: Pagemap, vmas: DumpVma[]): DumpVma[] {
  const out: DumpVma[] = [];
  for (const v of vmas) {
    if (!v.mayHoldGuards) continue;
    let regions: Array<{ start: bigint; end: bigint }>;
    try {
      regions = pagemap.scan(v.entry.start, v.entry.end, {
        categoryMask: PAGE_IS_GUARD,
        returnMask: PAGE_IS_GUARD,
      }).regions;
    } catch (e) {
      throw new DumpError(
        `pid ${pid}: VMA ${hex(v.entry.start)}-${hex(v.entry.end)} may hold guard pages (MADV_GUARD_INSTALL) and this kernel's PAGEMAP_SCAN cannot find them (needs PAGE_IS_GUARD, Linux 6.14): ${(e as Error).message}`,
      );
    }
    for (const r of regions) {
      const last = out[out.length - 1];
      if (last && last.entry.end === r.start) {
        last.entry.end = r.end;
        continue;
      }
      out.push({
        entry: {
          start: r.start,
          end: r.end,
          pgoff: 0n,
          shmid: 0n,
          prot: 0,
          flags: 0,
          status: VMA.AREA_GUARD,
          fd: -1n,
        },
        path: '',
        wasWritable: false,
        mayHoldGuards: false,
      });
    }
  }
  return out;
}

/** Whether this kernel's PAGEMAP_SCAN reports guard pages (CRIU's pagemap_scan_guard_pages). */
export function pagemapScanFindsGuards(self: Pagemap): boolean {
  try {
    const page = BigInt(PAGE_SIZE);
    const r = self.scan(0n, page, { categoryMask: PAGE_IS_GUARD, returnMask: PAGE_IS_GUARD });
    return r.via === 'ioctl';
  } catch {
    return false;
  }
}
