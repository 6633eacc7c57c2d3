// fanotify at restore: a new group made in criu-ts with the dumped init flags, then every mark added
// again - inode marks on the inode their file handle names (through /proc/self/fd/N of an O_PATH fd),
// mount marks on the mount point the dump saw, if the same file system is still mounted there. The
// event mask and the ignored mask are separate fanotify_mark calls: the ignored one carries its own
// flags (FAN_MARK_IGNORED_SURV_MODIFY).
import type { FanotifyFileEntry, FanotifyMarkEntry, FileEntry } from '@criu-ts/images';
import {
  AT_FDCWD,
  close,
  F_SETFD,
  FAN_MARK_ADD,
  FAN_MARK_EVICTABLE,
  FAN_MARK_IGNORE,
  FAN_MARK_IGNORED_MASK,
  FAN_MARK_IGNORED_SURV_MODIFY,
  FAN_MARK_MOUNT,
  FD_CLOEXEC,
  fanotifyInit,
  fanotifyMark,
  fcntl,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import { devName, type FoundInode, fhBytes, mountsOf, openWatchedInode, procFdPath } from '../fhandle.js';
import type { FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';
import { MARK } from './dump.js';

const markName = (id: number, i: number) => `files.img: fanotify ${id} ffy.mark[${i}]`;

export const fanotifyRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.FANOTIFY,
  kind: 'fanotify',
  check(entry: FileEntry) {
    const ffy = entry.ffy;
    if (!ffy) throw new RestoreError(`files.img: file ${entry.id} of type FANOTIFY has no ffy`);
    for (const [i, m] of (ffy.mark ?? []).entries()) checkMark(markName(entry.id, i), m);
  },
  open(entry: FileEntry, ctx: FdRestoreContext) {
    const ffy = entry.ffy!;
    const fd = newGroup(entry.id, ffy);
    try {
      for (const [i, m] of (ffy.mark ?? []).entries()) addMark(markName(entry.id, i), fd, m, ctx);
    } catch (e) {
      close(fd);
      throw e;
    }
    ctx.log(`fanotify ${entry.id}: ${ffy.mark?.length ?? 0} marks`);
    return withFlags(fd, ffy.flags);
  },
};

function checkMark(where: string, m: FanotifyMarkEntry): void {
  if (m.type === MARK.INODE) {
    if (!m.ie || (!fhBytes(m.ie.f_handle) && !m.ie.f_handle.path))
      throw new RestoreError(`${where}: inode mark without a usable ie.f_handle`);
  } else if (m.type === MARK.MOUNT) {
    if (!m.me?.path) throw new RestoreError(`${where}: mount mark without me.path`);
  } else {
    throw new RestoreError(`${where}: unknown mark type ${m.type}`);
  }
}

/**
 * The group, made with the very init flags of the dump (so fdinfo shows them again), FAN_CLOEXEC or not:
 * criu-ts's own fd is made close-on-exec afterwards, the task's fd gets its own flag from fdinfo.
 */
function newGroup(id: number, ffy: FanotifyFileEntry): number {
  let fd: number;
  try {
    fd = fanotifyInit(ffy.faflags, ffy.evflags);
  } catch (e) {
    throw new RestoreError(
      `files.img: fanotify ${id} faflags 0x${ffy.faflags.toString(16)}: ${(e as Error).message}`,
    );
  }
  try {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}

/** Where a mark goes: a path for fanotify_mark to follow, and what to call it in errors. */
interface MarkTarget {
  kind: number;
  path: string;
  shown: string;
}

function addMark(where: string, fd: number, m: FanotifyMarkEntry, ctx: FdRestoreContext): void {
  if (m.type === MARK.MOUNT) {
    const path = m.me!.path!;
    if (!mountsOf(m.s_dev).includes(path))
      throw new RestoreError(`${where}: ${path} is not a mount of device ${devName(m.s_dev)} any more`);
    markAgain(where, fd, m, { kind: FAN_MARK_MOUNT, path, shown: path });
    return;
  }
  let inode: FoundInode;
  try {
    // A mark on a file unlinked at the dump: its ghost is that file now.
    inode = ctx.ghostInode(m.s_dev, m.ie!.i_ino) ?? openWatchedInode(m.s_dev, m.ie!.i_ino, m.ie!.f_handle);
  } catch (e) {
    throw new RestoreError(`${where} (inode ${m.ie!.i_ino}): ${(e as Error).message}`);
  }
  try {
    // Through /proc/self/fd/N: the very inode, whatever its name is now.
    markAgain(where, fd, m, { kind: 0, path: procFdPath(inode.fd), shown: inode.path });
  } finally {
    close(inode.fd);
  }
}

/** The fanotify_mark calls of one mark: its event mask, then its ignored mask. */
function markAgain(where: string, fd: number, m: FanotifyMarkEntry, to: MarkTarget): void {
  const base = FAN_MARK_ADD | to.kind | (m.mflags & FAN_MARK_EVICTABLE);
  try {
    if (m.mask) fanotifyMark(fd, base, BigInt(m.mask), AT_FDCWD, to.path);
    if (m.ignored_mask) {
      // FAN_MARK_IGNORE (Linux 6.0) and the older FAN_MARK_IGNORED_MASK differ for directories and events
      // on children: the mark is made again with whichever one the task used.
      const how = m.mflags & FAN_MARK_IGNORE ? FAN_MARK_IGNORE : FAN_MARK_IGNORED_MASK;
      const flags = base | how | (m.mflags & FAN_MARK_IGNORED_SURV_MODIFY);
      fanotifyMark(fd, flags, BigInt(m.ignored_mask), AT_FDCWD, to.path);
    }
  } catch (e) {
    throw new RestoreError(
      `${where} on ${to.shown} (mask 0x${m.mask.toString(16)}): ${(e as Error).message}`,
    );
  }
}
