import { lstatSync } from 'node:fs';
import { hasVmFlag, procPath, type SmapsEntry, type VmFlagName } from '@criu-ts/bfd';
import type { VmaEntry } from '@criu-ts/images';
import { MAP_HUGE_MASK, MAP_HUGE_SHIFT, O_RDONLY, O_RDWR, O_WRONLY } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import type { SocketMapping } from '../files/packet/dump.js';
import { hugetlbSizeFlag, isShmemDev } from '../shmem/dev.js';
import type { ShmemMappings } from '../shmem/dump.js';

// mmap flags and VMA status bits as CRIU stores them (vma.proto, criu/include/image.h).

export const MAP = {
  SHARED: 0x1,
  PRIVATE: 0x2,
  /** MAP_DROPPABLE (Linux 6.11): a private mapping whose pages the kernel may drop at any time. */
  DROPPABLE: 0x8,
  ANONYMOUS: 0x20,
  GROWSDOWN: 0x100,
  LOCKED: 0x2000,
  NORESERVE: 0x4000,
  HUGETLB: 0x40000,
} as const;
export const VMA = {
  AREA_REGULAR: 1 << 0,
  AREA_STACK: 1 << 1,
  AREA_VSYSCALL: 1 << 2,
  AREA_VDSO: 1 << 3,
  AREA_HEAP: 1 << 5,
  FILE_PRIVATE: 1 << 6,
  FILE_SHARED: 1 << 7,
  ANON_SHARED: 1 << 8,
  ANON_PRIVATE: 1 << 9,
  AREA_SYSVIPC: 1 << 10,
  AREA_SOCKET: 1 << 11,
  AREA_VVAR: 1 << 12,
  AREA_AIORING: 1 << 13,
  AREA_MEMFD: 1 << 14,
  /**
   * Not a kernel VMA: a range of MADV_GUARD_INSTALL guard pages inside one, kept as a VMA entry with
   * only this status, after every real one (as CRIU 4.2 keeps them).
   */
  AREA_GUARD: 1 << 16,
  UNSUPP: 2 ** 31,
} as const;

// madvise bits recorded from VmFlags (bit = MADV_* value).
const MADV_FROM_VMFLAG: ReadonlyArray<[VmFlagName, number]> = [
  ['sr', 2], // MADV_SEQUENTIAL
  ['rr', 1], // MADV_RANDOM
  ['dc', 10], // MADV_DONTFORK
  ['dd', 16], // MADV_DONTDUMP
  ['mg', 12], // MADV_MERGEABLE
  ['hg', 14], // MADV_HUGEPAGE
  ['nh', 15], // MADV_NOHUGEPAGE
  ['wf', 18], // MADV_WIPEONFORK
];

/** One VMA with what dump needs besides the image entry. */
export interface DumpVma {
  entry: VmaEntry;
  path: string;
  /** VM_ACCOUNT ('ac'): once writable; restore maps it writable first so neighbours don't merge. */
  wasWritable: boolean;
  /** 'gu' in VmFlags: guard regions may lie in it (see guardRegions). */
  mayHoldGuards: boolean;
}

/**
 * The VMAs of a task as CRIU describes them: prot, MAP_* flags (with GROWSDOWN, LOCKED,
 * NORESERVE from VmFlags), a status saying what backs the area, and for file mappings the
 * files.img id of the file (in shmid). [vvar] and [vvar_vclock] become one area, as CRIU
 * keeps them; [vsyscall] is kept as the kernel's. Shared memory (anything on the kernel's shmem
 * device) goes to `shmem`, as CRIU 4 sorts it: SysV segments are ANON_SHARED|SYSVIPC with the
 * segment id in shmid; memfds and anonymous shared memory are MEMFD file mappings whose shmid is
 * the files.img id of a MEMFD entry.
 */
