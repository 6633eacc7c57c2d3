// Reads and writes whose buffers are sized to the file: an empty file, images of a few bytes, and
// images bigger than the largest buffer (1 MiB written, 256 KiB read at a time) read back whole.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImageDir, ImageReader, ImageWriter, PAGE_SIZE, readImage } from '../src/index.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'images-io-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const pstree = (i: number) => ({ pid: i + 1, ppid: i, pgid: 1, sid: 1, threads: [i + 1, 100000 + i] });

describe('image buffers sized to the file', () => {
  it('an empty file is refused by name, and an image of the magic alone has no entries', () => {
    const empty = join(tmp, 'pstree.img');
    writeFileSync(empty, '');
    expect(() => readImage(empty, 'PSTREE')).toThrow(/image magic needs 4 bytes but only 0 remain/);
    const dir = ImageDir.create(join(tmp, 'd'));
    dir.write('pstree', undefined, []);
    expect(statSync(dir.fileName('pstree')).size).toBe(8); // the two magics
    expect(dir.pstree()).toEqual([]);
  });

  it('a small image is written in one piece and read back', () => {
    const dir = ImageDir.create(tmp);
    dir.write('pstree', undefined, [pstree(1)]);
    expect(dir.pstree()).toEqual([pstree(1)]);
  });

  it('an image bigger than the write buffer and the read chunk reads back entry for entry', () => {
    const dir = ImageDir.create(tmp);
    const n = 150_000; // ~2.3 MiB of entries: the buffer grows, flushes at 1 MiB, reads take 9+ chunks
    const w = dir.writer('pstree');
    try {
      for (let i = 0; i < n; i++) w.write(pstree(i));
    } finally {
      w.close();
    }
    const size = statSync(dir.fileName('pstree')).size;
    expect(size).toBeGreaterThan(2 * 1024 * 1024);
    const all = dir.pstree();
    expect(all.length).toBe(n);
    for (const i of [0, 1, 16_000, 65_535, 99_999, n - 1]) expect(all[i]).toEqual(pstree(i));
    // The same bytes as written one entry at a time into a file of the magic and length-prefixed entries.
    const r = ImageReader.open(dir.fileName('pstree'), 'PSTREE');
    let count = 0;
    for (const e of r.entries()) {
      if (count % 10_000 === 0) expect(e.message).toEqual(pstree(count));
      count++;
    }
    r.close();
    expect(count).toBe(n);
  });

  it('blobs larger than a quarter of the buffer go straight through, between buffered entries', () => {
    const dir = ImageDir.create(tmp);
    const big = Buffer.alloc(600 * 1024, 0x5a);
    big.writeUInt32LE(0xdeadbeef, big.length - 4);
    const small = Buffer.from('hello');
    const w = dir.writer('pipes-data');
    try {
      w.write({ pipe_id: 1, bytes: small.length }, small);
      w.write({ pipe_id: 2, bytes: big.length }, big);
      w.write({ pipe_id: 3, bytes: small.length }, small);
    } finally {
      w.close();
    }
    const back = dir.read('pipes-data');
    expect(back.map((e) => e.message.pipe_id)).toEqual([1, 2, 3]);
    expect(Buffer.compare(back[1]!.extra as Buffer, big)).toBe(0);
    expect((back[2]!.extra as Buffer).toString()).toBe('hello');
    expect(readFileSync(dir.fileName('pipes-data')).length).toBeGreaterThan(big.length);
  });

  it('a pagemap of many entries (reserved in place) reads back across buffer boundaries', () => {
    const path = join(tmp, 'pagemap-1.img');
    const w = new ImageWriter(path, 'PAGEMAP');
    const n = 120_000;
    try {
      w.write({ pages_id: 1 });
      for (let i = 0; i < n; i++)
        w.write({
          vaddr: BigInt(i) * BigInt(PAGE_SIZE) * 2n + 0x7f0000000000n,
          nr_pages: BigInt(1 + (i % 7)),
          flags: 2,
        });
    } finally {
      w.close();
    }
    const { entries } = readImage(path, 'PAGEMAP');
    expect(entries.length).toBe(n + 1);
    expect(entries[n]!.message).toMatchObject({ nr_pages: BigInt(1 + ((n - 1) % 7)), flags: 2 });
    expect(entries[n]!.message.vaddr).toBe(BigInt(n - 1) * BigInt(PAGE_SIZE) * 2n + 0x7f0000000000n);
  });
});

describe('ImageDir.withMemo', () => {
  it('reads inventory, pstree, ids and fdinfo once; other images and plain dirs read the file each time', () => {
    const plain = ImageDir.create(tmp);
    plain.write('pstree', undefined, [pstree(1)]);
    plain.write('fdinfo-%u', 7, [{ id: 1, flags: 0, type: 1, fd: 3 }]);
    plain.write('pipes-data', undefined, [{ pipe_id: 1, bytes: 2 }], [Buffer.from('hi')]);
    const memo = plain.withMemo();
    expect(memo.pstree()).toEqual([pstree(1)]);
    expect(memo.fdinfo(7)).toEqual([{ id: 1, flags: 0, type: 1, fd: 3 }]);
    expect(memo.read('pipes-data').length).toBe(1);
    // Changed on disk behind its back: the memo keeps what it read, a plain dir sees the change.
    plain.write('pstree', undefined, [pstree(2)]);
    plain.write('fdinfo-%u', 7, []);
    plain.write('pipes-data', undefined, []);
    expect(memo.pstree()).toEqual([pstree(1)]);
    expect(memo.fdinfo(7)).toEqual([{ id: 1, flags: 0, type: 1, fd: 3 }]);
    expect(memo.read('pipes-data')).toEqual([]); // not kept
    expect(plain.pstree()).toEqual([pstree(2)]);
    // Written through the memoizing dir: forgotten, read again.
    memo.write('pstree', undefined, [pstree(3)]);
    expect(memo.pstree()).toEqual([pstree(3)]);
  });
});
