import { dedupImages, makeLogger, runDirs } from '@criu-ts/core';
import type { CriuOptions } from './options.js';

/**
 * `criu-ts dedup -D DIR` (CRIU's): the pages DIR holds itself are punched out of its parent images
 * (parent/, parent/parent/, ...), which keeps the chain restorable from DIR and frees their disk space.
 */
export function dedupCommand(o: CriuOptions): number {
  const { imagesDir, workDir } = runDirs(o);
  const log = makeLogger(o, workDir, 'dedup');
  try {
    const r = dedupImages(imagesDir);
    log.info(`Deduplicated ${r.pagemaps} pagemaps of ${imagesDir}: ${r.bytes} bytes freed`);
  } catch (e) {
    if (log.toFile) log.error(e instanceof Error ? e.message : String(e));
    throw e;
  } finally {
    log.flush();
  }
  return 0;
}
