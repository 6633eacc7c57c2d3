import type { FdinfoEntry, FileEntry } from '@criu-ts/images';
import { KCMP_FILE, kcmp } from '@criu-ts/sys';
import { IdAllocator } from '../dump/ids.js';

/** fd_types values (fdinfo.proto). */
export const FD_TYPE = { REG: 1, PIPE: 2, FIFO: 3, INETSK: 4, UNIXSK: 5, TTY: 11 } as const;

/** What dump knows of one open file description of a task, before a driver looks at it. */
export interface OpenFile {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/N: a path, or "pipe:[123]", "socket:[45]", "anon_inode:[eventfd]"... */
  link: string;
  /** fdinfo: pos, flags, mnt_id */
  pos: bigint;
  flags: number;
  mntId: number;
  /** stat() of /proc/PID/fd/N (the file itself, even when unlinked) */
  stat: import('node:fs').BigIntStats;
}

/**
 * An fd kind's dump side: `claims` says whether this driver handles the file, `dump` writes
 * its objects (files.img entry, extra images) and returns the file id for fdinfo.
 */
export interface FdDumpDriver {
  readonly kind: string;
  claims(file: OpenFile): boolean;
  dump(file: OpenFile, files: FileTable): { id: number; type: number };
}

/**
 * The files.img being built: one entry per distinct file object, ids shared between fds,
 * tasks, cwd/root and mapped files that refer to the same object.
 */
export class FileTable {
  readonly entries: FileEntry[] = [];
  readonly ids = new IdAllocator<string>();
  /** remap-fpath entries (ghost files) and ghost contents to write. */
  readonly remaps: Array<{ orig_id: number; remap_id: number; remap_type: number }> = [];
  readonly ghosts: Array<{ id: number; write: (dir: import('@criu-ts/images').ImageDir) => void }> = [];

  private readonly byInode = new Map<string, Array<{ pid: number; fd: number; key: string }>>();

  /**
   * A key naming the open file description behind an fd: dup()ed fds and fds inherited
   * across fork share one description (and one position), so they share one files.img
   * entry; two separate open() calls of one file do not. kcmp(KCMP_FILE) tells them apart.
   */
  descriptionKey(file: OpenFile): string {
    const inode = `${file.stat.dev}:${file.stat.ino}`;
    const seen = this.byInode.get(inode) ?? [];
    for (const other of seen) {
      if (kcmp(file.pid, other.pid, KCMP_FILE, file.fd, other.fd) === 0) return other.key;
    }
    const key = `file:${inode}:${file.pid}:${file.fd}`;
    seen.push({ pid: file.pid, fd: file.fd, key });
    this.byInode.set(inode, seen);
    return key;
  }

  /** The id for `key`; `make` builds the files.img entry the first time the key is seen. */
  add(key: string, make: (id: number) => FileEntry): number {
    const { id, fresh } = this.ids.get(key);
    if (fresh) this.entries.push(make(id));
    return id;
  }
}

export type FdinfoList = FdinfoEntry[];
