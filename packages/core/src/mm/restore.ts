// A task's memory, rebuilt from inside the task by batches of injected syscalls:
//   1. what the stub left (its ELF, its stack) is unmapped; [vvar]/[vvar_vclock]/[vdso] are moved with
//      mremap to where the dump found them (one offset for all, the vDSO reads [vvar] rip-relative);
//   2. every VMA is mapped at its address with its flags: anonymous ones, private and shared file
//      mappings at their offsets (the file comes from criu-ts through pidfd_getfd), the stack with
//      MAP_GROWSDOWN; shared memory (memfd, anonymous shared) is mapped from the one memfd criu-ts made
//      for the object (shmem/restore.ts), so tasks that shared it share it again; SysV segments are
//      attached with shmat at their address;
//   3. page contents: MADV_POPULATE_WRITE (one call instead of a page fault per page, which costs ~12 us
//      here) then pread64 from pages-N.img straight into place; pages of VMAs that are not writable
//      (a text page the dumper's parasite once patched) are written through /proc/PID/mem;
//   4. VMAs that were once writable are made read-only again (they were mapped writable so that they get
//      VM_ACCOUNT, as they had, and do not merge with neighbours that never were), AIO rings are made
//      again (aio/restore.ts), madvise bits are set;
//   5. prctl(PR_SET_MM, PR_SET_MM_MAP): code/data/brk/stack/args/env bounds, auxv, and the exe file.
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import {
  PAGE_IS_FILE,
  PAGE_IS_PFNZERO,
  PAGE_IS_PRESENT,
  PAGE_IS_SWAPPED,
  ProcDir,
  procPath,
} from '@criu-ts/bfd';
import { readProcMem, writeProcMem } from '@criu-ts/compel';
import { type MmEntry, openImageForRead, type PageMap, pageSources, type VmaEntry } from '@criu-ts/images';
import {
  alignedBuffer,
  cachestat,
  close,
  fstat,
  MADV_DONTNEED,
  MADV_GUARD_INSTALL,
  MADV_POPULATE_WRITE,
  MAP_ANONYMOUS,
  MAP_DROPPABLE,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_HUGE_MASK,
  MAP_HUGETLB,
  MAP_LOCKED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PR_SET_DUMPABLE,
  PR_SET_MM,
  PR_SET_MM_MAP,
  PR_SET_THP_DISABLE,
  PROT_EXEC,
  PROT_WRITE,
  processVmWritev,
  type Stat,
  SYS,
} from '@criu-ts/sys';
import { restoreAioRings } from '../aio/restore.js';
import type { NodeFiles } from '../files/node-files.js';
import { RestoreError } from '../restore/errors.js';
import type { Call, Injector } from '../restore/inject.js';
import type { LiveTask, RestoreRun } from '../restore/live.js';
import { ownVdsoLayout, type VdsoLayout, VMA } from '../restore/plan.js';
import { parkingOf } from '../restore/scratch.js';
import { type ShmemRestore, sysvAttachments } from '../shmem/restore.js';
import { HolePuncher } from './punch.js';
import { isGuard } from './vmas.js';

const PAGE = BigInt(PAGE_SIZE);
/** Bytes per MADV_POPULATE_WRITE + pread64 pair: big enough that syscalls are noise, small enough to stay cached. */
const FILL_CHUNK = 8n * 1024n * 1024n;
/** Runs smaller than this are left to page faults (fewer syscalls). */
const POPULATE_MIN = 64n * 1024n;
/** Memory from which criu-ts fills half of a task's pages itself, in parallel with the task. */
const PARALLEL_MIN = 32n * 1024n * 1024n;
/** Bytes of the task's share per injected table: the two sides meet (and progress is told) that often. */
const ROUND_BYTES = 128n * 1024n * 1024n;
/** Page data from which a pages image out of the page cache is read with O_DIRECT. */
const DIRECT_MIN = 1024n * 1024n;
/**
 * Average bytes per read below which a pages image is read through the page cache: O_DIRECT reads go to
 * the device one by one, and a level of an incremental chain that holds scattered pages would be read
 * page by page (readahead serves those through the cache).
 */
const DIRECT_MIN_READ = 128n * 1024n;
const MAP_KEEP =
  MAP_SHARED |
  MAP_PRIVATE |
  MAP_DROPPABLE |
  MAP_ANONYMOUS |
  MAP_GROWSDOWN |
  MAP_NORESERVE |
  MAP_LOCKED |
  MAP_HUGETLB |
  MAP_HUGE_MASK;
const MADVISE_BITS = [1, 2, 10, 12, 14, 15, 16, 18]; // RANDOM SEQUENTIAL DONTFORK MERGEABLE (NO)HUGEPAGE DONTDUMP WIPEONFORK

export interface MmContext {
  files: NodeFiles;
  /** The helper fd (a pidfd of criu-ts) in the task, from which pidfd_getfd pulls criu-ts's fds. */
  pidfd: number;
  /**
   * The lowest free fd of the task, where pidfd_getfd puts a file for a moment: 0, the task's table being
   * empty, but in a task sharing the fd table (CLONE_FILES) that another task has filled already.
   */
  freeFd?: number;
  scratch: { base: bigint; size: number };
  /** Free area for moving the vDSO out of the way when old and new places overlap. */
  parking: bigint;
  log: (msg: string) => void;
  /** The shared memory objects of the restore. */
  shmem: ShmemRestore;
  /**
   * The VMAs of the task's parent (restored before this task was forked from it): private areas
   * both have at the same place were inherited at fork and still share their pages copy-on-write.
   */
  parentVmas?: VmaEntry[];
  /** --auto-dedup: the pages read from the images are punched out of them (CRIU's semantics). */
  autoDedup?: boolean;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;
const isSpecial = (v: VmaEntry) => (v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR | VMA.AREA_VSYSCALL)) !== 0;