export function dumpVmas(
  pid: number,
  smaps: SmapsEntry[],
  fileId: (vma: SmapsEntry) => number,
  shmem?: ShmemMappings,
  socketId?: (m: SocketMapping) => number,
): DumpVma[] {
  const out: DumpVma[] = [];
  let before: SmapsEntry | undefined;
  for (const s of smaps) {
    const prev = out[out.length - 1];
    const last = before;
    before = s;
    if (isVvar(s.path) && prev && prev.entry.status & VMA.AREA_VVAR) {
      if (prev.entry.end !== s.start)
        throw new DumpError(`pid ${pid}: vvar areas are not next to each other`);
      prev.entry.end = s.end;
      continue;
    }
    const entry = vmaEntry(pid, s, fileId, shmem, socketId);
    // CRIU takes what it knows of a VMA's file from the VMA before it when both map the same file, all
    // but the huge page size: a hugetlb memfd mapping right after another of the same memfd keeps
    // MAP_HUGETLB alone (its memfd.img entry has the size).
    if (
      entry.status & VMA.AREA_MEMFD &&
      entry.flags & MAP.HUGETLB &&
      last &&
      s.ino !== 0n &&
      last.ino === s.ino &&
      last.major === s.major &&
      last.minor === s.minor
    )
      entry.flags &= ~MAP_HUGE_MASK;
    out.push({
      entry,
      path: s.path,
      wasWritable: hasVmFlag(s.vmFlags, 'ac'),
      mayHoldGuards: mayHoldGuards(s),
    });
  }
  return out;
}

/** The path /proc/PID/maps shows for an AIO ring (" (deleted)" after it, kept apart by bfd). */
const AIO_RING = '/[aio]';

const isVvar = (path: string) => path === '[vvar]' || path === '[vvar_vclock]';

