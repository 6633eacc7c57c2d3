// Shared memory on the restore side. Every object is made once, in criu-ts, before the first task
// exists, and the tasks map it (restore/mm.ts) or get it as an fd (files/memfd) by pidfd_getfd, so
// tasks that shared an object share one again:
//   - memfd inodes (memfd.img) become a memfd of the same name, size, owner, mode and contents; their
//     seals come last, once every task has mapped it (F_SEAL_FUTURE_WRITE forbids later writable maps);
//   - anonymous shared memory is a memfd too (CRIU 4 images dump it as a memfd mapping; older images
//     as VMA_ANON_SHARED, which gets a nameless memfd): /proc/PID/maps then shows "/memfd:..." where
//     it showed "/dev/zero (deleted)", which CRIU accepts as well;
//   - SysV segments (ipcns-shm-NSID.img) live in the host's IPC namespace and outlive a killed task.
//     A segment whose id still holds the same key and size is attached again as it is (its contents
//     are the live ones, which may be newer than the images); otherwise it is created again with its
//     id (kernel/shm_next_id), owner, mode and contents. One that was removed (IPC_RMID) while
//     attached is removed again once the tasks are attached, so that it goes with its last user.
//     shmat runs in the task (restore/mm.ts). The creator's uid/gid become root's.

import { procPath, readSysctl, writeSysctl } from '@criu-ts/bfd';
import type { FileEntry, ImageDir, IpcShmEntry, MemfdInodeEntry, VmaEntry } from '@criu-ts/images';
import {
  close,
  F_ADD_SEALS,
  F_DUPFD_CLOEXEC,
  F_SEAL_SEAL,
  F_SETFL,
  fcntl,
  ftruncate,
  IPC_CREAT,
  IPC_EXCL,
  isSysError,
  lseek,
  MAP_HUGE_MASK,
  MAP_HUGE_SHIFT,
  MAP_HUGETLB,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_HUGETLB,
  memfdCreate,
  O_ACCMODE,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_NOCTTY,
  O_RDWR,
  O_TRUNC,
  open,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  processVmWritev,
  raw,
  SEEK_SET,
  SHM_DEST,
  SHM_EXEC,
  SHM_HUGETLB,
  SHM_RDONLY,
  SYS,
  shmat,
  shmdt,
  shmget,
  shmRemove,
  shmSetOwner,
  shmStat,
} from '@criu-ts/sys';
import { SETFL_MASK } from '../files/fd-flags.js';
import { HolePuncher } from '../mm/punch.js';
import { VMA } from '../mm/vmas.js';
import { RestoreError } from '../restore/errors.js';
import { restoreShmemContents } from './contents.js';

const PAGE = BigInt(PAGE_SIZE);
/** Flags that only matter when a file is created. */
const OPEN_ONLY = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY;
const SHM_NEXT_ID = 'kernel/shm_next_id';

const hex = (v: bigint) => `0x${v.toString(16)}`;
const pageUp = (n: bigint) => (n + PAGE - 1n) & ~(PAGE - 1n);

interface Segment {
  entry: IpcShmEntry;
  data: Buffer;
  /** Plan: attach the live segment as it is, or make it again. */
  reuse: boolean;
  created: boolean;
}

/** One attachment of a SysV segment in a task: shmat at `start`, then parts set to their own prot. */
export interface SysvAttach {
  id: number;
  start: bigint;
  shmflg: number;
  /** mprotect calls for the parts whose prot differs from what shmat gives. */
  fixups: Array<{ start: bigint; len: bigint; prot: number }>;
}

const registry = new WeakMap<ImageDir, ShmemRestore>();

export class ShmemRestore {
  private inodes: Map<bigint, MemfdInodeEntry> | undefined;
  /** memfd inode_id -> criu-ts's read-write memfd. */
  private readonly inodeFds = new Map<bigint, number>();
  /** Reopened descriptions for mappings, by inode and access mode. */
  private readonly mapFds = new Map<string, number>();
  /** Inodes whose own description a task's read-write fd got already (see openMemfd). */
  private readonly givenReadWrite = new Set<bigint>();
  private readonly pendingSeals = new Map<number, number>();
  /**
   * Legacy VMA_ANON_SHARED objects: shmid -> size (the furthest any VMA reaches), memfd, and the
   * MAP_HUGE_<size> bits of a hugetlb one.
   */
  private readonly anon = new Map<bigint, { size: bigint; fd?: number; huge?: number }>();
  private readonly segments = new Map<number, Segment>();
  private readonly sysvVmas: Array<{ pid: number; vmas: VmaEntry[] }> = [];
  /** files.img ids of the MEMFD entries mappings use -> their inode_id. */
  private readonly mappedMemfds = new Map<number, number>();