/** The part of one stretch of page data that falls into one VMA. */
interface Piece {
  addr: bigint;
  len: bigint;
  /** Offset of its data in the pages file of its level. */
  off: bigint;
  /** The dump its data is in: 0 this one, 1 parent/, 2 parent/parent/, ... (incremental dumps). */
  level: number;
  vma: VmaEntry;
}

/**
 * Split the pages of a pagemap along VMA boundaries (dump joins runs of neighbouring VMAs): its present
 * runs and, for PE_PARENT runs, the stretches of the parent images that hold them (images' pageSources,
 * checked while planning). Pages of the vDSO are dropped: the task gets this kernel's vDSO, which is the
 * same (plan.ts checked).
 */
function pieces(pm: PageMap, vmas: VmaEntry[], skipped?: Piece[]): Piece[] {
  const sorted = vmas
    .filter((v) => !(v.status & VMA.AREA_VSYSCALL))
    .sort((a, b) => (a.start < b.start ? -1 : 1));
  const out: Piece[] = [];
  let vi = 0;
  for (const r of pageSources(pm).slices) {
    const end = r.addr + r.len;
    let at = r.addr;
    while (vi > 0 && sorted[vi - 1]!.end > at) vi--;
    while (at < end) {
      while (vi < sorted.length && sorted[vi]!.end <= at) vi++;
      const v = sorted[vi];
      if (!v || v.start > at) throw new RestoreError(`pages at ${hex(at)} are outside every VMA`);
      const stop = v.end < end ? v.end : end;
      const piece = { addr: at, len: stop - at, off: r.off + (at - r.addr), level: r.level, vma: v };
      if (!isSpecial(v)) out.push(piece);
      else skipped?.push(piece);
      at = stop;
    }
  }
  return out;
}

export interface MmResult {
  pages: number;
  /** Pages of inherited areas compared with the parent's, and how many of those stay shared (COW). */
  compared: number;
  sharedCow: number;
}

/**
 * The private VMAs of a task it inherited from its parent at fork and that may still share pages with
 * it (CRIU's check_cow_vmas): the same bounds in both images, private (not hugetlb, not special), the
 * same growsdown/anonymous/droppable type and, for file mappings, the same file; and really there
 * after the fork (MADV_DONTFORK areas are not, merged neighbours are not one area any more).
 */
function inheritedVmas(
  vmas: VmaEntry[],
  parentVmas: VmaEntry[] | undefined,
  maps: Array<{ start: bigint; end: bigint }>,
): Set<VmaEntry> {
  const out = new Set<VmaEntry>();
  if (!parentVmas?.length) return out;
  const cowable = (v: VmaEntry) =>
    (v.status & VMA.AREA_REGULAR) !== 0 &&
    (v.status & (VMA.ANON_PRIVATE | VMA.FILE_PRIVATE)) !== 0 &&
    !(v.status & (VMA.ANON_SHARED | VMA.FILE_SHARED | VMA.AREA_MEMFD | VMA.AREA_SYSVIPC)) &&
    !isSpecial(v) &&
    !(v.flags & MAP_HUGETLB);
  const parentAt = new Map(parentVmas.filter(cowable).map((p) => [p.start, p]));
  const mapped = new Set(maps.map((m) => `${m.start}-${m.end}`));
  for (const v of vmas) {
    const p = parentAt.get(v.start);
    if (!p || p.end !== v.end || !cowable(v)) continue;
    if ((v.flags ^ p.flags) & (MAP_GROWSDOWN | MAP_ANONYMOUS | MAP_DROPPABLE)) continue;
    if (!(v.flags & MAP_ANONYMOUS) && v.shmid !== p.shmid) continue;
    if (mapped.has(`${v.start}-${v.end}`)) out.add(v);
  }
  return out;
}

