// File-descriptor level calls: open/read/write/stat/readlink/getdents64/dup/fcntl/...
// All take and return plain fds (numbers). Offsets and sizes that can exceed 2^53 are bigint in results
// and accept bigint | number as arguments. EINTR is retried where repeating the call is harmless.
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  O_CLOEXEC,
  SEEK_SET,
  STATX_BASIC_STATS,
  STATX_MNT_ID,
} from './constants/fs.js';
import { SYS } from './constants/syscalls.js';
import { SysError } from './errno.js';
import { checked, checkedRetry, cString, lastErrno, syscall } from './native.js';

/** A path for the kernel: a string (UTF-8) or raw bytes (a name that is not valid UTF-8). */
export type PathLike = string | Buffer;

const pathText = (p: PathLike): string => (typeof p === 'string' ? p : p.toString('utf8'));

/** Throw a RangeError unless [offset, offset + len) lies inside buf: the kernel would write past it. */
function checkRange(buf: Buffer, len: number, offset: number, what: string): void {
  if (!Number.isInteger(len) || !Number.isInteger(offset) || len < 0 || offset < 0) {
    throw new RangeError(`${what}: invalid length ${len} or offset ${offset}`);
  }
  if (offset + len > buf.length) {
    throw new RangeError(`${what}: ${len} bytes at offset ${offset} exceed the ${buf.length}-byte buffer`);
  }
}

/** openat(2). Returns the new fd. Retries EINTR (an interrupted open had no effect). */
export function openat(dirfd: number, path: PathLike, flags: number, mode = 0): number {
  const p = cString(path);
  return checkedRetry(
    'openat',
    () => pathText(path),
    () => syscall(SYS.openat, dirfd, p, flags, mode),
  );
}

/** open(2), as openat(AT_FDCWD, ...). */
export function open(path: PathLike, flags: number, mode = 0): number {
  const p = cString(path);
  return checkedRetry(
    'open',
    () => pathText(path),
    () => syscall(SYS.openat, AT_FDCWD, p, flags, mode),
  );
}

/**
 * close(2). Never retried: on Linux the fd is released even when close reports EINTR, and a retry could
 * close an fd another part of the program just got.
 */
export function close(fd: number): void {
  const r = syscall(SYS.close, fd);
  if (r === -1) {
    const err = new SysError('close', lastErrno(), `fd ${fd}`);
    if (err.code !== 'EINTR') throw err;
  }
}

/** read(2) of up to `len` bytes into buf[offset...] (offset is within the buffer). Returns bytes read. */
export function read(fd: number, buf: Buffer, len = buf.length, offset = 0): number {
  checkRange(buf, len, offset, 'read');
  const dst = offset === 0 ? buf : buf.subarray(offset);
  return checkedRetry(
    'read',
    () => `fd ${fd}`,
    () => syscall(SYS.read, fd, dst, len),
  );
}

/** pread64(2) of up to `len` bytes at file position `pos` into buf[0...]. Returns bytes read. */
export function pread(fd: number, buf: Buffer, len: number, pos: bigint | number, offset = 0): number {
  checkRange(buf, len, offset, 'pread');
  const dst = offset === 0 ? buf : buf.subarray(offset);
  return checkedRetry(
    'pread64',
    () => `fd ${fd}, pos ${pos}`,
    () => syscall(SYS.pread64, fd, dst, len, pos),
  );
}