  /** --auto-dedup: the pages restored are punched out of the images (restore/restore.ts sets it). */
  autoDedup = false;

  private constructor(private readonly dir: ImageDir) {}

  /** The contents of object `shmid` into `fd`, from its pagemap (and its parent images). */
  private fill(shmid: bigint, fd: number, size: bigint, huge: boolean): void {
    const punch = this.autoDedup ? new HolePuncher((m) => new RestoreError(m)) : undefined;
    try {
      restoreShmemContents(this.dir, shmid, fd, size, huge, punch);
    } finally {
      punch?.close();
    }
  }

  /** The one instance of a restore of `dir` (plan, mm and the memfd fd driver all reach it). */
  static for(dir: ImageDir): ShmemRestore {
    let s = registry.get(dir);
    if (!s) {
      s = new ShmemRestore(dir);
      registry.set(dir, s);
    }
    return s;
  }

  // ---- plan ----------------------------------------------------------------------------------------

  /** The memfd_inode_entry `inodeId` of memfd.img; `what` names who asks, for the error. */
  inode(inodeId: number | bigint, what: string): MemfdInodeEntry {
    if (!this.inodes) {
      this.inodes = new Map();
      if (this.dir.has('memfd'))
        for (const e of this.dir.messages<MemfdInodeEntry>('memfd')) this.inodes.set(BigInt(e.inode_id), e);
    }
    const mie = this.inodes.get(BigInt(inodeId));
    if (!mie) throw new RestoreError(`${what}: memfd inode ${inodeId} is not in memfd.img`);
    return mie;
  }

  /** Check one shared memory VMA of task `pid` and note what it needs (plan time). */
  addVma(pid: number, v: VmaEntry, files: ReadonlyMap<number, FileEntry>, ipcNsId: number): void {
    const what = `mm-${pid}.img: VMA ${hex(v.start)}`;
    if (v.status & VMA.AREA_MEMFD) {
      const f = files.get(Number(v.shmid));
      if (!f?.memfd) throw new RestoreError(`${what}: shmid ${v.shmid} is not a memfd of files.img`);
      this.inode(f.memfd.inode_id, what);
      this.mappedMemfds.set(f.id, f.memfd.inode_id);
    } else if (v.status & VMA.AREA_SYSVIPC) {
      this.segment(Number(v.shmid), ipcNsId, what);
      let task = this.sysvVmas.find((t) => t.pid === pid);
      if (!task) {
        task = { pid, vmas: [] };
        this.sysvVmas.push(task);
      }
      task.vmas.push(v);
    } else if (v.status & VMA.ANON_SHARED) {
      const end = v.pgoff + (v.end - v.start);
      const o = this.anon.get(v.shmid);
      const huge = v.flags & MAP_HUGETLB ? v.flags & MAP_HUGE_MASK : undefined;
      if (!o || o.size < end) this.anon.set(v.shmid, { size: end, ...(huge !== undefined && { huge }) });
    }
  }

  private segment(id: number, ipcNsId: number, what: string): Segment {
    const have = this.segments.get(id);
    if (have) return have;
    if (!this.dir.has('ipcns-shm-%u', ipcNsId))
      throw new RestoreError(
        `${what}: SysV segment ${id} needs ${this.dir.fileName('ipcns-shm-%u', ipcNsId)}`,
      );
    for (const e of this.dir.read('ipcns-shm-%u', ipcNsId)) {
      const entry = e.message as unknown as IpcShmEntry;
      if (entry.desc.id !== id) continue;
      if (entry.in_pagemaps)
        throw new RestoreError(
          `ipcns-shm-${ipcNsId}.img: segment ${id} has its pages in pagemaps: not supported yet`,
        );
      const seg = {
        entry,
        data: (e.extra as Buffer | undefined) ?? Buffer.alloc(0),
        reuse: false,
        created: false,
      };
      this.segments.set(id, seg);
      return seg;
    }
    throw new RestoreError(`${what}: SysV segment ${id} is not in ipcns-shm-${ipcNsId}.img`);
  }

