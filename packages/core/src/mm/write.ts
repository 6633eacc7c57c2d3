// Writes one task's pages: PE_PRESENT entries with data and, in an incremental dump, PE_PARENT entries for
// pages the parent chain holds unchanged, in address order. process_vm_readv with many iovecs fills one of
// two page-aligned buffers while the other one is written in libuv's thread pool, so reading the task and
// writing the image overlap; pages the task cannot read itself (PROT_NONE) are read through /proc/PID/mem.
// In a pre-dump the task runs
// again while its pages are read (`tolerant`): a page that cannot be read any more (unmapped meanwhile)
// is left out of the images rather than written as garbage, so the images only claim pages whose data
// was really read. A dump of a frozen task (not tolerant) fails on such a page.
import { closeSync, openSync, readSync } from 'node:fs';
import { procPath } from '@criu-ts/bfd';
import { PE_PARENT, PE_PRESENT } from '@criu-ts/images';
import {
  addressOf,
  alignedBuffer,
  MADV_POPULATE_WRITE,
  madvise,
  PAGE_SIZE,
  processVmReadv,
  type VmIovec,
} from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';

const PAGE = BigInt(PAGE_SIZE);
/**
 * Pages are copied through two buffers of this size: large enough that syscalls don't dominate (and the
 * largest request this machine's disk takes at once), small enough that criu-ts's RSS does not grow with
 * the task (2 x 4 MiB, whatever the task's size).
 */
const CHUNK = 4 * 1024 * 1024;

/** Where a task's pages go: its pagemap and pages images (PageMapWriter), or a page server (PageStream). */
export interface PageSink {
  addPresent(vaddr: bigint, pages: number | bigint): void;
  addParent(vaddr: bigint, pages: number | bigint): void;
  /** Data left untouched until the promise settles. */
  writeDataAsync(data: Uint8Array): Promise<void>;
}

/** A run of the plan: pages to read (`parent` false) or to point at in the parent images. */
export interface PlanRun {
  start: bigint;
  end: bigint;
  parent: boolean;
  /** PROT_READ: false means read through /proc/PID/mem. */
  readable: boolean;
}

/**
 * The two chunk buffers, kept between dumps in one process (a service worker dumps again and again: two
 * fresh zeroed ones were 1.3 ms of a 12 ms dump of `sleep`), and faulted in before an incremental dump's
 * tree is frozen (warmPlanBuffers): touching fresh memory is slow on some machines (a page fault per page
 * of a VM's memory, tens of microseconds each here), and an incremental dump reads few pages, so that cost
 * would dominate it. One writePlan at a time has them; another at the same time (core used as a library)
 * takes buffers of its own.
 */
let spare: Buffer[] | undefined;

/** Allocates and faults in the chunk buffers (called before seizing). */
export function warmPlanBuffers(): void {
  if (spare && spare[0]!.length >= CHUNK) return;
  spare = [alignedBuffer(CHUNK), alignedBuffer(CHUNK)];
  for (const b of spare) {
    try {
      madvise(addressOf(b), b.length, MADV_POPULATE_WRITE);
    } catch {
      b.fill(0); // kernels before 5.14
    }
  }
}

function takeBuffers(size: number): Buffer[] {
  const kept = spare;
  spare = undefined;
  if (kept !== undefined && kept[0]!.length >= size) return kept;
  return [alignedBuffer(size), alignedBuffer(size)];
}

/** The larger pair is kept for the next dump. */
function giveBack(bufs: Buffer[]): void {
  if (bufs.length && (spare === undefined || spare[0]!.length < bufs[0]!.length)) spare = bufs;
}

export interface PlanWritten {
  written: number;
  parent: number;
  /** Pages left out because they could no longer be read (tolerant only). */
  dropped: number;
}

interface Piece {
  start: bigint;
  end: bigint;
  /** Offset in the chunk buffer. */
  off: number;
  readable: boolean;
}

type Queued = { parent: true; start: bigint; end: bigint } | ({ parent: false } & Piece);

