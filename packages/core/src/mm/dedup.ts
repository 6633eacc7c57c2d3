// Deduplication of incremental images (CRIU's --auto-dedup and `criu dedup`): once a dump holds a page
// itself, the copies of that page in its parent images (parent/, parent/parent/, ...) are not needed
// any more to restore it, and their disk blocks are freed by punching holes in the parents' pages
// files (the offsets of every other page stay). Which bytes go is images' supersededData.
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PARENT_LINK, PageMap, parseImageFileName, supersededData } from '@criu-ts/images';
import { HolePuncher } from './punch.js';

export class DedupError extends Error {
  override readonly name = 'DedupError';
}

/** Punches out of the parent images the pages pagemap `name` of `dir` holds; returns the bytes freed. */
function dedupPagemap(dir: string, name: string, punch: HolePuncher): void {
  const pm = new PageMap(dir, name);
  try {
    for (const r of supersededData(pm)) punch.punch(r.file, r.off, r.len);
  } finally {
    pm.close();
  }
}

function run(body: (punch: HolePuncher) => void): bigint {
  const punch = new HolePuncher((m) => new DedupError(m));
  try {
    body(punch);
  } finally {
    punch.close();
  }
  return punch.punched;
}

/**
 * --auto-dedup at dump, for task `pid` once its pagemap-PID.img (and pages) are written in `imagesDir`:
 * the pages it holds itself are punched out of the parent images. Nothing happens without a parent
 * directory or a parent pagemap of that pid. Returns the bytes freed.
 */
export function dedupParent(imagesDir: string, pid: number): bigint {
  return run((p) => dedupPagemap(imagesDir, `pagemap-${pid}.img`, p));
}

/** dedupParent for shared memory object `shmid` (pagemap-shmem-SHMID.img). */
export function dedupShmemParent(imagesDir: string, shmid: number | bigint): bigint {
  return run((p) => dedupPagemap(imagesDir, `pagemap-shmem-${shmid}.img`, p));
}

/**
 * --auto-dedup at the end of a dump: what dedupImages does, once every image is written (a dump that
 * fails before leaves its parents whole); nothing without a parent directory. Returns the bytes freed.
 */
export function dedupAfterDump(imagesDir: string): bigint {
  try {
    lstatSync(join(imagesDir, PARENT_LINK));
  } catch {
    return 0n;
  }
  return dedupImages(imagesDir).bytes;
}

/**
 * `criu-ts dedup -D DIR` (CRIU's cr_dedup): for every pagemap of the parent image (tasks and shared
 * memory) that DIR has too, the pages DIR holds are punched out of the chain below it. A dir without
 * a parent is an error, as in CRIU. Returns the bytes freed.
 */
export function dedupImages(imagesDir: string): { bytes: bigint; pagemaps: number } {
  const parent = join(imagesDir, PARENT_LINK);
  let names: string[];
  try {
    lstatSync(parent);
    names = readdirSync(parent).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new DedupError(`cannot enter the previous dump ${parent}: ${code}`);
  }
  let pagemaps = 0;
  const bytes = run((p) => {
    for (const name of names) {
      const f = parseImageFileName(name);
      if (f?.name.pattern !== 'pagemap-%lu' && f?.name.pattern !== 'pagemap-shmem-%lu') continue;
      // A task or object gone since the parent dump: nothing of it to dedup.
      try {
        lstatSync(join(imagesDir, name));
      } catch {
        continue;
      }
      dedupPagemap(imagesDir, name, p);
      pagemaps++;
    }
  });
  return { bytes, pagemaps };
}
