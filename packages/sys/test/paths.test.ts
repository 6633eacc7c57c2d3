// Names, owners, times and the layout of a file's data: linkat(AT_EMPTY_PATH) of an open file,
// mknodat / symlinkat, fchownat / fchmodat / utimensat, and the runs of data of a sparse file as
// FIEMAP and SEEK_DATA/SEEK_HOLE report them.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  close,
  fchmodat,
  fchownat,
  fiemapExtents,
  ftruncate,
  isSysError,
  linkat,
  mknodat,
  O_CLOEXEC,
  O_CREAT,
  O_RDWR,
  open,
  pwrite,
  S_IFIFO,
  seekDataRuns,
  symlinkat,
  utimensat,
} from '../src/index.js';
import { cleanup, makeTempDir } from './helpers.js';

afterEach(() => cleanup());

describe('names, owners, times, data runs', () => {
  it('linkat(AT_EMPTY_PATH) gives an open file a name again (not once it has none left)', () => {
    const d = makeTempDir();
    const a = path.join(d, 'a');
    fs.writeFileSync(a, 'x');
    fs.linkSync(a, path.join(d, 'keep'));
    const fd = open(a, O_RDWR | O_CLOEXEC);
    try {
      fs.unlinkSync(a);
      linkat(fd, '', AT_FDCWD, path.join(d, 'back'), AT_EMPTY_PATH);
      expect(fs.statSync(path.join(d, 'back')).ino).toBe(fs.statSync(path.join(d, 'keep')).ino);
      fs.unlinkSync(path.join(d, 'back'));
      fs.unlinkSync(path.join(d, 'keep'));
      let code = '';
      try {
        linkat(fd, '', AT_FDCWD, path.join(d, 'again'), AT_EMPTY_PATH);
      } catch (e) {
        code = isSysError(e, 'ENOENT') ? 'ENOENT' : String(e);
      }
      expect(code).toBe('ENOENT');
    } finally {
      close(fd);
    }
  });

  it('mknodat makes a FIFO, symlinkat a link; owner, mode and times are set as asked', () => {
    const d = makeTempDir();
    const fifo = path.join(d, 'fifo');
    mknodat(AT_FDCWD, fifo, S_IFIFO | 0o600);
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
    symlinkat('nowhere', AT_FDCWD, path.join(d, 'link'));
    expect(fs.readlinkSync(path.join(d, 'link'))).toBe('nowhere');
    fchownat(AT_FDCWD, fifo, 1234, 4321, AT_SYMLINK_NOFOLLOW);
    fchmodat(AT_FDCWD, fifo, 0o2640);
    utimensat(AT_FDCWD, fifo, 1_000_000_123_000n, 2_000_000_456_000n, AT_SYMLINK_NOFOLLOW);
    const st = fs.statSync(fifo, { bigint: true });
    expect([st.uid, st.gid, st.mode & 0o7777n]).toEqual([1234n, 4321n, 0o2640n]);
    expect([st.atimeNs, st.mtimeNs]).toEqual([1_000_000_123_000n, 2_000_000_456_000n]);
  });

  it('the data runs of a sparse file: the same from FIEMAP and from SEEK_DATA/SEEK_HOLE', () => {
    const d = makeTempDir();
    const fd = open(path.join(d, 'sparse'), O_RDWR | O_CREAT | O_CLOEXEC, 0o600);
    try {
      const page = Buffer.alloc(4096, 7);
      for (const at of [0, 1 << 20, 8 << 20]) pwrite(fd, page, page.length, at);
      const size = (8 << 20) + 3 * 4096;
      ftruncate(fd, size);
      const want = [
        { off: 0n, len: 4096n },
        { off: 1n << 20n, len: 4096n },
        { off: 8n << 20n, len: 4096n },
      ];
      expect(seekDataRuns(fd, BigInt(size))).toEqual(want);
      let extents: ReturnType<typeof fiemapExtents> | undefined;
      try {
        extents = fiemapExtents(fd, 2); // two at a time: the call is repeated from the last extent on
      } catch (e) {
        if (!isSysError(e, 'EOPNOTSUPP')) throw e;
      }
      if (extents) expect(extents).toEqual(want);
    } finally {
      close(fd);
    }
  });
});