export async function writePlan(
  pid: number,
  plan: PlanRun[],
  out: PageSink,
  opts: { tolerant: boolean; progress?: (pages: number) => void },
): Promise<PlanWritten> {
  let total = 0;
  for (const r of plan) if (!r.parent) total += Number(r.end - r.start);
  const size = Math.min(CHUNK, Math.max(total, PAGE_SIZE));
  const bufs = total === 0 ? [] : takeBuffers(size);
  const res: PlanWritten = { written: 0, parent: 0, dropped: 0 };
  let cur = 0;
  let used = 0;
  let queue: Queued[] = [];
  let pending: Promise<unknown> | undefined;
  let pendingPages = 0;
  let mem: number | undefined;
  // The entry being built: neighbouring runs of one kind become one entry.
  let entry: { start: bigint; end: bigint; flags: number } | undefined;
  const emit = (start: bigint, end: bigint, flags: number) => {
    if (entry && entry.end === start && entry.flags === flags) {
      entry.end = end;
      return;
    }
    flushEntry();
    entry = { start, end, flags };
  };
  const flushEntry = () => {
    if (!entry) return;
    const pages = (entry.end - entry.start) / PAGE;
    if (entry.flags === PE_PARENT) out.addParent(entry.start, pages);
    else out.addPresent(entry.start, pages);
    entry = undefined;
  };
  const settle = async () => {
    if (!pending) return;
    const p = pending;
    pending = undefined;
    await p;
    opts.progress?.(pendingPages);
  };
  const procMem = () => {
    mem ??= openSync(procPath(pid, 'mem'), 'r');
    return mem;
  };

  /** Reads the queued pieces into the buffer; returns, per piece, the page ranges really read. */
  const readPieces = (buf: Buffer, pieces: Piece[]): Array<Array<[bigint, bigint]>> => {
    const ok: Array<Array<[bigint, bigint]>> = pieces.map(() => []);
    const vm: number[] = [];
    for (const [i, p] of pieces.entries()) {
      if (p.readable) vm.push(i);
      else readViaProcMem(buf, p, ok[i]!);
    }
    // process_vm_readv stops at the first page it cannot read: what came before is good; that page is
    // left out (or the dump fails), and the read goes on after it.
    let at = 0; // index into vm
    let skip = 0n; // bytes of pieces[vm[at]] already done
    while (at < vm.length) {
      const iovs: VmIovec[] = [];
      for (let k = at; k < vm.length; k++) {
        const p = pieces[vm[k]!]!;
        const from = k === at ? skip : 0n;
        iovs.push({
          local: buf,
          offset: p.off + Number(from),
          remote: p.start + from,
          len: Number(p.end - p.start - from),
        });
      }
      let want = 0;
      for (const v of iovs) want += v.len ?? 0;
      let got: number;
      try {
        got = processVmReadv(pid, iovs);
      } catch (e) {
        const code = (e as { code?: string }).code;
        // The task is gone (it may, once thawed): nothing more of it is read.
        if (code === 'ESRCH' && opts.tolerant) {
          for (; at < vm.length; at++) {
            const p = pieces[vm[at]!]!;
            res.dropped += Number((p.end - p.start) / PAGE);
          }
          break;
        }
        // EFAULT on the very first page: nothing read
        if (code !== 'EFAULT') throw e;
        got = 0;
      }
      // Walk the pieces the read covered.
      let left = BigInt(got);
      while (at < vm.length) {
        const i = vm[at]!;
        const p = pieces[i]!;
        const from = p.start + skip;
        const rest = p.end - from;
        if (left >= rest) {
          if (rest > 0n) ok[i]!.push([from, p.end]);
          left -= rest;
          at++;
          skip = 0n;
          continue;
        }
        // The read stopped inside this piece: whole pages before the stop are good.
        const goodEnd = from + (left / PAGE) * PAGE;
        if (goodEnd > from) ok[i]!.push([from, goodEnd]);
        if (got === want) break; // cannot happen: left < rest only when short
        if (!opts.tolerant)
          throw new DumpError(
            `pid ${pid}: cannot read the page at 0x${goodEnd.toString(16)} (a mapping changed while the task was frozen?)`,
          );
        res.dropped++;
        skip = goodEnd + PAGE - p.start;
        if (skip >= p.end - p.start) {
          at++;
          skip = 0n;
        }
        break;
      }
    }
    return ok;
  };

  const readViaProcMem = (buf: Buffer, p: Piece, ok: Array<[bigint, bigint]>) => {
    const fd = procMem();
    for (let a = p.start; a < p.end; a += PAGE) {
      let n = 0;
      try {
        n = readSync(fd, buf, p.off + Number(a - p.start), PAGE_SIZE, a);
      } catch {
        n = 0;
      }
      if (n === PAGE_SIZE) {
        const last = ok[ok.length - 1];
        if (last && last[1] === a) last[1] = a + PAGE;
        else ok.push([a, a + PAGE]);
      } else if (!opts.tolerant) {
        throw new DumpError(`/proc mem read of the page at 0x${a.toString(16)} returned ${n}`);
      } else res.dropped++;
    }
  };

  const flush = async () => {
    if (queue.length === 0) return;
    const buf = bufs[cur]!;
    const pieces = queue.filter((q): q is { parent: false } & Piece => !q.parent);
    const ok = readPieces(buf, pieces);
    await settle();
    const writes: Promise<void>[] = [];
    let pages = 0;
    let pi = 0;
    // Pages that follow each other in the buffer go out in one write (many small writes are slow).
    let span: [number, number] | undefined;
    const spanOut = () => {
      if (span) writes.push(out.writeDataAsync(buf.subarray(span[0], span[1])));
      span = undefined;
    };
    for (const q of queue) {
      if (q.parent) {
        if (opts.tolerant) emit(q.start, q.end, PE_PARENT);
        res.parent += Number((q.end - q.start) / PAGE);
        continue;
      }
      for (const [s, e] of ok[pi++]!) {
        if (opts.tolerant) emit(s, e, PE_PRESENT);
        const off = q.off + Number(s - q.start);
        const end = off + Number(e - s);
        if (span && span[1] === off) span[1] = end;
        else {
          spanOut();
          span = [off, end];
        }
        pages += Number((e - s) / PAGE);
      }
    }
    spanOut();
    res.written += pages;
    pending = Promise.all(writes);
    pendingPages = pages;
    cur ^= 1;
    queue = [];
    used = 0;
  };

  try {
    for (const run of plan) {
      // Not tolerant, every page is read or the dump fails: each run's entry goes out before its data, as
      // a page server wants it (a pre-dump, tolerant, knows its entries only once the pages are read).
      if (!opts.tolerant) {
        const pages = (run.end - run.start) / PAGE;
        if (run.parent) out.addParent(run.start, pages);
        else out.addPresent(run.start, pages);
      }
      if (run.parent) {
        queue.push({ parent: true, start: run.start, end: run.end });
        continue;
      }
      for (let at = run.start; at < run.end; ) {
        if (used === size) await flush();
        const n = Math.min(Number(run.end - at), size - used);
        queue.push({ parent: false, start: at, end: at + BigInt(n), off: used, readable: run.readable });
        used += n;
        at += BigInt(n);
      }
    }
    await flush();
    await settle();
    flushEntry();
  } finally {
    if (mem !== undefined) closeSync(mem);
    if (pending) await pending.catch(() => undefined);
    giveBack(bufs);
  }
  return res;
}
