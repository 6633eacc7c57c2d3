// memfd files: the fd kind (files.img type MEMFD, memfd_file_entry: flags, position, inode id) and the
// inode behind it (memfd.img, memfd_inode_entry: name, owner, mode, size, seals, shmid), as CRIU 4 writes
// them. The contents go once per inode to pagemap-shmem-SHMID.img (shmid = the inode number), through
// the shared memory dumper. Mappings of a memfd, and of anonymous shared memory (which CRIU 4 dumps the
// same way: its shmem file is a memfd in all but name), get MEMFD entries of their own.

import { procPath } from '@criu-ts/bfd';
import type { MemfdInodeEntry } from '@criu-ts/images';
import { close, F_GET_SEALS, fcntl, fstat, MFD_HUGETLB, O_CLOEXEC, O_RDONLY, open } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { hugetlbSizeFlagOfStDev, isShmemStDev } from '../../shmem/dev.js';
import { type Fown, noOwner } from '../fown.js';
import { FD_TYPE, type FdDumpContext, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

const MEMFD_PREFIX = '/memfd:';
const DELETED = ' (deleted)';

/** The name memfd_create() was given: the link without "/memfd:" and " (deleted)" (others kept whole). */
export function memfdName(link: string): string {
  const path = link.endsWith(DELETED) ? link.slice(0, -DELETED.length) : link;
  return path.startsWith(MEMFD_PREFIX) ? path.slice(MEMFD_PREFIX.length) : path;
}

/** Any fd whose link says memfd (one that is on neither shmem nor hugetlbfs is then refused by name). */
export function isMemfdLink(link: string): boolean {
  return link.startsWith(MEMFD_PREFIX);
}

/**
 * The memfd inodes of one dump: each gets a memfd.img entry and its contents once, whether it is
 * reached through fds or mappings of any task.
 */
export class MemfdInodes {
  private readonly ids = new Map<string, number>();
  private next = 1;

  constructor(
    private readonly files: FileTable,
    /**
     * Dump the object's pages (once per shmid) from `fd`, criu-ts's own read-only description; `dev`
     * is the device it lives on.
     */
    private readonly contents: (shmid: bigint, fd: number, size: bigint, dev: string) => void,
  ) {}

  /**
   * inode_id of the memfd reachable at `procPath` (/proc/PID/fd/N or /proc/PID/map_files/RANGE), opened
   * here as a new read-only description so that nothing of the task's (its position) moves.
   */
  of(procPath: string, name: string): number {
    const fd = open(procPath, O_RDONLY | O_CLOEXEC);
    try {
      const st = fstat(fd);
      const key = `${st.dev}:${st.ino}`;
      const have = this.ids.get(key);
      if (have !== undefined) return have;
      const id = this.next++;
      this.ids.set(key, id);
      // A hugetlb memfd (or MAP_HUGETLB shared memory) says so, with its page size, as memfd_create
      // wants it (MFD_HUGETLB | MFD_HUGE_<size>); CRIU writes the field only then.
      const huge = hugetlbSizeFlagOfStDev(st.dev);
      const entry: MemfdInodeEntry = {
        name,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        shmid: Number(st.ino),
        seals: fcntl(fd, F_GET_SEALS),
        inode_id: BigInt(id),
        ...(huge !== undefined && { hugetlb_flag: huge | MFD_HUGETLB }),
        mode: st.mode,
      };
      this.contents(st.ino, fd, st.size, `${st.dev}`);
      this.files.addImageEntry('memfd', entry);
      return id;
    } finally {
      close(fd);
    }
  }
}

/** A files.img MEMFD entry for one open description (or one mapping's file). */
function memfdFileEntry(
  files: FileTable,
  key: string,
  inodeId: () => number,
  flags: number,
  pos: bigint,
  fown: Fown = noOwner(),
): number {
  return files.add(key, (id) => ({
    id,
    type: FD_TYPE.MEMFD,
    memfd: { id, flags, pos, fown, inode_id: inodeId() },
  }));
}

/**
 * The files.img id for a mapping of a memfd or of anonymous shared memory (VMA shmid); `object` names
 * the file (device and inode: shmem and hugetlbfs number their inodes each on their own).
 */
export function memfdMappingEntry(
  files: FileTable,
  inodes: MemfdInodes,
  mapFiles: string,
  path: string,
  object: string,
  fdflags: number,
): number {
  return memfdFileEntry(
    files,
    `memfd-map:${object}:${fdflags}`,
    () => inodes.of(mapFiles, memfdName(path)),
    fdflags,
    0n,
  );
}

/** The fd driver: memfd files held as fds (their inodes: FdDumpContext.memfds, the dump's). */
export const memfdDumpDriver: FdDumpDriver = {
  kind: 'memfd',
  dump(file: OpenFile, files: FileTable, ctx: FdDumpContext) {
    const inodes = ctx.memfds;
    if (!isShmemStDev(file.stat.dev) && hugetlbSizeFlagOfStDev(file.stat.dev) === undefined)
      throw new DumpError(
        `pid ${file.pid} fd ${file.fd}: ${file.link} is neither on shmem nor on the kernel's hugetlbfs: not supported yet`,
      );
    const id = memfdFileEntry(
      files,
      files.descriptionKey(file),
      () => inodes.of(procPath(file.pid, 'fd', file.fd), memfdName(file.link)),
      file.flags,
      file.pos,
      files.owner(file),
    );
    return { id, type: FD_TYPE.MEMFD };
  },
};
