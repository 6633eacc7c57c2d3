// alignedBuffer (what O_DIRECT needs) and cachestat (a file's pages in the page cache), on real files:
// one written through the page cache has its pages there, dirty until written out; one written past it
// (O_DIRECT, from an aligned buffer) has none.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { addressOf, alignedBuffer, cachestat, isAligned } from '../src/index.js';
import { cleanup, makeTempDir } from './helpers.js';

afterEach(() => cleanup());

const MIB = 1024 * 1024;

describe('alignedBuffer', () => {
  it('starts on a page, is as long as asked and zero-filled, whatever the size', () => {
    for (const size of [1, 4096, 12345, 4 * MIB]) {
      const b = alignedBuffer(size);
      expect(b.length).toBe(size);
      expect(addressOf(b) % 4096n).toBe(0n);
      expect(isAligned(b)).toBe(true);
      expect(b.every((x) => x === 0)).toBe(true);
    }
    expect(isAligned(alignedBuffer(8192).subarray(512), 4096)).toBe(false);
    expect(isAligned(alignedBuffer(8192).subarray(512), 512)).toBe(true);
  });
});

describe('cachestat', () => {
  it('counts the cached and dirty pages of a file written through the page cache, none of one written with O_DIRECT', () => {
    const dir = makeTempDir();
    const buffered = path.join(dir, 'buffered');
    fs.writeFileSync(buffered, Buffer.alloc(MIB, 7));
    const fd = fs.openSync(buffered, 'r');
    try {
      const s = cachestat(fd);
      expect(s).toBeDefined();
      expect(s!.cache).toBe(256);
      expect(s!.dirty + s!.writeback).toBeLessThanOrEqual(256);
      // A range: the first 16 pages only.
      expect(cachestat(fd, 0, 16 * 4096)!.cache).toBe(16);
    } finally {
      fs.closeSync(fd);
    }

    const direct = path.join(dir, 'direct');
    const wfd = fs.openSync(
      direct,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_DIRECT,
      0o600,
    );
    try {
      const b = alignedBuffer(MIB);
      b.fill(9);
      expect(fs.writeSync(wfd, b, 0, MIB, 0)).toBe(MIB);
      const s = cachestat(wfd);
      expect(s).toEqual({
        cache: 0,
        dirty: 0,
        writeback: 0,
        evicted: expect.any(Number),
        recentlyEvicted: expect.any(Number),
      });
    } finally {
      fs.closeSync(wfd);
    }
    expect(fs.readFileSync(direct).equals(Buffer.alloc(MIB, 9))).toBe(true);
  });
});