  /** Plan-time checks that need every VMA: SysV attachments, and what the host has of each segment. */
  checkPlan(): void {
    for (const t of this.sysvVmas) sysvAttachments(t.vmas, (id) => this.segments.get(id)!.entry.size, t.pid);
    for (const [id, seg] of this.segments) seg.reuse = this.canReuse(id, seg.entry);
  }

  /** Whether segment `id` is still there as dumped; throws if its id or key is taken by another one. */
  private canReuse(id: number, e: IpcShmEntry): boolean {
    const key = e.desc.key | 0;
    const live = statOrUndefined(id);
    const removed = (e.desc.mode & SHM_DEST) !== 0;
    if (live) {
      if (!removed && live.key === key && live.size === e.size) return true;
      throw new RestoreError(
        `ipcns-shm: SysV segment id ${id} is taken by another segment (key 0x${(live.key >>> 0).toString(16)}, ${live.size} bytes)`,
      );
    }
    if (key !== 0) {
      try {
        const other = shmget(key, 0, 0);
        throw new RestoreError(
          `ipcns-shm: the key 0x${e.desc.key.toString(16)} of segment ${id} is taken by segment ${other}`,
        );
      } catch (err) {
        if (err instanceof RestoreError) throw err;
      }
    }
    return false;
  }

  // ---- restore -------------------------------------------------------------------------------------

  /** The size of SysV segment `id` (of a VMA addVma() saw). */
  segmentSize(id: number): bigint {
    const seg = this.segments.get(id);
    if (!seg) throw new RestoreError(`SysV segment ${id} was not planned`);
    // A SHM_HUGETLB segment is mapped in whole huge pages (SHM_HUGE_<size>; none: the usual 2 MiB).
    const huge = seg.entry.hugetlb_flag;
    if (huge === undefined || !(huge & SHM_HUGETLB)) return seg.entry.size;
    const page = 1n << BigInt((huge >>> MAP_HUGE_SHIFT) & 0x3f || 21);
    return (seg.entry.size + page - 1n) & ~(page - 1n);
  }

  /** Make every object the VMAs need, before the first task exists. */
  prepare(): void {
    for (const inodeId of this.mappedMemfds.values()) this.inodeFd(inodeId);
    for (const [shmid, o] of this.anon) {
      if (o.fd !== undefined) continue;
      const huge = o.huge !== undefined;
      let fd: number;
      try {
        fd = memfdCreate('', MFD_CLOEXEC | (huge ? MFD_HUGETLB | (o.huge ?? 0) : 0));
      } catch (e) {
        throw new RestoreError(`shared memory ${shmid}: memfd_create: ${(e as Error).message}`);
      }
      o.fd = fd;
      ftruncate(fd, o.size);
      this.fill(shmid, fd, o.size, huge);
    }
    for (const [id, seg] of this.segments) if (!seg.reuse && !seg.created) this.createSegment(id, seg);
  }

  /**
   * A new description (criu-ts's fd) of memfd inode `inodeId`, opened with `flags` (an fd's own), or
   * the memfd_create()d description itself (a dup of it), as CRIU gives it: to a read-write mapping,
   * and to the first read-write fd. Only through that description can a task exec the memfd
   * (execveat(AT_EMPTY_PATH)): a description reopened read-write counts as a writer, and exec of a
   * file someone writes fails with ETXTBSY.
   */
  openMemfd(inodeId: number | bigint, flags: number, mapping = false): number {
    const inode = this.inodeFd(inodeId);
    const id = BigInt(inodeId);
    if ((flags & O_ACCMODE) === O_RDWR && (mapping || !this.givenReadWrite.has(id))) {
      if (!mapping) {
        this.givenReadWrite.add(id);
        fcntl(inode, F_SETFL, flags & SETFL_MASK);
        lseek(inode, 0, SEEK_SET);
      }
      return fcntl(inode, F_DUPFD_CLOEXEC, 0);
    }
    try {
      return open(procPath('self', 'fd', inode), (flags & ~OPEN_ONLY) | O_CLOEXEC);
    } catch (e) {
      throw new RestoreError(`cannot reopen memfd inode ${inodeId}: ${(e as Error).message}`);
    }
  }

