// Calls that make or change names and inodes: linkat, mknodat, ownership, permissions, times, and the
// layout of a file's data (FIEMAP extents, SEEK_DATA/SEEK_HOLE runs).
import { AT_FDCWD, SEEK_DATA, SEEK_HOLE } from './constants/fs.js';
import { SYS } from './constants/syscalls.js';
import { SysError } from './errno.js';
import { lseek, type PathLike } from './files.js';
import { checked, cString, syscall } from './native.js';

const text = (p: PathLike): string => (typeof p === 'string' ? p : p.toString('utf8'));

/** linkat(2): a new name `newPath` for `oldPath` (with AT_EMPTY_PATH and "": for the file `oldDir` is). */
export function linkat(
  oldDir: number,
  oldPath: PathLike,
  newDir: number,
  newPath: PathLike,
  flags = 0,
): void {
  const o = cString(oldPath);
  const n = cString(newPath);
  checked(
    'linkat',
    () => `${text(oldPath) || `fd ${oldDir}`} -> ${text(newPath)}`,
    syscall(SYS.linkat, oldDir, o, newDir, n, flags),
  );
}

/** mknodat(2): a FIFO, a device node or an empty regular file. */
export function mknodat(dirfd: number, path: PathLike, mode: number, dev: bigint | number = 0): void {
  const p = cString(path);
  checked('mknodat', () => text(path), syscall(SYS.mknodat, dirfd, p, mode, dev));
}

/** symlinkat(2): a symbolic link `path` pointing at `target`. */
export function symlinkat(target: PathLike, dirfd: number, path: PathLike): void {
  const t = cString(target);
  const p = cString(path);
  checked('symlinkat', () => text(path), syscall(SYS.symlinkat, t, dirfd, p));
}

/** fchownat(2) (flags: AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH). -1 leaves an id as it is. */
export function fchownat(dirfd: number, path: PathLike, uid: number, gid: number, flags = 0): void {
  const p = cString(path);
  checked('fchownat', () => text(path), syscall(SYS.fchownat, dirfd, p, uid, gid, flags));
}

/** fchmodat(2) (no flags: the kernel's fchmodat has none). */
export function fchmodat(dirfd: number, path: PathLike, mode: number): void {
  const p = cString(path);
  checked('fchmodat', () => text(path), syscall(SYS.fchmodat, dirfd, p, mode));
}

/** A time for utimensat(2), in nanoseconds since the epoch. */
export type TimeNs = bigint;

/** utimensat(2): access and modification times (ns since the epoch); flags: AT_SYMLINK_NOFOLLOW. */
export function utimensat(
  dirfd: number,
  path: PathLike | null,
  atimeNs: TimeNs,
  mtimeNs: TimeNs,
  flags = 0,
): void {
  const ts = Buffer.alloc(32);
  const put = (at: number, ns: bigint) => {
    ts.writeBigInt64LE(ns / 1_000_000_000n, at);
    ts.writeBigInt64LE(ns % 1_000_000_000n, at + 8);
  };
  put(0, atimeNs);
  put(16, mtimeNs);
  const p = path === null ? null : cString(path);
  checked(
    'utimensat',
    () => (path === null ? `fd ${dirfd}` : text(path)),
    syscall(SYS.utimensat, dirfd, p, ts, flags),
  );
}

/** utimensat(AT_FDCWD, path, ...). */
export function utimes(path: PathLike, atimeNs: TimeNs, mtimeNs: TimeNs, flags = 0): void {
  utimensat(AT_FDCWD, path, atimeNs, mtimeNs, flags);
}

/** One run of a file's data: `len` bytes at `off`. */
export interface DataRun {
  off: bigint;
  len: bigint;
}

export const FS_IOC_FIEMAP = 0xc020660b;
export const FIEMAP_FLAG_SYNC = 0x1;
export const FIEMAP_EXTENT_LAST = 0x1;
const FIEMAP_HEADER = 32;
const FIEMAP_EXTENT = 56;

/**
 * The extents of a file (FS_IOC_FIEMAP, FIEMAP_FLAG_SYNC), asking `perCall` at a time from `start` on,
 * until the extent flagged last. Throws SysError (EOPNOTSUPP on a file system without FIEMAP).
 */
export function fiemapExtents(fd: number, perCall = 512): DataRun[] {
  const buf = Buffer.alloc(FIEMAP_HEADER + perCall * FIEMAP_EXTENT);
  const out: DataRun[] = [];
  let start = 0n;
  for (;;) {
    buf.fill(0);
    buf.writeBigUInt64LE(start, 0); // fm_start
    buf.writeBigUInt64LE(0xffffffffffffffffn, 8); // fm_length: FIEMAP_MAX_OFFSET
    buf.writeUInt32LE(FIEMAP_FLAG_SYNC, 16); // fm_flags
    buf.writeUInt32LE(perCall, 24); // fm_extent_count
    checked('ioctl(FS_IOC_FIEMAP)', () => `fd ${fd}`, syscall(SYS.ioctl, fd, FS_IOC_FIEMAP, buf));
    const mapped = buf.readUInt32LE(20);
    if (mapped === 0) return out;
    let last = false;
    for (let i = 0; i < mapped; i++) {
      const e = FIEMAP_HEADER + i * FIEMAP_EXTENT;
      const off = buf.readBigUInt64LE(e);
      const len = buf.readBigUInt64LE(e + 16);
      out.push({ off, len });
      if (buf.readUInt32LE(e + 40) & FIEMAP_EXTENT_LAST) last = true;
    }
    const tail = out[out.length - 1]!;
    start = tail.off + tail.len;
    if (last || mapped < perCall) return out;
  }
}

/**
 * The data runs of a file of `size` bytes, found with lseek(SEEK_DATA) and lseek(SEEK_HOLE). A file
 * system without them (EINVAL on the first seek) is one run of the whole size.
 */
export function seekDataRuns(fd: number, size: bigint): DataRun[] {
  const out: DataRun[] = [];
  let hole = 0n;
  while (hole < size) {
    let data: bigint;
    try {
      data = lseek(fd, hole, SEEK_DATA);
    } catch (e) {
      if (e instanceof SysError && e.code === 'ENXIO') break; // no data past `hole`
      if (hole === 0n) return size > 0n ? [{ off: 0n, len: size }] : [];
      throw e;
    }
    hole = lseek(fd, data, SEEK_HOLE);
    out.push({ off: data, len: hole - data });
  }
  return out;
}