/** pread until `len` bytes or end of file. Returns the bytes read (< len only at end of file). */
export function preadFull(fd: number, buf: Buffer, len: number, pos: bigint | number, offset = 0): number {
  let done = 0;
  const base = BigInt(pos);
  while (done < len) {
    const n = pread(fd, buf, len - done, base + BigInt(done), offset + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** write(2) of `len` bytes from buf[offset...]. Returns bytes written (may be short). */
export function write(fd: number, buf: Buffer, len = buf.length, offset = 0): number {
  checkRange(buf, len, offset, 'write');
  const src = offset === 0 ? buf : buf.subarray(offset);
  return checkedRetry(
    'write',
    () => `fd ${fd}`,
    () => syscall(SYS.write, fd, src, len),
  );
}

/** pwrite64(2) of `len` bytes from buf[offset...] at file position `pos`. Returns bytes written. */
export function pwrite(fd: number, buf: Buffer, len: number, pos: bigint | number, offset = 0): number {
  checkRange(buf, len, offset, 'pwrite');
  const src = offset === 0 ? buf : buf.subarray(offset);
  return checkedRetry(
    'pwrite64',
    () => `fd ${fd}, pos ${pos}`,
    () => syscall(SYS.pwrite64, fd, src, len, pos),
  );
}

/** write until all `len` bytes are written (short writes happen on pipes and sockets). */
export function writeAll(fd: number, buf: Buffer, len = buf.length, offset = 0): void {
  let done = 0;
  while (done < len) done += write(fd, buf, len - done, offset + done);
}

// koffi returns a bigint instead of a number for results beyond 2^53 (only lseek on huge sparse files
// gets there); BigInt() accepts both.
/** lseek(2). Returns the new offset as bigint. */
export function lseek(fd: number, offset: bigint | number, whence: number): bigint {
  const r = checked(
    'lseek',
    () => `fd ${fd}, offset ${offset}, whence ${whence}`,
    syscall(SYS.lseek, fd, offset, whence),
  );
  return BigInt(r);
}

/** Decoded struct stat / struct statx. Times are nanoseconds since the epoch. */
export interface Stat {
  /** st_dev as the kernel's new_encode_dev value (glibc dev_t layout). */
  dev: bigint;
  devMajor: number;
  devMinor: number;
  ino: bigint;
  /** File type and permission bits (S_IFMT | 0o7777). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: bigint;
  rdevMajor: number;
  rdevMinor: number;
  size: bigint;
  blksize: number;
  /** 512-byte blocks allocated. */
  blocks: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** Extra fields only statx(2) reports. */
export interface Statx extends Stat {
  /** STATX_* bits the kernel filled in. */
  mask: number;
  attributes: bigint;
  attributesMask: bigint;
  /** Birth time, 0n when the filesystem does not record it (mask lacks STATX_BTIME). */
  btimeNs: bigint;
  /** Mount id (as in /proc/PID/mountinfo) when mask has STATX_MNT_ID. */
  mntId: bigint;
}

/** glibc's gnu_dev_major / gnu_dev_minor for a 64-bit dev_t. */
export function devMajor(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
}
export function devMinor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
}
/** glibc's gnu_dev_makedev. */
export function makeDev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

const STAT_SIZE = 144; // struct stat on x86_64
const STATX_SIZE = 256;

const ns = (sec: bigint, nsec: bigint): bigint => sec * 1_000_000_000n + nsec;

/** Decode an x86_64 struct stat (144 bytes). */
export function decodeStat(b: Buffer): Stat {
  const dev = b.readBigUInt64LE(0);
  const rdev = b.readBigUInt64LE(40);
  return {
    dev,
    devMajor: devMajor(dev),
    devMinor: devMinor(dev),
    ino: b.readBigUInt64LE(8),
    nlink: Number(b.readBigUInt64LE(16)),
    mode: b.readUInt32LE(24),
    uid: b.readUInt32LE(28),
    gid: b.readUInt32LE(32),
    rdev,
    rdevMajor: devMajor(rdev),
    rdevMinor: devMinor(rdev),
    size: b.readBigInt64LE(48),
    blksize: Number(b.readBigInt64LE(56)),
    blocks: b.readBigInt64LE(64),
    atimeNs: ns(b.readBigInt64LE(72), b.readBigInt64LE(80)),
    mtimeNs: ns(b.readBigInt64LE(88), b.readBigInt64LE(96)),
    ctimeNs: ns(b.readBigInt64LE(104), b.readBigInt64LE(112)),
  };
}

/** Decode a struct statx (256 bytes). */
export function decodeStatx(b: Buffer): Statx {
  const ts = (off: number) => ns(b.readBigInt64LE(off), BigInt(b.readUInt32LE(off + 8)));
  const rdevMajor = b.readUInt32LE(128);
  const rdevMinor = b.readUInt32LE(132);
  const dMajor = b.readUInt32LE(136);
  const dMinor = b.readUInt32LE(140);
  return {
    mask: b.readUInt32LE(0),
    blksize: b.readUInt32LE(4),
    attributes: b.readBigUInt64LE(8),
    nlink: b.readUInt32LE(16),
    uid: b.readUInt32LE(20),
    gid: b.readUInt32LE(24),
    mode: b.readUInt16LE(28),
    ino: b.readBigUInt64LE(32),
    size: b.readBigUInt64LE(40),
    blocks: b.readBigUInt64LE(48),
    attributesMask: b.readBigUInt64LE(56),
    atimeNs: ts(64),
    btimeNs: ts(80),
    ctimeNs: ts(96),
    mtimeNs: ts(112),
    rdev: makeDev(rdevMajor, rdevMinor),
    rdevMajor,
    rdevMinor,
    dev: makeDev(dMajor, dMinor),
    devMajor: dMajor,
    devMinor: dMinor,
    mntId: b.readBigUInt64LE(144),
  };
}

/** fstat(2). */
export function fstat(fd: number): Stat {
  const b = Buffer.alloc(STAT_SIZE);
  checked('fstat', () => `fd ${fd}`, syscall(SYS.fstat, fd, b));
  return decodeStat(b);
}

/** fstatat(2) (newfstatat); flags: AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH. */
export function fstatat(dirfd: number, path: PathLike, flags = 0): Stat {
  const b = Buffer.alloc(STAT_SIZE);
  const p = cString(path);
  checked('fstatat', () => pathText(path), syscall(SYS.newfstatat, dirfd, p, b, flags));
  return decodeStat(b);
}

/** stat(2) / lstat(2) by path. */
export function stat(path: PathLike): Stat {
  return fstatat(AT_FDCWD, path, 0);
}

/** statx(2). Default mask asks for the basic fields plus the mount id. Use path '' + AT_EMPTY_PATH for an fd. */
export function statx(
  dirfd: number,
  path: PathLike,
  flags = 0,
  mask = STATX_BASIC_STATS | STATX_MNT_ID,
): Statx {
  const b = Buffer.alloc(STATX_SIZE);
  const p = cString(path);
  checked(
    'statx',
    () => (pathText(path) === '' ? `fd ${dirfd}` : pathText(path)),
    syscall(SYS.statx, dirfd, p, flags, mask, b),
  );
  return decodeStatx(b);
}

/** statx of an open fd. */
export function fstatx(fd: number, mask = STATX_BASIC_STATS | STATX_MNT_ID): Statx {
  return statx(fd, '', AT_EMPTY_PATH, mask);
}

/** readlinkat(2) returning the raw bytes (link targets need not be UTF-8). Grows the buffer as needed. */
export function readlinkatBuffer(dirfd: number, path: PathLike): Buffer {
  const p = cString(path);
  for (let size = 256; ; size *= 4) {
    const b = Buffer.alloc(size);
    const n = checked('readlinkat', () => pathText(path), syscall(SYS.readlinkat, dirfd, p, b, size));
    // n === size means the target may have been truncated: retry with a larger buffer.
    if (n < size) return b.subarray(0, n);
  }
}

/** readlinkat(2) as a UTF-8 string. */
export function readlinkat(dirfd: number, path: PathLike): string {
  return readlinkatBuffer(dirfd, path).toString('utf8');
}

/** readlink(2). */
export function readlink(path: PathLike): string {
  return readlinkat(AT_FDCWD, path);
}

/** One getdents64 record. */
export interface Dirent {
  name: string;
  ino: bigint;
  /** DT_* value (DT_UNKNOWN when the filesystem does not say). */
  type: number;
}

const DENTS_BUF_SIZE = 64 * 1024;
let dentsBuf: Buffer | undefined;

/**
 * Every entry of an open directory (O_DIRECTORY fd), "." and ".." left out. Rewinds the fd first so the
 * same fd can be listed again (a cached /proc fd, for instance).
 */
export function getdents64Entries(fd: number): Dirent[] {
  // One shared buffer: the call is synchronous and its contents are decoded before returning.
  dentsBuf ??= Buffer.alloc(DENTS_BUF_SIZE);
  const b = dentsBuf;
  const out: Dirent[] = [];
  lseek(fd, 0, SEEK_SET);
  for (;;) {
    const n = checkedRetry(
      'getdents64',
      () => `fd ${fd}`,
      () => syscall(SYS.getdents64, fd, b, b.length),
    );
    if (n === 0) return out;
    for (let off = 0; off < n; ) {
      const reclen = b.readUInt16LE(off + 16);
      const nameEnd = b.indexOf(0, off + 19);
      const name = b.toString(
        'utf8',
        off + 19,
        nameEnd < 0 || nameEnd > off + reclen ? off + reclen : nameEnd,
      );
      if (name !== '.' && name !== '..')
        out.push({ name, ino: b.readBigUInt64LE(off), type: b[off + 18] ?? 0 });
      off += reclen;
    }
  }
}

/** Names in an open directory (O_DIRECTORY fd), without "." and "..". Rewinds the fd first. */
export function getdents64(fd: number): string[] {
  return getdents64Entries(fd).map((e) => e.name);
}

/** dup(2). */
export function dup(fd: number): number {
  return checked('dup', () => `fd ${fd}`, syscall(SYS.dup, fd));
}

/** dup3(2) (flags: O_CLOEXEC). Unlike dup2, fails with EINVAL when oldfd === newfd. */
export function dup3(oldfd: number, newfd: number, flags = 0): number {
  return checkedRetry(
    'dup3',
    () => `fd ${oldfd} -> ${newfd}`,
    () => syscall(SYS.dup3, oldfd, newfd, flags),
  );
}

/** dup2(2). */
export function dup2(oldfd: number, newfd: number): number {
  return checkedRetry(
    'dup2',
    () => `fd ${oldfd} -> ${newfd}`,
    () => syscall(SYS.dup2, oldfd, newfd),
  );
}

/** fcntl(2) with an integer argument or a Buffer (struct flock, f_owner_ex). Returns the result. */
export function fcntl(fd: number, cmd: number, arg: number | bigint | Buffer = 0): number {
  return checkedRetry(
    'fcntl',
    () => `fd ${fd}, cmd ${cmd}`,
    () => syscall(SYS.fcntl, fd, cmd, arg),
  );
}

/**
 * The events of `fd` among `events` (and POLLERR, POLLHUP, which are always reported), right now:
 * poll(2) on one fd without waiting.
 */
export function pollNow(fd: number, events: number): number {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(events, 4);
  checkedRetry(
    'poll',
    () => `fd ${fd}`,
    () => syscall(SYS.poll, pfd, 1, 0),
  );
  return pfd.readUInt16LE(6);
}

/** One fd for poll(): what to wait for; `revents` is what happened. */
export interface PollFd {
  fd: number;
  events: number;
  revents?: number;
}

/**
 * poll(2) on several fds, blocking this thread up to `timeoutMs` (-1: no limit). Fills each entry's
 * `revents` and returns how many have some. Retried on EINTR with the same timeout.
 */
export function poll(fds: PollFd[], timeoutMs: number): number {
  const pfds = Buffer.alloc(8 * fds.length);
  fds.forEach((p, i) => {
    pfds.writeInt32LE(p.fd, i * 8);
    pfds.writeInt16LE(p.events, i * 8 + 4);
  });
  const n = checkedRetry(
    'poll',
    () => `${fds.length} fds`,
    () => syscall(SYS.poll, pfds, fds.length, timeoutMs),
  );
  fds.forEach((p, i) => {
    p.revents = pfds.readUInt16LE(i * 8 + 6);
  });
  return n;
}

/** flock(2). Retried on EINTR (a blocking lock wait interrupted by a signal). */
export function flock(fd: number, operation: number): void {
  checkedRetry(
    'flock',
    () => `fd ${fd}`,
    () => syscall(SYS.flock, fd, operation),
  );
}

/** ftruncate(2). */
export function ftruncate(fd: number, length: bigint | number): void {
  checkedRetry(
    'ftruncate',
    () => `fd ${fd}, length ${length}`,
    () => syscall(SYS.ftruncate, fd, length),
  );
}

/** fallocate(2). */
export function fallocate(fd: number, mode: number, offset: bigint | number, len: bigint | number): void {
  checkedRetry(
    'fallocate',
    () => `fd ${fd}`,
    () => syscall(SYS.fallocate, fd, mode, offset, len),
  );
}

/** fchdir(2) / chdir(2) of the calling process. */
export function fchdir(fd: number): void {
  checked('fchdir', () => `fd ${fd}`, syscall(SYS.fchdir, fd));
}

/** unlinkat(2) (flags: AT_REMOVEDIR). */
export function unlinkat(dirfd: number, path: PathLike, flags = 0): void {
  const p = cString(path);
  checked('unlinkat', () => pathText(path), syscall(SYS.unlinkat, dirfd, p, flags));
}

/** mkdirat(2). */
export function mkdirat(dirfd: number, path: PathLike, mode = 0o755): void {
  const p = cString(path);
  checked('mkdirat', () => pathText(path), syscall(SYS.mkdirat, dirfd, p, mode));
}

/** pipe2(2): returns [readFd, writeFd]. O_CLOEXEC by default. */
export function pipe2(flags = O_CLOEXEC): [number, number] {
  const b = Buffer.alloc(8);
  checked('pipe2', () => undefined, syscall(SYS.pipe2, b, flags));
  return [b.readInt32LE(0), b.readInt32LE(4)];
}

/** umask(2) of the calling process; returns the previous mask. */
export function umask(mask: number): number {
  return syscall(SYS.umask, mask);
}