  /** criu-ts's fd to map memfd file `fileId` from, read-write or read-only (kept for the restore). */
  memfdMapFd(fileId: number, write: boolean): number {
    const inodeId = this.mappedMemfds.get(fileId);
    if (inodeId === undefined) throw new RestoreError(`memfd file ${fileId} was not planned`);
    const key = `${inodeId}:${write}`;
    let fd = this.mapFds.get(key);
    if (fd === undefined) {
      fd = this.openMemfd(inodeId, write ? O_RDWR : 0, true);
      this.mapFds.set(key, fd);
    }
    return fd;
  }

  /** criu-ts's memfd standing for legacy anonymous shared memory `shmid`. */
  anonFd(shmid: bigint): number {
    const fd = this.anon.get(shmid)?.fd;
    if (fd === undefined) throw new RestoreError(`anonymous shared memory ${shmid} was not prepared`);
    return fd;
  }

  /** What is left once every task is in place: seals, and removing segments that were removed. */
  afterTasks(): void {
    for (const [fd, seals] of this.pendingSeals) {
      try {
        fcntl(fd, F_ADD_SEALS, seals);
      } catch (e) {
        throw new RestoreError(`memfd seals 0x${seals.toString(16)}: ${(e as Error).message}`);
      }
    }
    this.pendingSeals.clear();
    for (const [id, seg] of this.segments) if (seg.entry.desc.mode & SHM_DEST) shmRemove(id);
  }

  /** After a failed restore: the segments made here go again. */
  discard(): void {
    for (const [id, seg] of this.segments) {
      if (!seg.created) continue;
      try {
        shmRemove(id);
      } catch {
        // gone already
      }
      seg.created = false;
    }
  }

  close(): void {
    for (const fd of [...this.inodeFds.values(), ...this.mapFds.values()]) close(fd);
    for (const o of this.anon.values()) if (o.fd !== undefined) close(o.fd);
    this.inodeFds.clear();
    this.mapFds.clear();
    this.anon.clear();
    registry.delete(this.dir);
  }

  /** The memfd of inode `inodeId`, made and filled the first time. */
  private inodeFd(inodeId: number | bigint): number {
    const id = BigInt(inodeId);
    const have = this.inodeFds.get(id);
    if (have !== undefined) return have;
    const mie = this.inode(id, 'memfd');
    // A memfd made without MFD_ALLOW_SEALING reports exactly F_SEAL_SEAL.
    const sealable = mie.seals !== F_SEAL_SEAL;
    // A hugetlb one (MFD_HUGETLB | MFD_HUGE_<size>, as memfd_create takes them).
    const huge = mie.hugetlb_flag ?? 0;
    let fd: number;
    try {
      fd = memfdCreate(mie.name, MFD_CLOEXEC | (sealable ? MFD_ALLOW_SEALING : 0) | huge);
    } catch (e) {
      throw new RestoreError(`memfd.img: cannot create memfd:${mie.name}: ${(e as Error).message}`);
    }
    this.inodeFds.set(id, fd);
    try {
      ftruncate(fd, mie.size);
      this.fill(BigInt(mie.shmid), fd, mie.size, (huge & MFD_HUGETLB) !== 0);
    } catch (e) {
      if (e instanceof RestoreError) throw e;
      throw new RestoreError(`memfd:${mie.name} (${mie.size} bytes): ${(e as Error).message}`);
    }
    if (raw.syscall(SYS.fchown, fd, mie.uid, mie.gid) !== 0)
      throw new RestoreError(`memfd:${mie.name}: fchown(${mie.uid}, ${mie.gid}): errno ${raw.lastErrno()}`);
    if (mie.mode !== undefined && raw.syscall(SYS.fchmod, fd, mie.mode & 0o7777) !== 0)
      throw new RestoreError(`memfd:${mie.name}: fchmod(0${mie.mode.toString(8)}): errno ${raw.lastErrno()}`);
    if (sealable && mie.seals !== 0) this.pendingSeals.set(fd, mie.seals);
    return fd;
  }

