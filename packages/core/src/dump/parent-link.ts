import { accessSync, constants, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '../log/logger.js';
import { DumpError } from './errors.js';

/**
 * The `parent` symlink of an incremental dump, as CRIU makes it: `prev` (--prev-images-dir) is taken
 * relative to the images directory and must be readable; the link holds `prev` as given (an existing
 * link is kept). Returns the parent directory's path.
 */
export function makeParentLink(imagesDir: string, prev: string, log: Logger): string {
  const target = resolve(imagesDir, prev);
  try {
    accessSync(target, constants.R_OK);
  } catch (e) {
    throw new DumpError(
      `Invalid parent image directory provided: ${prev}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    );
  }
  try {
    symlinkSync(prev, join(imagesDir, 'parent'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new DumpError(`Can't link parent snapshot: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  if (prev.startsWith('/')) log.warn('Absolute paths for parent links may not work on restore!');
  log.info(`Will do snapshot from ${prev}`);
  return target;
}
