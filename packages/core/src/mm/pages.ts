import { closeSync, openSync, readSync } from 'node:fs';
import {
  PAGE_IS_FILE,
  PAGE_IS_GUARD,
  PAGE_IS_PFNZERO,
  PAGE_IS_PRESENT,
  PAGE_IS_SWAPPED,
  type Pagemap,
  procPath,
} from '@criu-ts/bfd';
import type { PageMapWriter } from '@criu-ts/images';
import { alignedBuffer, PAGE_SIZE, processVmReadv, type VmIovec } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import { type DumpVma, isPrivateMemory, VMA } from './vmas.js';

const PAGE = BigInt(PAGE_SIZE);
/**
 * Pages are copied through two buffers of this size: large enough that syscalls don't dominate (and the
 * largest request this machine's disk takes at once), small enough that criu-ts's RSS does not grow with
 * the task (2 x 4 MiB, the one 8 MiB buffer of before, whatever the task's size).
 */
const CHUNK = 4 * 1024 * 1024;

export interface PageStats {
  scanned: number;
  written: number;
}

/** A run of pages to copy. */
interface Run {
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

/**
 * Copies the runs into pagemap-PID.img and pages-N.img, `progress` told the pages of each chunk once it
 * is written. process_vm_readv with many iovecs fills one of two page-aligned buffers while the other
 * one is written in libuv's thread pool, so reading the task and writing the image overlap; the pages
 * image is written past the page cache (O_DIRECT) where the file system allows it (see ImageRawWriter).
 * Pages the task cannot read itself (PROT_NONE) are read through /proc/PID/mem.
 */
export async function dumpPages(
  pid: number,
  runs: Run[],
  out: PageMapWriter,
  progress?: (pages: number) => void,
): Promise<number> {
  let total = 0;
  for (const run of runs) total += Number(run.end - run.start);
  // Small tasks get small buffers: the chunk, or all their pages when they are fewer.
  const size = Math.min(CHUNK, total);
  const bufs = size > 0 ? takeBuffers(size) : [];
  let cur = 0;
  let used = 0;
  let iovs: VmIovec[] = [];
  let written = 0;
  /** The write of the other buffer, and its pages. */
  let pending: Promise<void> | undefined;
  let pendingPages = 0;
  const settle = async () => {
    if (!pending) return;
    const p = pending;
    pending = undefined;
    await p;
    progress?.(pendingPages);
  };
  const flush = async () => {
    if (iovs.length === 0) return;
    const want = used;
    const buf = bufs[cur]!;
    const got = processVmReadv(pid, iovs);
    if (got !== want)
      throw new DumpError(`pid ${pid}: read ${got} of ${want} bytes of memory (a mapping changed?)`);
    await settle();
    pending = out.writeDataAsync(buf.subarray(0, want));
    pendingPages = want / PAGE_SIZE;
    cur ^= 1;
    iovs = [];
    used = 0;
  };
  let mem: number | undefined;
  try {
    for (const run of runs) {
      const pages = (run.end - run.start) / PAGE;
      out.addPresent(run.start, pages);
      written += Number(pages);
      if (!run.readable) {
        await flush();
        await settle();
        mem ??= openSync(procPath(pid, 'mem'), 'r');
        copyViaProcMem(mem, run, out, bufs[cur]!, progress);
        continue;
      }
      for (let at = run.start; at < run.end; ) {
        if (used === size) await flush();
        const n = Math.min(Number(run.end - at), size - used);
        iovs.push({ local: bufs[cur]!, offset: used, remote: at, len: n });
        used += n;
        at += BigInt(n);
      }
    }
    await flush();
    await settle();
  } finally {
    if (mem !== undefined) closeSync(mem);
    // A failure half way: the write under way ends before the buffers go (its error, if any, is
    // second to the one thrown).
    if (pending) await pending.catch(() => undefined);
    if (bufs.length > 0) spare = bufs;
  }
  return written;
}

/**
 * dumpPages' two buffers are kept for the next dump in this process (a service worker dumps again and
 * again: two fresh zeroed ones were 1.3 ms of a 12 ms dump of `sleep`). One dump at a time has them.
 */
let spare: Buffer[] | undefined;

function takeBuffers(size: number): Buffer[] {
  const kept = spare;
  spare = undefined;
  if (kept !== undefined && kept[0]!.length >= size) return kept;
  return [alignedBuffer(size), alignedBuffer(size)];
}

function copyViaProcMem(
  fd: number,
  run: Run,
  out: PageMapWriter,
  buf: Buffer,
  progress: ((pages: number) => void) | undefined,
): void {
  for (let at = run.start; at < run.end; ) {
    const n = Math.min(Number(run.end - at), buf.length);
    const got = readSync(fd, buf, 0, n, at);
    if (got !== n)
      throw new DumpError(`/proc mem read of ${n} bytes at 0x${at.toString(16)} returned ${got}`);
    out.writeData(buf.subarray(0, n));
    progress?.(n / PAGE_SIZE);
    at += BigInt(n);
  }
}
