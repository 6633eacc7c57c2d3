// inotify, fanotify and file handles: what restoring a watch or a mark needs, and open_by_handle_at(2),
// which finds a watched inode again from the file handle the kernel shows in fdinfo.
import { SYS } from './constants/syscalls.js';
import type { PathLike } from './files.js';
import { checked, checkedRetry, cString, syscall } from './native.js';

const pathText = (p: PathLike): string => (typeof p === 'string' ? p : p.toString('utf8'));

// inotify_init1(2) flags.
export const IN_NONBLOCK = 0o4000;
export const IN_CLOEXEC = 0o2000000;

// fanotify_init(2) flags.
export const FAN_CLOEXEC = 0x1;
export const FAN_NONBLOCK = 0x2;

// fanotify_mark(2) flags. fdinfo's mflags show the last three (what stays with a mark once added).
export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_MOUNT = 0x10;
export const FAN_MARK_IGNORED_MASK = 0x20;
export const FAN_MARK_IGNORED_SURV_MODIFY = 0x40;
export const FAN_MARK_EVICTABLE = 0x200;
export const FAN_MARK_IGNORE = 0x400;

/** inotify_init1(2). flags: IN_NONBLOCK, IN_CLOEXEC. */
export function inotifyInit1(flags: number): number {
  return checked('inotify_init1', () => undefined, syscall(SYS.inotify_init1, flags));
}

/** inotify_add_watch(2): the watch descriptor (an existing one when the inode is watched already). */
export function inotifyAddWatch(fd: number, path: PathLike, mask: number): number {
  return checked(
    'inotify_add_watch',
    () => `fd ${fd}, ${pathText(path)}`,
    syscall(SYS.inotify_add_watch, fd, cString(path), mask >>> 0),
  );
}

/** inotify_rm_watch(2). The group gets an IN_IGNORED event for `wd`. */
export function inotifyRmWatch(fd: number, wd: number): void {
  checked('inotify_rm_watch', () => `fd ${fd}, wd ${wd}`, syscall(SYS.inotify_rm_watch, fd, wd));
}

/** fanotify_init(2). `eventFlags` are the open flags of the fds that events carry. */
export function fanotifyInit(flags: number, eventFlags: number): number {
  return checked(
    'fanotify_init',
    () => `flags 0x${flags.toString(16)}, event flags 0o${eventFlags.toString(8)}`,
    syscall(SYS.fanotify_init, flags >>> 0, eventFlags >>> 0),
  );
}

/** fanotify_mark(2) on `path` (relative to `dirfd`). The mask is 64 bits wide. */
export function fanotifyMark(fd: number, flags: number, mask: bigint, dirfd: number, path: PathLike): void {
  checked(
    'fanotify_mark',
    () => `fd ${fd}, flags 0x${flags.toString(16)}, mask 0x${mask.toString(16)}, ${pathText(path)}`,
    syscall(SYS.fanotify_mark, fd, flags >>> 0, mask, dirfd, cString(path)),
  );
}

/**
 * open_by_handle_at(2): open the inode a file handle names, on the file system of `mountFd` (which must
 * not be an O_PATH fd). Needs CAP_DAC_READ_SEARCH. `type` and `handle` are as fdinfo shows them.
 */
export function openByHandleAt(mountFd: number, type: number, handle: Buffer, flags: number): number {
  // struct file_handle { u32 handle_bytes; int handle_type; unsigned char f_handle[]; }
  const fh = Buffer.alloc(8 + handle.length);
  fh.writeUInt32LE(handle.length, 0);
  fh.writeInt32LE(type, 4);
  handle.copy(fh, 8);
  return checkedRetry(
    'open_by_handle_at',
    () => `handle type ${type}, ${handle.toString('hex')}`,
    () => syscall(SYS.open_by_handle_at, mountFd, fh, flags),
  );
}
