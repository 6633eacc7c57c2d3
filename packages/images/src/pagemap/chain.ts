// Where the pages of a pagemap really are, across a chain of incremental dumps. A run marked PE_PARENT
// has its data in the `parent` directory (a symlink to the previous dump, relative as CRIU writes it),
// whose pagemap of the same name may itself send runs on to its own parent, and so on. resolving a
// pagemap gives, in address order, stretches of pages whose data lies back to back in one pages file
// of one level (level 0: the pagemap's own directory, 1: parent/, 2: parent/parent/, ...): what a
// restore reads with one pread each, with no cost per page. Nothing is read beyond what the images
// hold: a run whose pages no level has is a PageChainError naming the pagemap and the address.
//
// Each level is opened through the real path of its `parent` link, so a chain of any length is
// followed (no path of parent/parent/... that the kernel's limit of 40 symlinks per lookup would
// stop), and a link back to a directory already in the chain is a loop, refused.
import { lstatSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { PE_LAZY, PE_PARENT, PE_PRESENT } from './codec.js';
import { PAGE_SIZE, PageMap, type PageRun } from './page-map.js';

const PAGE = BigInt(PAGE_SIZE);
const hex = (v: bigint) => `0x${v.toString(16)}`;

/** The name of the link to the previous dump in an images directory (CRIU's CR_PARENT_LINK). */
export const PARENT_LINK = 'parent';

/** A chain of images that cannot give the pages a pagemap needs; the message is one line. */
export class PageChainError extends Error {
  override readonly name = 'PageChainError';
}

/** `len` bytes of pages at `addr`, whose data is at `off` in the pages file of level `level`. */
export interface PageSlice {
  addr: bigint;
  len: bigint;
  level: number;
  off: bigint;
}

/** One level of a chain: its pagemap (null: the level has none), as a user would name its directory. */
export interface ChainLevel {
  /** The directory as reached from the first one (DIR/parent/parent). */
  shown: string;
  /** Its real path. */
  real: string;
  pm: PageMap | null;
}

/** The pages of a pagemap and the levels they come from; `files[level]` is that level's pages file. */
export interface PageSources {
  slices: PageSlice[];
  /** Levels in use (level 0 always): their pagemaps and pages files. */
  levels: ChainLevel[];
  files: string[];
  /** Pages per level. */
  pages: number[];
}

/**
 * The levels of the chain above a pagemap, opened as they are needed. `at(k)` is level k; k = 0 is the
 * pagemap itself.
 */
export class PageChain {
  private readonly levels: Array<ChainLevel | null> = [];
  /** Level k that cannot be opened: why (no parent directory, a loop). */
  private readonly broken = new Map<number, string>();

  constructor(readonly pm: PageMap) {
    this.levels.push({ shown: pm.dir, real: realOrSelf(pm.dir), pm });
  }

  /** The display name of the pagemap of level k. */
  fileAt(k: number): string {
    const base = this.levels[0]!.shown;
    return join(base, ...Array<string>(k).fill(PARENT_LINK), this.pm.pagemapName);
  }

  /** Level k, or a PageChainError saying why it cannot be had (`want`: the address that needs it). */
  at(k: number, want: bigint): ChainLevel {
    while (this.levels.length <= k && !this.broken.has(this.levels.length)) this.open(this.levels.length);
    const lv = this.levels[k];
    const why = this.broken.get(k);
    const first = `${this.pm.pagemapName}: the page at ${hex(want)} is in a parent image`;
    if (!lv) throw new PageChainError(`${first}, but ${why ?? 'the chain ends before it'}`);
    if (!lv.pm) throw new PageChainError(`${first}, but ${this.fileAt(k)} is missing`);
    return lv;
  }

  private open(k: number): void {
    const below = this.levels[k - 1];
    if (!below) {
      this.broken.set(k, 'the chain ends before it');
      return;
    }
    const link = join(below.real, PARENT_LINK);
    const shown = join(below.shown, PARENT_LINK);
    try {
      lstatSync(link);
    } catch {
      this.broken.set(k, `${below.shown} has no parent directory (${PARENT_LINK})`);
      return;
    }
    let real: string;
    try {
      real = realpathSync(link);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      this.broken.set(k, `${shown} cannot be followed (${code})`);
      return;
    }
    const seen = this.levels.find((l) => l?.real === real);
    if (seen) {
      this.broken.set(k, `the chain of parent images loops: ${shown} is ${seen.shown} again`);
      return;
    }
    let pm: PageMap | null = null;
    try {
      pm = new PageMap(real, this.pm.pagemapName);
    } catch (e) {
      if ((e as { reason?: string }).reason?.startsWith('missing image')) pm = null;
      else throw new PageChainError(`${this.fileAt(k)}: ${(e as Error).message}`);
    }
    this.levels.push({ shown, real, pm });
  }
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Index of the first run that ends after `addr` (runs are in address order). */
function firstRunAfter(runs: PageRun[], addr: bigint): number {
  let lo = 0;
  let hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid]!;
    if (r.vaddr + r.pages * PAGE <= addr) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Where a run's data comes from, as CRIU reads it: PE_PARENT first (a run marked both is read from the
 * parent), then PE_PRESENT (CRIU 4.2 marks private anonymous runs PE_LAZY|PE_PRESENT: their data is
 * here), else nowhere in the images (PE_LAZY alone: a page server has it).
 */
export function runSource(flags: number): 'parent' | 'here' | 'lazy' | 'none' {
  if (flags & PE_PARENT) return 'parent';
  if (flags & PE_PRESENT) return 'here';
  if (flags & PE_LAZY) return 'lazy';
  return 'none';
}

const cache = new WeakMap<PageMap, PageSources>();

/**
 * The pages of `pm`, resolved through its chain of parents (memoized per PageMap). Runs with no data in
 * the images (PE_LAZY alone, or no flag) give no slice; a PE_PARENT run that no level holds throws.
 */
export function pageSources(pm: PageMap): PageSources {
  const have = cache.get(pm);
  if (have) return have;
  const chain = new PageChain(pm);
  const slices: PageSlice[] = [];
  const used = new Set<number>([0]);
  const push = (addr: bigint, len: bigint, level: number, off: bigint) => {
    used.add(level);
    const last = slices[slices.length - 1];
    if (last && last.level === level && last.addr + last.len === addr && last.off + last.len === off)
      last.len += len;
    else slices.push({ addr, len, level, off });
  };
  // Pages [addr, end) from level k: its runs there, each from its own data or from level k + 1.
  const fromLevel = (k: number, addr: bigint, end: bigint): void => {
    const lv = chain.at(k, addr);
    const runs = lv.pm!.runs;
    let i = firstRunAfter(runs, addr);
    for (let at = addr; at < end; i++) {
      const r = runs[i];
      if (!r || r.vaddr > at)
        throw new PageChainError(
          `${pm.pagemapName}: the page at ${hex(at)} is in a parent image, but ${chain.fileAt(k)} does not have it`,
        );
      const rEnd = r.vaddr + r.pages * PAGE;
      const stop = rEnd < end ? rEnd : end;
      const src = runSource(r.flags);
      if (src === 'here') push(at, stop - at, k, r.dataOffset + (at - r.vaddr));
      else if (src === 'parent') fromLevel(k + 1, at, stop);
      else
        throw new PageChainError(
          `${pm.pagemapName}: the page at ${hex(at)} is in a parent image, but ${chain.fileAt(k)} has no data for it (${src === 'lazy' ? 'lazy: on a page server' : 'no flags'})`,
        );
      at = stop;
    }
  };
  for (const r of pm.runs) {
    const src = runSource(r.flags);
    const end = r.vaddr + r.pages * PAGE;
    if (src === 'here') push(r.vaddr, end - r.vaddr, 0, r.dataOffset);
    else if (src === 'parent') fromLevel(1, r.vaddr, end);
  }
  const levels: ChainLevel[] = [];
  const files: string[] = [];
  const pages: number[] = [];
  const maxLevel = Math.max(...used);
  for (let k = 0; k <= maxLevel; k++) {
    const lv = chain.at(k, 0n);
    levels.push(lv);
    files.push(lv.pm!.pagesFile);
    pages.push(0);
  }
  for (const s of slices) pages[s.level]! += Number(s.len / PAGE);
  const out = { slices, levels, files, pages };
  cache.set(pm, out);
  return out;
}

/** `len` bytes at `off` of a pages file of a parent image. */
export interface FileRange {
  file: string;
  off: bigint;
  len: bigint;
}

/**
 * The data in the parent images (parent/, parent/parent/, ...) of the pages that `pm` holds itself (its
 * PE_PRESENT runs): what --auto-dedup and `dedup` punch out, with CRIU's dedup_one_iovec semantics. For
 * each such run, every level's data for those addresses goes, down the chain as far as it reaches; a
 * level that is missing, has no such pages or loops back ends the walk there (nothing of a directory
 * already in the chain, `pm`'s own, is ever named). Ranges of one file come joined where they touch.
 */
export function supersededData(pm: PageMap): FileRange[] {
  const chain = new PageChain(pm);
  const out: FileRange[] = [];
  const add = (file: string, off: bigint, len: bigint) => {
    const last = out[out.length - 1];
    if (last && last.file === file && last.off + last.len === off) last.len += len;
    else out.push({ file, off, len });
  };
  const walk = (k: number, addr: bigint, end: bigint): void => {
    let lv: ChainLevel;
    try {
      lv = chain.at(k, addr);
    } catch (e) {
      if (e instanceof PageChainError) return;
      throw e;
    }
    const runs = lv.pm!.runs;
    for (let i = firstRunAfter(runs, addr); i < runs.length; i++) {
      const r = runs[i]!;
      if (r.vaddr >= end) break;
      const a = r.vaddr > addr ? r.vaddr : addr;
      const rEnd = r.vaddr + r.pages * PAGE;
      const b = rEnd < end ? rEnd : end;
      if (runSource(r.flags) === 'here') add(lv.pm!.pagesFile, r.dataOffset + (a - r.vaddr), b - a);
      walk(k + 1, a, b);
    }
  };
  for (const r of pm.runs) if (runSource(r.flags) === 'here') walk(1, r.vaddr, r.vaddr + r.pages * PAGE);
  return out;
}