/** Rebuild the memory of the task `inj` runs in, from `mm` and `pm`; `progress` is told the pages filled. */
export function restoreMm(
  inj: Injector,
  pid: number,
  mm: MmEntry,
  pm: PageMap,
  ctx: MmContext,
  vdsoNow: VdsoLayout,
  progress?: (pages: number) => void,
): MmResult {
  // Guard regions are no mappings: installed at the end, in the VMAs they belong to.
  const vmas = (mm.vmas ?? []).filter((v) => !isGuard(v));
  const guards = (mm.vmas ?? []).filter(isGuard);
  const vdsoPages: Piece[] = [];
  const parts = pieces(pm, vmas, vdsoPages);
  const hasPages = new Set<VmaEntry>(parts.map((p) => p.vma));
  const shared = (v: VmaEntry) => (v.status & (VMA.FILE_SHARED | VMA.ANON_SHARED)) !== 0;
  // Mapped writable first: was writable once (has its own pages) and is not code (a patched text page).
  const writableFirst = (v: VmaEntry) =>
    !shared(v) && (v.prot & PROT_WRITE) === 0 && (v.prot & PROT_EXEC) === 0 && hasPages.has(v);

  // 1. The stub's leftovers, and the vDSO to its dumped place.
  const calls: Call[] = [];
  const names: string[] = [];
  const add = (what: string, c: Call) => {
    calls.push(c);
    names.push(what);
  };
  const maps = mapsOf(pid);
  // Areas inherited from the parent stay as they are (their pages shared copy-on-write); only the
  // pages that differ are written (step 3).
  const inherited = inheritedVmas(vmas, ctx.parentVmas, maps);
  const keep = new Set([...inherited].map((v) => `${v.start}-${v.end}`));
  const scratchEnd = ctx.scratch.base + BigInt(ctx.scratch.size);
  for (const m of maps) {
    if (m.path === '[vsyscall]' || m.path === '[vdso]' || m.path === '[vvar]' || m.path === '[vvar_vclock]')
      continue;
    if (m.start >= ctx.scratch.base && m.end <= scratchEnd) continue;
    if (keep.has(`${m.start}-${m.end}`)) continue;
    add(`munmap ${m.path || 'anon'} ${hex(m.start)}`, [SYS.munmap, m.start, m.end - m.start]);
  }
  vdsoMoves(vmas, maps, vdsoNow, ctx.parking, add);

  // 2. Every VMA at its place; those backed by a file (or a memfd) grouped by criu-ts's fd for it.
  const fileVmas = new Map<number, { what: string; vmas: VmaEntry[] }>();
  for (const v of vmas) {
    if (isSpecial(v) || v.status & VMA.AREA_SYSVIPC || inherited.has(v)) continue;
    const prot = v.prot | (writableFirst(v) ? PROT_WRITE : 0);
    const flags = (v.flags & MAP_KEEP) | MAP_FIXED;
    const source = mappingSource(v, ctx);
    if (source) {
      const group = fileVmas.get(source.fd) ?? { what: source.what, vmas: [] };
      group.vmas.push(v);
      fileVmas.set(source.fd, group);
      continue;
    }
    // An AIO ring's copy is private memory until its new ring replaces it (aio/restore.ts).
    const anon = v.status & VMA.AREA_AIORING ? MAP_PRIVATE | MAP_FIXED : flags;
    add(`mmap ${hex(v.start)}`, [SYS.mmap, v.start, v.end - v.start, prot, anon | MAP_ANONYMOUS, -1, 0]);
  }
  // The file's fd in the task: pidfd_getfd gives the lowest free fd, which is 0 (only the helper
  // pidfd, far above, is open now), or the first gap of a shared table already filled.
  const free = ctx.freeFd ?? 0;
  for (const [nodeFd, { what, vmas: list }] of fileVmas) {
    add(`pidfd_getfd of ${what}`, [SYS.pidfd_getfd, ctx.pidfd, nodeFd, 0]);
    for (const v of list) {
      const prot = v.prot | (writableFirst(v) ? PROT_WRITE : 0);
      add(`mmap ${hex(v.start)} of ${what}`, [
        SYS.mmap,
        v.start,
        v.end - v.start,
        prot,
        (v.flags & MAP_KEEP & ~MAP_ANONYMOUS) | MAP_FIXED,
        free,
        v.pgoff,
      ]);
    }
    add('close', [SYS.close, free]);
  }
  // SysV segments: shmat maps a whole segment; parts mprotect()ed since get their prot back.
  for (const a of sysvAttachments(vmas, (id) => ctx.shmem.segmentSize(id), pid)) {
    add(`shmat of SysV segment ${a.id} at ${hex(a.start)}`, [SYS.shmat, a.id, a.start, a.shmflg]);
    for (const f of a.fixups)
      add(`mprotect ${hex(f.start)} of SysV ${a.id}`, [SYS.mprotect, f.start, f.len, f.prot]);
  }
  const r1 = inj.batch(calls, (i) => names[i] ?? `call ${i}`);
  calls.forEach((c, i) => {
    if (
      (c[0] === SYS.mmap || c[0] === SYS.shmat) &&
      BigInt.asUintN(64, r1[i]!) !== BigInt(c[c[0] === SYS.mmap ? 1 : 2]!)
    )
      throw new RestoreError(`pid ${pid}: ${names[i]} landed at ${hex(BigInt.asUintN(64, r1[i]!))}`);
    if (c[0] === SYS.pidfd_getfd && r1[i] !== BigInt(free))
      throw new RestoreError(`pid ${pid}: ${names[i]} gave fd ${r1[i]}, not ${free}`);
  });

  // 3. Contents: inherited areas keep the pages equal to the parent's (still shared), get the others
  // written and lose those the task did not have.
  // --auto-dedup: what is read is punched out of the images.
  const punch = ctx.autoDedup ? new HolePuncher((m) => new RestoreError(m)) : undefined;
  const fromParent = parts.filter((p) => inherited.has(p.vma));
  let pages: number;
  let cow: { compared: number; written: number };
  try {
    cow = restoreInherited(inj, pid, pm, fromParent, inherited, punch);
    if (progress && fromParent.length) progress(pagesOf(fromParent));
    pages =
      cow.written +
      fillPages(
        inj,
        pid,
        pm,
        parts.filter((p) => !inherited.has(p.vma)),
        ctx,
        (v) => (v.prot & PROT_WRITE) !== 0 || writableFirst(v),
        progress,
        punch,
      );
    // The vDSO's pages are not needed either (CRIU reads them, and punches them with the rest).
    if (punch) {
      const files = pageSources(pm).files;
      for (const p of vdsoPages) punch.punch(files[p.level]!, p.off, p.len);
    }
  } finally {
    punch?.close();
  }

  // 4. Final protections (an inherited area has the parent's), madvise.
  const down: Call[] = [];
  for (const v of vmas)
    if (!isSpecial(v) && (writableFirst(v) || inherited.has(v)))
      down.push([SYS.mprotect, v.start, v.end - v.start, v.prot]);
  inj.batch(down, (i) => `mprotect ${hex(BigInt(down[i]![1]!))}`);
  // AIO rings, once every VMA is in place (the copies mapped in step 2 give way to new rings).
  restoreAioRings(inj, pid, mm, {
    pidfd: ctx.pidfd,
    freeFd: ctx.freeFd ?? 0,
    devNull: () => ctx.files.devNull(),
  });
  const advice: Call[] = [];
  for (const v of vmas) {
    if (isSpecial(v) || !v.madv) continue;
    for (const bit of MADVISE_BITS)
      if (v.madv & (1n << BigInt(bit))) advice.push([SYS.madvise, v.start, v.end - v.start, bit]);
  }
  if (advice.length) {
    const res = inj.batchTolerant(advice);
    res.forEach((x, i) => {
      if (x < 0n)
        ctx.log(`pid ${pid}: madvise(${hex(BigInt(advice[i]![1]!))}, ${advice[i]![3]}) failed: errno ${-x}`);
    });
  }
  // Guard pages: after the contents (installing one drops the page under it).
  const guard: Call[] = guards.map((g) => [SYS.madvise, g.start, g.end - g.start, MADV_GUARD_INSTALL]);
  if (guard.length) inj.batch(guard, (i) => `madvise(MADV_GUARD_INSTALL) at ${hex(guards[i]!.start)}`);

  // 5. mm fields, auxv, exe.
  setMmMap(inj, pid, mm, ctx);
  return { pages, compared: cow.compared, sharedCow: cow.compared - cow.written };
}