function vmaEntry(
  pid: number,
  s: SmapsEntry,
  fileId: (vma: SmapsEntry) => number,
  shmem: ShmemMappings | undefined,
  socketId: ((m: SocketMapping) => number) | undefined,
): VmaEntry {
  let flags: number = s.shared ? MAP.SHARED : MAP.PRIVATE;
  if (hasVmFlag(s.vmFlags, 'gd')) flags |= MAP.GROWSDOWN;
  if (hasVmFlag(s.vmFlags, 'lo')) flags |= MAP.LOCKED;
  if (hasVmFlag(s.vmFlags, 'nr')) flags |= MAP.NORESERVE;
  if (hasVmFlag(s.vmFlags, 'ht')) flags |= MAP.HUGETLB;
  // A droppable mapping is private by nature; mmap wants MAP_DROPPABLE instead of MAP_PRIVATE.
  if (hasVmFlag(s.vmFlags, 'dp')) flags = (flags & ~MAP.PRIVATE) | MAP.DROPPABLE;
  let madv = 0n;
  for (const [flag, bit] of MADV_FROM_VMFLAG) if (hasVmFlag(s.vmFlags, flag)) madv |= 1n << BigInt(bit);

  let status = 0;
  let shmid = 0n;
  let fdflags: number | undefined;
  const where = `pid ${pid} VMA ${s.start.toString(16)}-${s.end.toString(16)} ${s.path}`;
  if (hasVmFlag(s.vmFlags, 'ht')) {
    // hugetlb: the page size goes into the flags as mmap wants it (MAP_HUGE_2MB...), as CRIU keeps it.
    flags |= hugePageSizeFlag(s.kernelPageSize, where);
    // fdflags: how the kernel opened the file behind (its map_files link), which CRIU records for any
    // VMA that has one; restore needs it only for shared ones.
    if (!s.shared && s.path.startsWith(ANON_HUGEPAGE)) {
      status = VMA.AREA_REGULAR | VMA.ANON_PRIVATE;
      flags |= MAP.ANONYMOUS;
      fdflags = mappedFileFlags(pid, s);
    } else if (hugetlbSizeFlag(s.major, s.minor) === undefined) {
      throw new DumpError(
        `${where}: hugetlb memory outside the kernel's own hugetlbfs (a mounted hugetlbfs, or a kernel without hugetlb memfds) is not supported yet`,
      );
    } else if (s.path.startsWith('/SYSV')) {
      // A SysV SHM_HUGETLB segment: as any SysV one (ipcns-shm gives its hugetlb flags); CRIU keeps
      // MAP_HUGETLB alone in the VMA's flags.
      if (!shmem) throw new DumpError(`${where}: shared memory mappings need a shared memory dumper`);
      if (!s.shared) throw new DumpError(`${where}: a private SysV mapping cannot exist`);
      flags = (flags & ~MAP_HUGE_MASK) | MAP.ANONYMOUS;
      fdflags = hasVmFlag(s.vmFlags, 'mw') ? O_RDWR : O_RDONLY;
      status = VMA.AREA_REGULAR | VMA.ANON_SHARED | VMA.AREA_SYSVIPC;
      shmid = shmem.sysv(s);
    } else {
      // Shared MAP_HUGETLB memory and hugetlb memfds, as CRIU 4 dumps them: a mapping of a hugetlb
      // memfd (memfd.img gives its MFD_HUGETLB flags), shared or private.
      if (!shmem) throw new DumpError(`${where}: shared memory mappings need a shared memory dumper`);
      fdflags = mappedFileFlags(pid, s) ?? (s.shared && hasVmFlag(s.vmFlags, 'mw') ? O_RDWR : O_RDONLY);
      status = VMA.AREA_REGULAR | VMA.AREA_MEMFD | (s.shared ? VMA.FILE_SHARED : VMA.FILE_PRIVATE);
      shmid = shmem.memfd(s, fdflags);
    }
  } else if (isShmemDev(s.major, s.minor)) {
    if (!shmem) throw new DumpError(`${where}: shared memory mappings need a shared memory dumper`);
    // As CRIU records it: writable through this mapping's file (VM_MAYWRITE on a shared mapping).
    fdflags = s.shared && hasVmFlag(s.vmFlags, 'mw') ? O_RDWR : O_RDONLY;
    if (s.path.startsWith('/SYSV')) {
      if (!s.shared) throw new DumpError(`${where}: a private SysV mapping cannot exist`);
      status = VMA.AREA_REGULAR | VMA.ANON_SHARED | VMA.AREA_SYSVIPC;
      flags |= MAP.ANONYMOUS;
      shmid = shmem.sysv(s);
    } else {
      status = VMA.AREA_REGULAR | VMA.AREA_MEMFD | (s.shared ? VMA.FILE_SHARED : VMA.FILE_PRIVATE);
      shmid = shmem.memfd(s, fdflags);
    }
  } else if (s.path.startsWith('/memfd:') || s.path.startsWith('/SYSV')) {
    throw new DumpError(`${where}: shared memory outside the kernel's shmem is not supported yet`);
  } else if (s.path === '[vsyscall]') {
    // as CRIU writes it: an anonymous private area the kernel provides (restore leaves it be)
    status = VMA.AREA_VSYSCALL | VMA.ANON_PRIVATE;
    flags |= MAP.ANONYMOUS;
  } else if (s.path.startsWith('[') && !s.path.startsWith('[anon:') && !special(s.path)) {
    throw new DumpError(`${where}: unsupported special mapping`);
  } else if (s.path === AIO_RING && s.deleted) {
    if (!s.shared) throw new DumpError(`${where}: a private mapping named like an AIO ring`);
    // io_setup(2)'s ring, as CRIU records it: AIORING alone (no file to open; restore makes a ring
    // again with io_setup and moves it here, see aio/). Its pages are dumped whole.
    status = VMA.AREA_AIORING;
    fdflags = mappedFileFlags(pid, s);
  } else if (s.path.startsWith('socket:[')) {
    // A packet socket's rings (CRIU's VMA_AREA_SOCKET): the socket's files.img id in shmid; no pages, the
    // rings are made again with the socket and mapped from it.
    if (!socketId) throw new DumpError(`${where}: socket mappings need the socket drivers`);
    status = VMA.AREA_REGULAR | VMA.AREA_SOCKET;
    shmid = BigInt(socketId({ start: s.start, end: s.end, pgoff: s.pgoff, ino: s.ino, where }));
    fdflags = mappedFileFlags(pid, s);
  } else if (s.path.startsWith('/') && s.ino !== 0n) {
    // Pages of shared file mappings live in the file; private ones are copied when written.
    status = VMA.AREA_REGULAR | (s.shared ? VMA.FILE_SHARED : VMA.FILE_PRIVATE);
    shmid = BigInt(fileId(s));
    fdflags = mappedFileFlags(pid, s);
  } else {
    if (s.shared) throw new DumpError(`${where}: shared memory that is not on shmem`);
    status = VMA.AREA_REGULAR | VMA.ANON_PRIVATE;
    flags |= MAP.ANONYMOUS;
    if (s.path === '[vdso]') status |= VMA.AREA_VDSO;
    if (isVvar(s.path)) status |= VMA.AREA_VVAR;
    if (s.path === '[heap]') status |= VMA.AREA_HEAP;
  }
  if ((hasVmFlag(s.vmFlags, 'io') || hasVmFlag(s.vmFlags, 'pf')) && !(status & VMA.AREA_VVAR)) {
    throw new DumpError(`${where}: device (VM_IO/VM_PFNMAP) mappings cannot be dumped`);
  }
  const entry: VmaEntry = {
    start: s.start,
    end: s.end,
    pgoff: s.pgoff,
    shmid,
    prot: s.prot,
    flags,
    status,
    fd: -1n,
  };
  if (madv !== 0n) entry.madv = madv;
  if (fdflags !== undefined) entry.fdflags = fdflags;
  return entry;
}

