// Chains of incremental images made from one real dump, for the tests of restore of PE_PARENT runs and
// of deduplication, while no pre-dump writes them: level 0 is the dump itself (every page present),
// each next level a copy of its other images whose pagemaps mark some pages PE_PARENT (in the level
// below) and the others present, with a `parent` link to the level below, relative as CRIU writes it.
// Every page has one owner, the newest level that holds it; the copies of a page in older levels are
// overwritten with garbage, so that a restore that reads a page from the wrong level shows it.
import fs from 'node:fs';
import path from 'node:path';
import {
  ImageWriter,
  PAGE_SIZE,
  PageMap,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  pagemapEntry,
} from '@criu-ts/images';

const PAGE = BigInt(PAGE_SIZE);
/** What superseded copies of pages are overwritten with. */
export const GARBAGE = Buffer.alloc(PAGE_SIZE, 0xa5);

/** Whether level `level` holds page `n` (the n-th page of the pagemap, counted over its runs). */
export type Holds = (level: number, n: number) => boolean;

/**
 * Stripes of 1, 2, 3, 64, 2, 300, 5 and 17 pages, alternately in the parent and present, shifted by
 * level: runs of one page and runs of hundreds, every level's boundaries elsewhere, and all levels
 * owning some of the first few pages too.
 */
export const stripes: Holds = (level, n) => {
  const blocks = [1, 2, 3, 64, 2, 300, 5, 17];
  const total = blocks.reduce((a, b) => a + b, 0);
  let at = (n + level * 2) % total;
  for (const [i, b] of blocks.entries()) {
    if (at < b) return (i + level) % 2 === 1;
    at -= b;
  }
  return false;
};

/** Every page in the parent. */
export const nothing: Holds = () => false;

export interface ChainPage {
  /** The pagemap's name. */
  pagemap: string;
  addr: bigint;
  /** Which level holds its data. */
  owner: number;
  /** Where each level that has a copy (the owner's, and garbage in older ones) keeps it. */
  copies: Array<{ level: number; file: string; off: bigint }>;
}

export interface Chain {
  /** Directories from the oldest (level 0, the dump) to the newest. */
  dirs: string[];
  /** Every page of every pagemap, with its owner. */
  pages: ChainPage[];
}

const isPagemap = (n: string) => /^pagemap-(shmem-)?\d+\.img$/.test(n);

/**
 * A chain of `levels` directories (in `base`) from dump `dump`: level 0 a copy of it, level k > 0 holds
 * the pages `holds(k, n)` says (present: PE_PRESENT, or PE_PRESENT|PE_LAZY as CRIU 4.2 marks private
 * anonymous runs, on odd levels), the others PE_PARENT.
 */
export function buildChain(dump: string, base: string, levels: number, holds: Holds = stripes): Chain {
  const names = fs.readdirSync(dump).filter(isPagemap).sort();
  const dirs = Array.from({ length: levels }, (_, k) => path.join(base, `level${k}`));
  const pages: ChainPage[] = [];
  for (const [k, dir] of dirs.entries()) {
    fs.cpSync(dump, dir, { recursive: true });
    if (k > 0) fs.symlinkSync(path.relative(dir, dirs[k - 1]!), path.join(dir, 'parent'));
  }
  for (const name of names) {
    const pm = new PageMap(dump, name);
    const data = fs.readFileSync(pm.pagesFile);
    const pagesName = path.basename(pm.pagesFile);
    // owner of each page, in pagemap order
    const owners: number[] = [];
    let n = 0;
    for (const r of pm.runs) {
      for (let i = 0n; i < r.pages; i++, n++) {
        let owner = 0;
        for (let k = levels - 1; k > 0; k--)
          if (holds(k, n)) {
            owner = k;
            break;
          }
        owners.push(owner);
        if (r.flags & PE_PRESENT) pages.push({ pagemap: name, addr: r.vaddr + i * PAGE, owner, copies: [] });
      }
    }
    const byAddr = new Map(pages.filter((p) => p.pagemap === name).map((p) => [p.addr, p]));
    for (const [k, dir] of dirs.entries()) {
      let pos = 0n;
      fs.rmSync(path.join(dir, name));
      const w = new ImageWriter(path.join(dir, name), 'PAGEMAP');
      w.write({ pages_id: pm.pagesId });
      const out: Buffer[] = [];
      let m = 0;
      for (const r of pm.runs) {
        if (!(r.flags & PE_PRESENT)) {
          // Runs with no data stay what they are, on every level.
          w.write(pagemapEntry(r.vaddr, r.pages, r.flags));
          m += Number(r.pages);
          continue;
        }
        let start = 0n;
        let present: boolean | undefined;
        const flush = (end: bigint) => {
          if (present === undefined || end === start) return;
          const flags = present ? PE_PRESENT | (k % 2 === 1 ? PE_LAZY : 0) : PE_PARENT;
          w.write(pagemapEntry(r.vaddr + start * PAGE, end - start, flags));
        };
        for (let i = 0n; i < r.pages; i++, m++) {
          const here = k === 0 || holds(k, m);
          if (here !== present) {
            flush(i);
            start = i;
            present = here;
          }
          if (!here) continue;
          const off = Number(r.dataOffset + i * PAGE);
          out.push(owners[m] === k ? data.subarray(off, off + PAGE_SIZE) : GARBAGE);
          byAddr
            .get(r.vaddr + i * PAGE)!
            .copies.push({ level: k, file: path.join(dir, pagesName), off: pos });
          pos += PAGE;
        }
        flush(r.pages);
      }
      w.close();
      fs.writeFileSync(path.join(dir, pagesName), Buffer.concat(out));
    }
    pm.close();
  }
  return { dirs, pages };
}

/** Rewrites pagemap `name` of `dir` with `edit` applied to its entries (same pages_id). */
export function rewritePagemap(
  dir: string,
  name: string,
  edit: (runs: Array<{ vaddr: bigint; pages: bigint; flags: number }>) => Array<{
    vaddr: bigint;
    pages: bigint;
    flags: number;
  }>,
): void {
  const pm = new PageMap(dir, name);
  const runs = edit(pm.runs.map((r) => ({ vaddr: r.vaddr, pages: r.pages, flags: r.flags })));
  pm.close();
  const file = path.join(dir, name);
  fs.rmSync(file);
  const w = new ImageWriter(file, 'PAGEMAP');
  w.write({ pages_id: pm.pagesId });
  for (const r of runs) w.write(pagemapEntry(r.vaddr, r.pages, r.flags));
  w.close();
}