/**
 * Inherited areas: each page of the image is compared with what the task got from its parent and
 * written (through /proc/PID/mem, whatever the protection) only where it differs; pages the task has
 * from its parent but did not have at the dump are dropped (MADV_DONTNEED: zero again, or the file's).
 */
function restoreInherited(
  inj: Injector,
  pid: number,
  pm: PageMap,
  parts: Piece[],
  inherited: Set<VmaEntry>,
  punch?: HolePuncher,
): { compared: number; written: number } {
  if (inherited.size === 0) return { compared: 0, written: 0 };
  let compared = 0;
  let written = 0;
  const mine = new Set<bigint>();
  const files = new LevelFiles(pm);
  try {
    const want = Buffer.allocUnsafe(Number(FILL_CHUNK));
    const have = Buffer.allocUnsafe(Number(FILL_CHUNK));
    for (const c of chunksOf(parts, FILL_CHUNK)) {
      const n = Number(c.len);
      files.read(c, want);
      punch?.punch(files.path(c.level), c.off, c.len);
      if (readProcMem(pid, c.addr, have.subarray(0, n)) !== n)
        throw new RestoreError(`pid ${pid}: cannot read inherited memory at ${hex(c.addr)}`);
      for (let off = 0; off < n; off += Number(PAGE)) {
        const at = c.addr + BigInt(off);
        mine.add(at);
        compared++;
        const page = want.subarray(off, off + Number(PAGE));
        if (page.equals(have.subarray(off, off + Number(PAGE)))) continue;
        if (writeProcMem(pid, at, page) !== page.length)
          throw new RestoreError(`pid ${pid}: cannot write the page at ${hex(at)}`);
        written++;
      }
    }
  } finally {
    files.close();
  }
  // What the parent had there and the task had not.
  const ranges: Array<{ at: bigint; len: bigint }> = [];
  const proc = ProcDir.open(pid);
  try {
    const pagemap = proc.pagemap();
    for (const v of inherited) {
      const skip = PAGE_IS_PFNZERO | (v.status & VMA.FILE_PRIVATE ? PAGE_IS_FILE : 0);
      const { regions } = pagemap.scan(v.start, v.end, {
        categoryAnyofMask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        categoryInverted: skip,
        categoryMask: skip,
        returnMask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
      });
      for (const r of regions)
        for (let at = r.start; at < r.end; at += PAGE) {
          if (mine.has(at)) continue;
          const last = ranges[ranges.length - 1];
          if (last && last.at + last.len === at) last.len += PAGE;
          else ranges.push({ at, len: PAGE });
        }
    }
  } finally {
    proc.close();
  }
  const drop: Call[] = ranges.map((r) => [SYS.madvise, r.at, r.len, MADV_DONTNEED]);
  if (drop.length) inj.batch(drop, (i) => `madvise(MADV_DONTNEED) at ${hex(BigInt(drop[i]![1]!))}`);
  return { compared, written };
}

/**
 * criu-ts's fd a VMA is mapped from, or undefined for anonymous memory. Shared mappings that can
 * write need a read-write fd: for memfds as fdflags says (a read-only part of a writable mapping may be
 * made writable again), for files as their prot says (as restore.ts opened them beforehand).
 */
