import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  close,
  DT_DIR,
  DT_REG,
  dup,
  dup3,
  F_GETFD,
  F_GETFL,
  FD_CLOEXEC,
  fallocate,
  fcntl,
  flock,
  fstat,
  fstatat,
  fstatx,
  ftruncate,
  getdents64,
  getdents64Entries,
  LOCK_EX,
  LOCK_NB,
  LOCK_UN,
  lseek,
  MFD_CLOEXEC,
  makeDev,
  memfdCreate,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  open,
  openat,
  pipe2,
  pread,
  preadFull,
  pwrite,
  read,
  readlink,
  readlinkat,
  readlinkatBuffer,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  SEEK_END,
  SEEK_SET,
  statx,
  write,
  writeAll,
} from '../src/index.js';
import { cleanup, makeTempDir } from './helpers.js';

const fds: number[] = [];
const track = (fd: number): number => {
  fds.push(fd);
  return fd;
};

afterEach(() => {
  for (const fd of fds.splice(0)) {
    try {
      close(fd);
    } catch {
      // closed by the test
    }
  }
  cleanup();
});

describe('open / read / pread / close', () => {
  it('reads a file the same way node:fs does', () => {
    const dir = makeTempDir();
    const file = path.join(dir, 'data.bin');
    const data = Buffer.from(Array.from({ length: 10000 }, (_, i) => i & 0xff));
    fs.writeFileSync(file, data);

    const fd = track(open(file, O_RDONLY | O_CLOEXEC));
    const buf = Buffer.alloc(20000);
    expect(read(fd, buf, 100)).toBe(100);
    expect(read(fd, buf, 100, 100)).toBe(100); // into buf[100..200), from file offset 100
    expect(buf.subarray(0, 200).equals(data.subarray(0, 200))).toBe(true);
    expect(pread(fd, buf, 50, 9990n)).toBe(10);
    expect(buf.subarray(0, 10).equals(data.subarray(9990))).toBe(true);
    expect(pread(fd, buf, 10, 5000)).toBe(10);
    expect(buf.subarray(0, 10).equals(data.subarray(5000, 5010))).toBe(true);
    expect(preadFull(fd, buf, 20000, 0n)).toBe(10000);
    expect(buf.subarray(0, 10000).equals(data)).toBe(true);
    expect(lseek(fd, 0, SEEK_END)).toBe(10000n);
    expect(read(fd, buf)).toBe(0);
  });

  it('refuses lengths that would overflow the buffer', () => {
    const fd = track(open('/dev/zero', O_RDONLY));
    const buf = Buffer.alloc(16);
    expect(() => read(fd, buf, 17)).toThrow(RangeError);
    expect(() => read(fd, buf, 10, 8)).toThrow(RangeError);
    expect(() => pread(fd, buf, 32, 0)).toThrow(RangeError);
  });

  it('openat relative to a directory fd, O_PATH and AT_FDCWD', () => {
    const dir = makeTempDir();
    fs.writeFileSync(path.join(dir, 'a.txt'), 'hello');
    const dfd = track(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    const fd = track(openat(dfd, 'a.txt', O_RDONLY | O_CLOEXEC));
    const buf = Buffer.alloc(16);
    expect(buf.toString('utf8', 0, read(fd, buf))).toBe('hello');
    const pfd = track(openat(AT_FDCWD, path.join(dir, 'a.txt'), O_PATH | O_CLOEXEC));
    expect(fstat(pfd).size).toBe(5n);
    const created = track(openat(dfd, 'b.txt', O_RDWR | O_CREAT | O_CLOEXEC, 0o600));
    writeAll(created, Buffer.from('written'));
    expect(fs.readFileSync(path.join(dir, 'b.txt'), 'utf8')).toBe('written');
    expect(fs.statSync(path.join(dir, 'b.txt')).mode & 0o777).toBe(0o600);
  });

  it('close of a bad fd throws EBADF', () => {
    expect(() => close(987654)).toThrowError('close(fd 987654): EBADF (Bad file descriptor)');
  });
});

describe('getdents64', () => {
  it('lists names without . and .., and lists again on the same fd', () => {
    const dir = makeTempDir();
    const names = Array.from({ length: 600 }, (_, i) => `file-${i}-${'x'.repeat(i % 50)}`);
    for (const n of names) fs.writeFileSync(path.join(dir, n), '');
    fs.mkdirSync(path.join(dir, 'sub'));
    const fd = track(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    const got = getdents64(fd);
    expect(got.sort()).toEqual([...names, 'sub'].sort());
    expect(getdents64(fd).length).toBe(601);
    const entries = getdents64Entries(fd);
    expect(entries.find((e) => e.name === 'sub')?.type).toBe(DT_DIR);
    const f0 = entries.find((e) => e.name === 'file-0-');
    expect(f0?.type).toBe(DT_REG);
    expect(f0?.ino).toBe(fs.statSync(path.join(dir, 'file-0-'), { bigint: true }).ino);
  });

  it('lists /proc like readdir does', () => {
    const fd = track(open('/proc/self/task', O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    expect(getdents64(fd).sort()).toEqual(fs.readdirSync('/proc/self/task').sort());
  });
});

describe('stat family', () => {
  it('fstat, fstatat and statx agree with node:fs (bigint)', () => {
    const dir = makeTempDir();
    const file = path.join(dir, 's.bin');
    fs.writeFileSync(file, Buffer.alloc(12345, 1));
    const ref = fs.statSync(file, { bigint: true });
    const fd = track(open(file, O_RDONLY | O_CLOEXEC));
    for (const st of [fstat(fd), fstatat(AT_FDCWD, file), statx(AT_FDCWD, file), fstatx(fd)]) {
      expect(st.ino).toBe(ref.ino);
      expect(st.dev).toBe(ref.dev);
      expect(BigInt(st.mode)).toBe(ref.mode);
      expect(st.mode & S_IFMT).toBe(S_IFREG);
      expect(BigInt(st.nlink)).toBe(ref.nlink);
      expect(BigInt(st.uid)).toBe(ref.uid);
      expect(BigInt(st.gid)).toBe(ref.gid);
      expect(st.size).toBe(12345n);
      expect(st.mtimeNs).toBe(ref.mtimeNs);
      expect(st.ctimeNs).toBe(ref.ctimeNs);
      expect(st.atimeNs).toBe(ref.atimeNs);
      expect(makeDev(st.devMajor, st.devMinor)).toBe(st.dev);
    }
    expect(fstatx(fd).mntId).toBeGreaterThan(0n);
  });

  it('decodes device numbers of /dev/null (1:3)', () => {
    const st = fstatat(AT_FDCWD, '/dev/null');
    expect([st.rdevMajor, st.rdevMinor]).toEqual([1, 3]);
    const sx = statx(AT_FDCWD, '/dev/null');
    expect([sx.rdevMajor, sx.rdevMinor]).toEqual([1, 3]);
    expect(sx.rdev).toBe(st.rdev);
  });

  it('AT_SYMLINK_NOFOLLOW stats the link itself', () => {
    const st = fstatat(AT_FDCWD, '/proc/self', AT_SYMLINK_NOFOLLOW);
    expect(st.mode & S_IFMT).toBe(0o120000);
    expect(fstatat(AT_FDCWD, '/proc/self').mode & S_IFMT).toBe(S_IFDIR);
  });
});

describe('readlink', () => {
  it('reads /proc links and long targets', () => {
    expect(readlink('/proc/self/exe')).toBe(fs.readlinkSync('/proc/self/exe'));
    const dir = makeTempDir();
    const target = `/${'a'.repeat(200)}/${'b'.repeat(200)}/${'c'.repeat(200)}`;
    fs.symlinkSync(target, path.join(dir, 'l'));
    const dfd = track(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    expect(readlinkat(dfd, 'l')).toBe(target);
    expect(readlinkatBuffer(dfd, 'l').length).toBe(target.length);
  });
});

describe('fd manipulation', () => {
  it('dup, dup3, fcntl, flock, ftruncate, fallocate', () => {
    const dir = makeTempDir();
    const file = path.join(dir, 'f');
    const fd = track(open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o644));
    expect(fcntl(fd, F_GETFD) & FD_CLOEXEC).toBe(FD_CLOEXEC);
    expect(fcntl(fd, F_GETFL) & 3).toBe(O_RDWR);
    const d = track(dup(fd));
    expect(fcntl(d, F_GETFD) & FD_CLOEXEC).toBe(0);
    const target = d + 100;
    expect(dup3(fd, target, O_CLOEXEC)).toBe(target);
    track(target);
    expect(fstat(target).ino).toBe(fstat(fd).ino);
    flock(fd, LOCK_EX | LOCK_NB);
    const other = track(open(file, O_RDONLY | O_CLOEXEC));
    expect(() => flock(other, LOCK_EX | LOCK_NB)).toThrowError(/EAGAIN|EWOULDBLOCK/);
    flock(fd, LOCK_UN);
    flock(other, LOCK_EX | LOCK_NB);
    ftruncate(fd, 4096n);
    expect(fstat(fd).size).toBe(4096n);
    fallocate(fd, 0, 0, 8192);
    expect(fstat(fd).size).toBe(8192n);
    expect(pwrite(fd, Buffer.from('abc'), 3, 100n)).toBe(3);
    const b = Buffer.alloc(3);
    expect(pread(fd, b, 3, 100)).toBe(3);
    expect(b.toString()).toBe('abc');
    expect(lseek(fd, 7, SEEK_SET)).toBe(7n);
  });

  it('pipe2 and memfd_create', () => {
    const [r, w] = pipe2();
    track(r);
    track(w);
    expect(write(w, Buffer.from('xyz123'), 3, 3)).toBe(3);
    const b = Buffer.alloc(8);
    expect(b.toString('utf8', 0, read(r, b))).toBe('123');
    const m = track(memfdCreate('criu-ts-test', MFD_CLOEXEC));
    writeAll(m, Buffer.alloc(5000, 7));
    expect(fstat(m).size).toBe(5000n);
    expect(readlink(`/proc/self/fd/${m}`)).toBe('/memfd:criu-ts-test (deleted)');
  });
});