/**
 * How the mapped file is open (CRIU's vma_get_mapfile_flags): the owner bits of its map_files link
 * say whether the mapping's file can read and write. A shared mapping made read-only from a file open
 * read-write may be made writable again (mprotect): restore needs a read-write file for it.
 */
function mappedFileFlags(pid: number, s: SmapsEntry): number | undefined {
  let mode: number;
  try {
    mode = lstatSync(procPath(pid, 'map_files', `${s.start.toString(16)}-${s.end.toString(16)}`)).mode;
  } catch {
    return undefined; // no map_files link: restore goes by the protection
  }
  switch (mode & 0o600) {
    case 0o200:
      return O_WRONLY;
    case 0o400:
      return O_RDONLY;
    case 0o600:
      return O_RDWR;
    default:
      return undefined;
  }
}

/** What the kernel names the file behind anonymous hugetlb memory (MAP_ANONYMOUS|MAP_HUGETLB). */
const ANON_HUGEPAGE = '/anon_hugepage';

/** MAP_HUGE_<size> of a hugetlb VMA whose KernelPageSize (smaps, kB) is `kb`. */
function hugePageSizeFlag(kb: number, where: string): number {
  const bytes = kb * 1024;
  const log = Math.log2(bytes);
  if (!Number.isInteger(log) || log < 12) throw new DumpError(`${where}: odd huge page size ${kb} kB`);
  return log << MAP_HUGE_SHIFT;
}

function special(path: string): boolean {
  return ['[heap]', '[stack]', '[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]'].includes(path);
}

/** A guard region entry (VMA.AREA_GUARD), not a mapping. */
export const isGuard = (e: VmaEntry): boolean => e.status === VMA.AREA_GUARD;

/** Whether a VMA may hold guard pages ('gu' in VmFlags: MADV_GUARD_INSTALL was used on it). */
export const mayHoldGuards = (s: SmapsEntry): boolean => hasVmFlag(s.vmFlags, 'gu');

/** Whether dump copies the pages of this VMA (private memory the task owns). */
export function isPrivateMemory(e: VmaEntry): boolean {
  if (e.status === VMA.AREA_AIORING) return true; // the ring's content, as CRIU keeps it
  return (
    (e.status & VMA.AREA_REGULAR) !== 0 &&
    (e.status & (VMA.ANON_PRIVATE | VMA.FILE_PRIVATE)) !== 0 &&
    !(e.status & VMA.AREA_VVAR) &&
    // Pages the kernel may drop at any time are not kept (CRIU skips them too): they come back zero.
    !(e.flags & MAP.DROPPABLE)
  );
}