function mappingSource(v: VmaEntry, ctx: MmContext): { fd: number; what: string } | undefined {
  const sharedFile = (v.status & VMA.FILE_SHARED) !== 0;
  if (v.status & VMA.AREA_MEMFD) {
    const mayWrite = v.fdflags !== undefined ? (v.fdflags & 3) === 2 : (v.prot & PROT_WRITE) !== 0;
    return {
      fd: ctx.shmem.memfdMapFd(Number(v.shmid), sharedFile && mayWrite),
      what: `memfd file ${v.shmid}`,
    };
  }
  if (v.status & VMA.ANON_SHARED) return { fd: ctx.shmem.anonFd(v.shmid), what: `shared memory ${v.shmid}` };
  // A packet socket's rings: mapped from the socket itself (files/packet/restore.ts made its rings).
  if (v.status & VMA.AREA_SOCKET)
    return { fd: ctx.files.fd(Number(v.shmid), 'fd'), what: `socket ${v.shmid}` };
  if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) {
    const id = Number(v.shmid);
    return { fd: ctx.files.fd(id, mapsWritable(v) ? 'write' : 'read'), what: `file ${id}` };
  }
  return undefined;
}

/**
 * Whether a file mapping needs a read-write file: a shared one whose file was open read-write (fdflags,
 * so a part made read-only since can be made writable again), or, without fdflags, a writable one.
 */
export function mapsWritable(v: VmaEntry): boolean {
  if ((v.status & VMA.FILE_SHARED) === 0) return false;
  return v.fdflags !== undefined ? (v.fdflags & 3) === 2 : (v.prot & PROT_WRITE) !== 0;
}

function mapsOf(pid: number) {
  const d = ProcDir.open(pid);
  try {
    return d.maps();
  } finally {
    d.close();
  }
}

/** mremap calls moving this kernel's [vvar]/[vvar_vclock]/[vdso] of the task to the dumped place. */
function vdsoMoves(
  vmas: VmaEntry[],
  maps: ReturnType<typeof mapsOf>,
  now: VdsoLayout,
  parking: bigint,
  add: (what: string, c: Call) => void,
): void {
  const cur = maps.filter((m) => m.path === '[vvar]' || m.path === '[vvar_vclock]' || m.path === '[vdso]');
  const vvar = vmas.find((v) => v.status & VMA.AREA_VVAR);
  const vdso = vmas.find((v) => v.status & VMA.AREA_VDSO);
  if (!vvar && !vdso) {
    for (const m of cur) add(`munmap ${m.path}`, [SYS.munmap, m.start, m.end - m.start]);
    return;
  }
  // One offset for everything: the dumped [vdso] (or [vvar]) minus ours.
  const anchorNow = vdso ? cur.find((m) => m.path === '[vdso]') : cur.find((m) => m.path === '[vvar]');
  const anchorThen = vdso ?? vvar;
  if (!anchorNow || !anchorThen)
    throw new RestoreError('the vDSO of the stub is not where this kernel puts it');
  const delta = anchorThen.start - anchorNow.start;
  if (delta === 0n) return;
  if (now.vdso === undefined && now.vvar === undefined) return;
  let lo = cur[0]!.start;
  let hi = cur[0]!.end;
  for (const m of cur) {
    if (m.start < lo) lo = m.start;
    if (m.end > hi) hi = m.end;
  }
  const overlaps = lo + delta < hi && lo < hi + delta;
  const move = (from: bigint, len: bigint, to: bigint, what: string) =>
    add(`mremap ${what}`, [SYS.mremap, from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to]);
  if (overlaps) {
    for (const m of cur) move(m.start, m.end - m.start, parking + (m.start - lo), `${m.path} aside`);
    for (const m of cur) move(parking + (m.start - lo), m.end - m.start, m.start + delta, m.path);
  } else {
    for (const m of cur) move(m.start, m.end - m.start, m.start + delta, m.path);
  }
}

/** A stretch of page data: `len` bytes for `addr`, at `off` in the pages file of level `level`. */
interface Chunk {
  addr: bigint;
  len: bigint;
  off: bigint;
  level: number;
}

/** The pages of pieces or chunks. */
const pagesOf = (parts: readonly { len: bigint }[]) => parts.reduce((n, p) => n + Number(p.len / PAGE), 0);

/** Split pieces into chunks of at most `size` bytes. */
function chunksOf(parts: Piece[], size: bigint): Chunk[] {
  const out: Chunk[] = [];
  for (const p of parts) {
    for (let at = 0n; at < p.len; at += size) {
      out.push({
        addr: p.addr + at,
        len: p.len - at < size ? p.len - at : size,
        off: p.off + at,
        level: p.level,
      });
    }
  }
  return out;
}

/**
 * criu-ts's own read-only fds of the pages files of a pagemap's levels (this dump, parent/, ...), opened
 * as they are needed.
 */
class LevelFiles {
  private readonly fds = new Map<number, number>();
  private readonly files: string[];
  constructor(pm: PageMap) {
    this.files = pageSources(pm).files;
  }

  path(level: number): string {
    const f = this.files[level];
    if (f === undefined) throw new RestoreError(`no pages file for level ${level} of the images`);
    return f;
  }

  fd(level: number): number {
    let fd = this.fds.get(level);
    if (fd === undefined) {
      fd = openImageForRead(this.path(level)).fd;
      this.fds.set(level, fd);
    }
    return fd;
  }

