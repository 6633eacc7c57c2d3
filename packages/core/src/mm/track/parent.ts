// Which pages the parent chain of an incremental dump holds for a task: the pages a PE_PARENT entry
// of the new dump may point at. A level holds its PE_PRESENT runs and, of its PE_PARENT runs, what the
// level below holds; a page a level does not list at all is not held, whatever deeper levels say (the
// task had no such page at that dump).
import { existsSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PAGE_SIZE, PageMap, PE_PARENT, PE_PRESENT } from '@criu-ts/images';
import { intersect, normalize, type Range, union } from './intervals.js';

/** Deeper than this, a chain is taken for a loop (a `parent` link pointing back). */
const MAX_DEPTH = 64;

/** The ranges of task `pid`'s memory the images in `dir` hold, following `parent` links. */
export function heldByChain(dir: string, pid: number): Range[] {
  return held(dir, pid, 0, new Set());
}

function held(dir: string, pid: number, depth: number, seen: Set<string>): Range[] {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    return [];
  }
  if (depth > MAX_DEPTH || seen.has(real)) return [];
  seen.add(real);
  const file = join(dir, `pagemap-${pid}.img`);
  if (!existsSync(file)) return [];
  const pm = new PageMap(dir, `pagemap-${pid}.img`);
  try {
    const present: Range[] = [];
    const inParent: Range[] = [];
    let data = 0n;
    for (const r of pm.runs) {
      const range = { start: r.vaddr, end: r.vaddr + r.pages * BigInt(PAGE_SIZE) };
      if (r.flags & PE_PRESENT) {
        present.push(range);
        data += r.pages * BigInt(PAGE_SIZE);
      } else if (r.flags & PE_PARENT) inParent.push(range);
    }
    // Pages whose data is not all there (a pre-dump cut short) are not held.
    let size = 0n;
    try {
      size = BigInt(statSync(pm.pagesFile).size);
    } catch {
      size = 0n;
    }
    if (size < data) return [];
    const own = normalize(present);
    if (inParent.length === 0) return own;
    return union(own, intersect(normalize(inParent), held(join(dir, 'parent'), pid, depth + 1, seen)));
  } finally {
    pm.close();
  }
}
