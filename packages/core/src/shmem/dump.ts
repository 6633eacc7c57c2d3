// Shared memory on the dump side, once per object for the whole tree: memfd inodes (files/memfd) and
// anonymous shared memory, whose contents go to pagemap-shmem-SHMID.img, and SysV segments the tasks
// have attached, which go to ipcns-shm-NSID.img (ipc_shm_entry + the contents inline, which crit 3.17
// reads; CRIU 4 would put them in pagemaps). Only segments some task maps are dumped, not every segment
// of the IPC namespace: the tree lives in the host's namespace, which is not criu-ts's to take.

import type { SmapsEntry } from '@criu-ts/bfd';
import { procPath, readProcLink } from '@criu-ts/bfd';
import type { ImageDir, IpcShmEntry } from '@criu-ts/images';
import { close, O_CLOEXEC, O_RDONLY, open, PAGE_SIZE, preadFull, SHM_HUGETLB, shmStat } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import type { DumpStats } from '../dump/stats.js';
import { MemfdInodes, memfdMappingEntry } from '../files/memfd/dump.js';
import type { FileTable } from '../files/table.js';
import { dumpShmemContents } from './contents.js';
import { hugetlbSizeFlag } from './dev.js';

const PAGE = BigInt(PAGE_SIZE);

/** How dump/task.ts hands a task's shared memory mappings over; each returns the VMA's shmid. */
export interface ShmemMappings {
  /** A memfd or anonymous shared memory: the files.img id of its MEMFD entry. */
  memfd(vma: SmapsEntry, fdflags: number): bigint;
  /** A SysV segment: its id. */
  sysv(vma: SmapsEntry): bigint;
}

export class ShmemDump {
  readonly memfds: MemfdInodes;
  /** shmid (inode number) -> the device of the object whose pages went to pagemap-shmem-SHMID.img. */
  private readonly dumped = new Map<bigint, string>();
  private readonly segments = new Map<number, { entry: IpcShmEntry; data: Buffer }>();
  private ipcNsId: number | undefined;

  constructor(
    private readonly dir: ImageDir,
    private readonly files: FileTable,
    private readonly stats: DumpStats,
    private readonly nextPagesId: () => number,
  ) {
    this.memfds = new MemfdInodes(files, (shmid, fd, size, dev) => this.contents(shmid, fd, size, dev));
  }

  /** The shared memory mappings of task `pid`, in IPC namespace `ipcNsId` (ids-PID.img). */
  forTask(pid: number, ipcNsId: number): ShmemMappings {
    const range = (s: SmapsEntry) =>
      procPath(pid, 'map_files', `${s.start.toString(16)}-${s.end.toString(16)}`);
    return {
      memfd: (s, fdflags) =>
        BigInt(
          memfdMappingEntry(
            this.files,
            this.memfds,
            range(s),
            s.path,
            `${s.major}:${s.minor}:${s.ino}`,
            fdflags,
          ),
        ),
      sysv: (s) => BigInt(this.sysv(pid, s, range(s), ipcNsId)),
    };
  }

  /** Pages of one object, the first time it is seen. */
  private contents(shmid: bigint, fd: number, size: bigint, dev: string): void {
    const had = this.dumped.get(shmid);
    // Images name the pages of an object by its inode number alone (as CRIU's do): two objects of
    // one number (a shmem one and a hugetlb one) would have to share one image.
    if (had !== undefined && had !== dev)
      throw new DumpError(
        `shared memory objects on two devices have the same inode number ${shmid}: their pages cannot both go to pagemap-shmem-${shmid}.img`,
      );
    if (had !== undefined || size === 0n) return;
    this.dumped.set(shmid, dev);
    const r = dumpShmemContents(this.dir, shmid, fd, size, this.nextPagesId());
    this.stats.shpagesScanned += r.scanned;
    this.stats.shpagesWritten += r.written;
  }

  /** A SysV segment: its ipc_shm_entry and contents, read while the tree is frozen. */
  private sysv(pid: number, s: SmapsEntry, mapFiles: string, ipcNsId: number): number {
    const id = Number(s.ino);
    if (this.segments.has(id)) return id;
    const where = `pid ${pid}: SysV shared memory ${id} at 0x${s.start.toString(16)}`;
    if (readProcLink(pid, 'ns/ipc') !== readProcLink('self', 'ns/ipc'))
      throw new DumpError(`${where} is in another IPC namespace: IPC namespaces are not supported yet`);
    if (this.ipcNsId !== undefined && this.ipcNsId !== ipcNsId)
      throw new DumpError(`${where}: the tree spans two IPC namespaces`);
    this.ipcNsId = ipcNsId;
    let ds: ReturnType<typeof shmStat>;
    try {
      ds = shmStat(id);
    } catch (e) {
      throw new DumpError(`${where}: shmctl(IPC_STAT): ${(e as Error).message}`);
    }
    const data = Buffer.alloc(Number(ds.size));
    const fd = open(mapFiles, O_RDONLY | O_CLOEXEC);
    try {
      preadFull(fd, data, data.length, 0);
    } finally {
      close(fd);
    }
    const pages = Number((ds.size + PAGE - 1n) / PAGE);
    this.stats.shpagesScanned += pages;
    this.stats.shpagesWritten += pages;
    const entry: IpcShmEntry = {
      desc: {
        key: ds.key >>> 0,
        uid: ds.uid,
        gid: ds.gid,
        cuid: ds.cuid,
        cgid: ds.cgid,
        mode: ds.mode,
        id,
      },
      size: ds.size,
    };
    // A SHM_HUGETLB segment: shmget's flags for it again (SHM_HUGETLB | SHM_HUGE_<size>), as CRIU writes them.
    const huge = hugetlbSizeFlag(s.major, s.minor);
    if (huge !== undefined) entry.hugetlb_flag = huge | SHM_HUGETLB;
    this.segments.set(id, { entry, data });
    // Rewritten whole with each new segment: a tree attaches a few at most.
    const all = [...this.segments.values()];
    this.dir.write(
      'ipcns-shm-%u',
      ipcNsId,
      all.map((x) => x.entry),
      all.map((x) => x.data),
    );
    return id;
  }
}