  /** The data of `c` into buf[0, c.len), whole or a RestoreError naming the file. */
  read(c: Chunk, buf: Buffer): void {
    readAll(this.fd(c.level), buf, Number(c.len), c.off, this.path(c.level));
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** `n` bytes at `off` of `fd` into buf[0, n), or a RestoreError naming `file`. */
function readAll(fd: number, buf: Buffer, n: number, off: bigint, file: string): void {
  let got = 0;
  while (got < n) {
    const r = readSync(fd, buf, got, n - got, Number(off) + got);
    if (r === 0) throw new RestoreError(`${file}: page data missing at ${off + BigInt(got)}`);
    got += r;
  }
}

/**
 * Page contents; returns the number of pages written, `progress` told the pages of each part once it is
 * in. The task fills its writable VMAs itself (MADV_POPULATE_WRITE + pread64 from the pages images it got
 * from criu-ts: one per level of an incremental chain it needs); with more than one CPU and enough
 * memory, criu-ts meanwhile fills the other half from its side (pread into a buffer, process_vm_writev),
 * so that two CPUs allocate and copy pages at once. Pages of VMAs that are not writable go through
 * /proc/PID/mem. With `punch` (--auto-dedup), what is read is punched out of the images.
 */
function fillPages(
  inj: Injector,
  pid: number,
  pm: PageMap,
  parts: Piece[],
  ctx: MmContext,
  writable: (v: VmaEntry) => boolean,
  progress?: (pages: number) => void,
  punch?: HolePuncher,
): number {
  if (parts.length === 0) return 0;
  const direct = parts.filter((p) => writable(p.vma));
  const viaMem = parts.filter((p) => !writable(p.vma));
  const files = pageSources(pm).files;
  let pages = 0;
  for (const p of parts) pages += Number(p.len / PAGE);
  if (direct.length) {
    const bytes = new Map<number, bigint>();
    const reads = new Map<number, bigint>();
    for (const p of direct) {
      bytes.set(p.level, (bytes.get(p.level) ?? 0n) + p.len);
      reads.set(p.level, (reads.get(p.level) ?? 0n) + 1n);
    }
    const sources = new Map<number, PagesSource>();
    try {
      for (const [level, total] of bytes) {
        const file = files[level];
        if (file === undefined) throw new RestoreError(`pid ${pid}: no pages file for level ${level}`);
        const scattered = total < DIRECT_MIN_READ * reads.get(level)!;
        sources.set(level, pagesSource(ctx.files.rawFd(file), scattered ? 0n : total, file));
      }
      let total = 0n;
      for (const p of direct) total += p.len;
      fillWritable(inj, pid, direct, ctx, sources, total, progress, punch);
    } finally {
      for (const s of sources.values()) if (s.own) closeSync(s.fd);
    }
  }
  if (viaMem.length) {
    const lf = new LevelFiles(pm);
    try {
      for (const p of viaMem) {
        const buf = Buffer.allocUnsafe(Number(p.len));
        lf.read(p, buf);
        punch?.punch(lf.path(p.level), p.off, p.len);
        if (writeProcMem(pid, p.addr, buf) !== buf.length)
          throw new RestoreError(`pid ${pid}: cannot write ${buf.length} bytes at ${hex(p.addr)}`);
        progress?.(Number(p.len / PAGE));
      }
    } finally {
      lf.close();
    }
  }
  return pages;
}

/** Where pages are read from: criu-ts's fd of a pages image or its own O_DIRECT one (`own`: closed after). */
interface PagesSource {
  fd: number;
  own: boolean;
  direct: boolean;
  file: string;
}

/**
 * The fd pages are read from: a second fd of pages-N.img opened O_DIRECT, which reads straight into the
 * task's pages (or criu-ts's buffer) without going through the page cache: criu-ts's dump writes the
 * image past the cache, and filling fresh page cache on a VM whose RAM the host backs on first touch
 * costs as much as filling the task (512 MiB here: 0.7 s with O_DIRECT, 1.6 s through the cache, and
 * 1.0 s even when the image was in the cache already). An image mostly dirty in the cache (CRIU just
 * wrote it) is read from there: O_DIRECT would first write it out. criu-ts's own fd where O_DIRECT is
 * refused, or below DIRECT_MIN.
 */
function pagesSource(fd: number, bytes: bigint, file: string): PagesSource {
  const plain = { fd, own: false, direct: false, file };
  if (bytes < DIRECT_MIN) return plain;
  const cached = cachestat(fd);
  if (cached && BigInt(cached.dirty + cached.writeback) * PAGE * 2n >= bytes) return plain;
  try {
    const direct = openSync(procPath('self', 'fd', fd), constants.O_RDONLY | constants.O_DIRECT);
    return { fd: direct, own: true, direct: true, file };
  } catch {
    return plain;
  }
}

/**
 * The pages of writable VMAs, in rounds of at most ROUND_BYTES: in each, the task runs a table of
 * MADV_POPULATE_WRITE + pread64 while criu-ts fills its share of the round from here. The task gets one
 * fd per pages file (level) it reads from; MADV_POPULATE_WRITE covers neighbouring chunks of any level
 * at once, so that a chain that alternates levels page by page still populates in large calls.
 */
function fillWritable(
  inj: Injector,
  pid: number,
  parts: Piece[],
  ctx: MmContext,
  sources: Map<number, PagesSource>,
  total: bigint,
  progress?: (pages: number) => void,
  punch?: HolePuncher,
): void {
  const chunks = chunksOf(parts, FILL_CHUNK);
  const both = total >= PARALLEL_MIN && availableParallelism() > 1;
  const split = both ? Math.floor(chunks.length / 2) : chunks.length;
  const mine = chunks.slice(0, split);
  const ours = chunks.slice(split);
  // The task's fds of the pages files: pidfd_getfd gives the lowest free ones, the first at `free`.
  const levels = [...new Set(mine.map((c) => c.level))];
  const free = ctx.freeFd ?? 0;
  const taskFd = new Map<number, number>();
  if (levels.length) {
    const got = inj.batch(
      levels.map((l) => [SYS.pidfd_getfd, ctx.pidfd, sources.get(l)!.fd, 0] as Call),
      (i) => `pidfd_getfd of ${sources.get(levels[i]!)!.file}`,
    );
    if (got[0] !== BigInt(free))
      throw new RestoreError(`pid ${pid}: the pages image came as fd ${got[0]}, not ${free}`);
    levels.forEach((l, i) => {
      taskFd.set(l, Number(got[i]!));
    });
  }
  // The task's calls in rounds (a table holds at most tableEntries); criu-ts's share spread over them.
  // MADV_POPULATE_WRITE spans neighbouring chunks (of any level), up to FILL_CHUNK; below POPULATE_MIN,
  // page faults do it.
  interface Round {
    calls: Call[];
    want: Array<bigint | undefined>;
    bytes: bigint;
    chunks: Chunk[];
  }
  const rounds: Round[] = [];
  const build = (list: Chunk[]): Round => {
    const r: Round = { calls: [], want: [], bytes: 0n, chunks: list };
    for (let i = 0; i < list.length; ) {
      let j = i + 1;
      let len = list[i]!.len;
      while (
        j < list.length &&
        list[j - 1]!.addr + list[j - 1]!.len === list[j]!.addr &&
        len + list[j]!.len <= FILL_CHUNK
      )
        len += list[j++]!.len;
      if (len >= POPULATE_MIN) r.calls.push([SYS.madvise, list[i]!.addr, len, MADV_POPULATE_WRITE]);
      for (const c of list.slice(i, j)) {
        r.calls.push([SYS.pread64, taskFd.get(c.level)!, c.addr, c.len, c.off]);
        r.want[r.calls.length - 1] = c.len;
        r.bytes += c.len;
      }
      i = j;
    }
    return r;
  };
  let cur: Chunk[] = [];
  let calls = 0;
  let bytes = 0n;
  for (const c of mine) {
    if (cur.length && (calls + 2 > inj.s.tableEntries || bytes + c.len > ROUND_BYTES)) {
      rounds.push(build(cur));
      cur = [];
      calls = 0;
      bytes = 0n;
    }
    cur.push(c);
    calls += 2;
    bytes += c.len;
  }
  if (cur.length) rounds.push(build(cur));
  if (rounds.length === 0) rounds.push({ calls: [], want: [], bytes: 0n, chunks: [] });
  const perRound = Math.ceil(ours.length / rounds.length);
  let biggest = 0n;
  for (const c of ours) if (c.len > biggest) biggest = c.len;
  const anyDirect = [...sources.values()].some((s) => s.direct);
  const buf = ours.length
    ? anyDirect
      ? alignedBuffer(Number(biggest))
      : Buffer.allocUnsafe(Number(biggest))
    : undefined;
  for (const [i, r] of rounds.entries()) {
    const pending = r.calls.length ? inj.t.startBatch(inj.s, r.calls) : undefined;
    const share = ours.slice(i * perRound, (i + 1) * perRound);
    let ourError: unknown;
    try {
      if (buf) writeFromHere(pid, sources, share, buf, progress);
    } catch (e) {
      ourError = e;
    }
    if (!pending) {
      if (ourError !== undefined) throw ourError;
      if (punch) for (const c of share) punch.punch(sources.get(c.level)!.file, c.off, c.len);
      continue;
    }
    const res = inj.t.finishBatch(pending);
    if (!res.ok) {
      const c = r.calls[res.failIndex ?? 0]!;
      const what = c[0] === SYS.pread64 ? 'pread64 of pages' : 'madvise(MADV_POPULATE_WRITE)';
      throw new RestoreError(`pid ${pid}: ${what} at ${hex(BigInt(c[2] ?? 0))}: errno ${res.errno}`);
    }
    if (ourError !== undefined) throw ourError;
    res.results.forEach((x, k) => {
      const n = r.want[k];
      if (n !== undefined && x !== n) {
        const c = r.calls[k]!;
        const level = [...taskFd].find(([, fd]) => fd === Number(c[1]))?.[0] ?? 0;
        throw new RestoreError(
          `pid ${pid}: short read of ${sources.get(level)?.file ?? 'a pages image'} (${x} of ${n} bytes at ${c[4]})`,
        );
      }
    });
    if (punch) for (const c of [...r.chunks, ...share]) punch.punch(sources.get(c.level)!.file, c.off, c.len);
    progress?.(Number(r.bytes / PAGE));
  }
  const closes: Call[] = [...taskFd.values()].map((fd) => [SYS.close, fd]);
  if (closes.length) inj.batch(closes, () => 'close of a pages image');
}

/** criu-ts's share: the data read here into `buf` and written into the task with process_vm_writev. */
function writeFromHere(
  pid: number,
  sources: Map<number, PagesSource>,
  chunks: Chunk[],
  buf: Buffer,
  progress?: (pages: number) => void,
): void {
  for (const c of chunks) {
    const n = Number(c.len);
    const src = sources.get(c.level)!;
    readAll(src.fd, buf, n, c.off, src.file);
    const w = processVmWritev(pid, [{ local: buf, offset: 0, remote: c.addr, len: n }]);
    if (w !== n) throw new RestoreError(`pid ${pid}: wrote ${w} of ${n} bytes at ${hex(c.addr)}`);
    progress?.(n / PAGE_SIZE);
  }
}

/** struct prctl_mm_map (linux/prctl.h). */
function mmMapStruct(mm: MmEntry, auxvAddr: bigint, auxvSize: number, exeFd: number): Buffer {
  const b = Buffer.alloc(104);
  [
    mm.mm_start_code,
    mm.mm_end_code,
    mm.mm_start_data,
    mm.mm_end_data,
    mm.mm_start_brk,
    mm.mm_brk,
    mm.mm_start_stack,
    mm.mm_arg_start,
    mm.mm_arg_end,
    mm.mm_env_start,
    mm.mm_env_end,
  ].forEach((v, i) => {
    b.writeBigUInt64LE(v, i * 8);
  });
  b.writeBigUInt64LE(auxvAddr, 88);
  b.writeUInt32LE(auxvSize, 96);
  b.writeInt32LE(exeFd, 100);
  return b;
}

function setMmMap(inj: Injector, pid: number, mm: MmEntry, ctx: MmContext): void {
  const words = mm.mm_saved_auxv ?? [];
  const auxv = Buffer.alloc(words.length * 8);
  words.forEach((w, i) => {
    auxv.writeBigUInt64LE(BigInt.asUintN(64, w), i * 8);
  });
  const auxvAddr = inj.put(auxv);
  const free = ctx.freeFd ?? 0;
  const exeFd = ctx.files.fd(mm.exe_file_id, 'read');
  // A task forked from a restored parent has the exe already (the kernel refuses to replace an exe
  // that is still mapped, EBUSY): exe_fd -1 leaves it.
  const keepExe = sameFile(fstat(exeFd), exeOf(pid));
  const map = inj.put(mmMapStruct(mm, auxvAddr, auxv.length, keepExe ? -1 : free));
  const calls: Call[] = [];
  const names: string[] = [];
  const add = (name: string, c: Call) => {
    calls.push(c);
    names.push(name);
  };
  if (!keepExe) add('pidfd_getfd of the exe', [SYS.pidfd_getfd, ctx.pidfd, exeFd, 0]);
  add('prctl(PR_SET_MM_MAP)', [SYS.prctl, PR_SET_MM, PR_SET_MM_MAP, map, 104, 0]);
  if (!keepExe) add('close', [SYS.close, free]);
  if (mm.thp_disabled) add('prctl(PR_SET_THP_DISABLE)', [SYS.prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0]);
  const r = inj.batch(calls, (i) => names[i] ?? `call ${i}`);
  if (!keepExe && r[0] !== BigInt(free))
    throw new RestoreError(`pid ${pid}: the exe came as fd ${r[0]}, not ${free}`);
}

const sameFile = (a: Stat, b: Stat | undefined) => b !== undefined && a.dev === b.dev && a.ino === b.ino;

/** What /proc/PID/exe is now (undefined when the task has none). */
function exeOf(pid: number): Stat | undefined {
  const d = ProcDir.open(pid);
  try {
    const fd = d.openFile('exe');
    try {
      return fstat(fd);
    } finally {
      close(fd);
    }
  } catch {
    return undefined;
  } finally {
    d.close();
  }
}

/** prctl(PR_SET_DUMPABLE) for the end (0 and 1 only: 2 cannot be set). */
export function dumpableCall(mm: MmEntry): Call | undefined {
  const d = mm.dumpable;
  return d === 0 || d === 1 ? [SYS.prctl, PR_SET_DUMPABLE, d, 0, 0, 0] : undefined;
}

/**
 * Task `lt`'s memory, through its helper pidfd (files/install.ts placed it; `freeFd` is the lowest
 * fd free meanwhile), with the counters of stats-restore.
 */
export function restoreTaskMemory(
  run: RestoreRun,
  lt: LiveTask,
  freeFd: number,
  progress?: (pages: number) => void,
): void {
  const task = lt.plan;
  const s = run.s;
  const tMem = process.uptime() * 1000;
  const mm = restoreMm(
    lt.main,
    task.pid,
    task.mm!,
    task.pagemap!,
    {
      files: run.files,
      pidfd: lt.pidfd,
      freeFd,
      scratch: s,
      parking: parkingOf(s),
      log: (m) => run.log.warn(m),
      shmem: run.plan.shmem,
      ...(task.parent?.mm?.vmas ? { parentVmas: task.parent.mm.vmas } : {}),
      autoDedup: run.autoDedup,
    },
    ownVdsoLayout(),
    progress,
  );
  run.counts.pages += mm.pages;
  run.counts.compared += mm.compared;
  run.counts.sharedCow += mm.sharedCow;
  run.counts.memMs += process.uptime() * 1000 - tMem;
  run.log.debug(
    `pid ${task.pid}: ${mm.pages} pages written, ${mm.sharedCow} of ${mm.compared} compared shared with the parent`,
  );
}