  /** shmget with the dumped id (kernel/shm_next_id), then owner, mode and contents. */
  private createSegment(id: number, seg: Segment): void {
    const e = seg.entry;
    let got: number;
    writeSysctl(SHM_NEXT_ID, String(id));
    try {
      const huge = e.hugetlb_flag !== undefined && e.hugetlb_flag & SHM_HUGETLB ? e.hugetlb_flag : 0;
      got = shmget(e.desc.key | 0, e.size, (e.desc.mode & 0o777) | IPC_CREAT | IPC_EXCL | huge);
    } catch (err) {
      throw new RestoreError(`ipcns-shm: cannot create SysV segment ${id}: ${(err as Error).message}`);
    } finally {
      if (readSysctl(SHM_NEXT_ID).trim() !== '-1') writeSysctl(SHM_NEXT_ID, '-1');
    }
    if (got !== id) {
      shmRemove(got);
      throw new RestoreError(`ipcns-shm: SysV segment ${id} came back as ${got} (shm_next_id raced?)`);
    }
    seg.created = true;
    shmSetOwner(id, e.desc.uid, e.desc.gid, e.desc.mode);
    if (seg.data.length === 0) return;
    const addr = shmat(id, 0, 0);
    try {
      const n = Math.min(seg.data.length, Number(e.size));
      if (processVmWritev(process.pid, [{ local: seg.data, offset: 0, remote: addr, len: n }]) !== n)
        throw new RestoreError(`ipcns-shm: short write of SysV segment ${id}`);
    } finally {
      shmdt(addr);
    }
  }
}

function statOrUndefined(id: number): ReturnType<typeof shmStat> | undefined {
  try {
    return shmStat(id);
  } catch (e) {
    if (isSysError(e, 'EINVAL') || isSysError(e, 'EIDRM')) return undefined;
    throw e;
  }
}

/**
 * The SysV attachments of one task: a run of neighbouring VMAs of one segment from offset 0 to its
 * end is one shmat (which always maps a whole segment); parts were mprotect()ed since. A segment
 * partly unmapped cannot be attached like that and is refused.
 */
export function sysvAttachments(vmas: VmaEntry[], sizeOf: (id: number) => bigint, pid: number): SysvAttach[] {
  const sysv = vmas.filter((v) => v.status & VMA.AREA_SYSVIPC).sort((a, b) => (a.start < b.start ? -1 : 1));
  const runs: VmaEntry[][] = [];
  for (const v of sysv) {
    const run = runs[runs.length - 1];
    const last = run?.[run.length - 1];
    if (v.pgoff === 0n) runs.push([v]);
    else if (
      run &&
      last &&
      last.shmid === v.shmid &&
      last.end === v.start &&
      last.pgoff + (last.end - last.start) === v.pgoff
    )
      run.push(v);
    else
      throw new RestoreError(
        `mm-${pid}.img: SysV segment ${v.shmid} at ${hex(v.start)} is partly unmapped: not supported`,
      );
  }
  return runs.map((run) => {
    const first = run[0]!;
    const last = run[run.length - 1]!;
    const id = Number(first.shmid);
    if (last.end - first.start !== pageUp(sizeOf(id)))
      throw new RestoreError(
        `mm-${pid}.img: SysV segment ${id} at ${hex(first.start)} is partly unmapped: not supported`,
      );
    // Read-write unless every part says the attach was read-only (fdflags from VM_MAYWRITE).
    const rw = run.some((v) =>
      v.fdflags !== undefined ? (v.fdflags & O_ACCMODE) === O_RDWR : (v.prot & PROT_WRITE) !== 0,
    );
    const exec = run.some((v) => (v.prot & PROT_EXEC) !== 0);
    const given = PROT_READ | (rw ? PROT_WRITE : 0) | (exec ? PROT_EXEC : 0);
    return {
      id,
      start: first.start,
      shmflg: (rw ? 0 : SHM_RDONLY) | (exec ? SHM_EXEC : 0),
      fixups: run
        .filter((v) => v.prot !== given)
        .map((v) => ({ start: v.start, len: v.end - v.start, prot: v.prot })),
    };
  });
}
