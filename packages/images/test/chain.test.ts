// pageSources and supersededData on small hand-made chains: which level each page is read from, CRIU's
// precedence of flags, one-line errors, and the ranges deduplication frees.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ImageWriter,
  PAGE_SIZE,
  PageChainError,
  PageMap,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  pagemapEntry,
  pageSources,
  supersededData,
} from '../src/index.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'images-chain-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const P = BigInt(PAGE_SIZE);
const A = 0x10000n;

/** Level `name` with pagemap-1.img runs [first page, pages, flags] (pages file: that many pages present). */
function level(name: string, runs: Array<[number, number, number]>, parent?: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  const w = new ImageWriter(join(dir, 'pagemap-1.img'), 'PAGEMAP');
  w.write({ pages_id: 1 });
  let present = 0;
  for (const [first, n, flags] of runs) {
    w.write(pagemapEntry(A + BigInt(first) * P, n, flags));
    if (flags & PE_PRESENT) present += n;
  }
  w.close();
  writeFileSync(join(dir, 'pages-1.img'), Buffer.alloc(present * PAGE_SIZE));
  if (parent) symlinkSync(parent, join(dir, 'parent'));
  return dir;
}

const slices = (dir: string) => {
  const pm = PageMap.forTask(dir, 1);
  return pageSources(pm).slices.map((s) => [
    Number((s.addr - A) / P),
    Number(s.len / P),
    s.level,
    Number(s.off / P),
  ]);
};

describe('pageSources', () => {
  it('reads each page from the level that holds it, through PE_PARENT runs of the middle level', () => {
    level('g', [[0, 10, PE_PRESENT]]);
    level(
      'p',
      [
        [0, 4, PE_PARENT],
        [4, 4, PE_PRESENT | PE_LAZY],
        [8, 2, PE_PARENT],
      ],
      '../g',
    );
    const c = level(
      'c',
      [
        [0, 2, PE_PRESENT],
        [2, 8, PE_PARENT],
      ],
      '../p',
    );
    // [first page, pages, level, offset in pages of that level's file]
    expect(slices(c)).toEqual([
      [0, 2, 0, 0],
      [2, 2, 2, 2],
      [4, 4, 1, 0],
      [8, 2, 2, 8],
    ]);
  });

  it('a run marked PE_PARENT|PE_PRESENT is read from the parent, as CRIU reads it', () => {
    level('p', [[0, 2, PE_PRESENT]]);
    const c = level(
      'c',
      [
        [0, 1, PE_PARENT | PE_PRESENT],
        [1, 1, PE_PRESENT],
      ],
      '../p',
    );
    expect(slices(c)).toEqual([
      [0, 1, 1, 0],
      [1, 1, 0, 1],
    ]);
  });

  it('refuses, in one line, pages a parent has only on a page server, or not at all', () => {
    level('p', [[0, 1, PE_LAZY]]);
    const c = level('c', [[0, 2, PE_PARENT]], '../p');
    expect(() => slices(c)).toThrow(PageChainError);
    expect(() => slices(c)).toThrow(
      /pagemap-1\.img: the page at 0x10000 is in a parent image, but \S+\/c\/parent\/pagemap-1\.img has no data for it \(lazy: on a page server\)$/,
    );
    const d = level('d', [[1, 1, PE_PARENT]], '../p');
    expect(() => slices(d)).toThrow(
      /the page at 0x11000 is in a parent image, but \S+\/d\/parent\/pagemap-1\.img does not have it$/,
    );
  });
});

describe('supersededData', () => {
  it("names every older level's data of the pages the newest holds, down the chain, and nothing else", () => {
    level('g', [[0, 10, PE_PRESENT]]);
    level(
      'p',
      [
        [0, 4, PE_PARENT],
        [4, 4, PE_PRESENT],
        [8, 2, PE_PARENT],
      ],
      '../g',
    );
    const c = level(
      'c',
      [
        [0, 5, PE_PRESENT],
        [5, 5, PE_PARENT],
      ],
      '../p',
    );
    const pm = PageMap.forTask(c, 1);
    const got = supersededData(pm).map((r) => [
      r.file.split('/').slice(-2).join('/'),
      Number(r.off / P),
      Number(r.len / P),
    ]);
    // Pages 0-4: p holds page 4 (its offset 0), g pages 0-4 (CRIU's dedup_one_iovec goes down every level).
    expect(got).toEqual([
      ['g/pages-1.img', 0, 4],
      ['p/pages-1.img', 0, 1],
      ['g/pages-1.img', 4, 1],
    ]);
  });

  it('a parent link back to the directory itself names nothing of it', () => {
    const c = level('c', [[0, 3, PE_PRESENT]], '.');
    expect(supersededData(PageMap.forTask(c, 1))).toEqual([]);
  });
});
