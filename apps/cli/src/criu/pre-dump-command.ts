import {
  type CriuOptions,
  DumpError,
  dumpStatsLines,
  makeLogger,
  preDump,
  preDumpOptionsOf,
  requireRoot,
  runDirs,
} from '@criu-ts/core';
import { ImageDir } from '@criu-ts/images';
import { writeText } from './write.js';

/**
 * `criu-ts pre-dump -t PID -D DIR [--prev-images-dir ../pre1] [--pre-dump-mode read]`: memory only,
 * the tree frozen just while its tracking is read and armed; it always runs on afterwards (CRIU's
 * "Enforcing tasks run after pre-dump") and its memory stays tracked for the next pre-dump or dump.
 */
export async function preDumpCommand(o: CriuOptions, version: string): Promise<number> {
  if (o.tree === undefined)
    throw new DumpError('pre-dump needs -t/--tree PID: the root of the tree to pre-dump');
  requireRoot('pre-dump');
  const dirs = runDirs(o);
  ImageDir.create(dirs.imagesDir);
  const log = makeLogger(o, dirs.workDir, 'pre-dump');
  try {
    log.info(`criu-ts ${version}: pre-dumping the tree of pid ${o.tree} into ${dirs.imagesDir}`);
    if (!o.trackMem) log.info('Enforcing memory tracking for pre-dump.');
    if (o.finalState !== 'running') log.info('Enforcing tasks run after pre-dump.');
    const r = await preDump(preDumpOptionsOf(o, o.tree, dirs, { logger: log, scriptOutput: log }));
    if (o.displayStats) writeText(1, `${dumpStatsLines(r.stats).join('\n')}\n`);
    return 0;
  } catch (err) {
    // The -o log says why, as CRIU's does; stderr gets the CLI's one line either way.
    if (log.toFile) {
      log.error(err instanceof Error ? err.message : String(err));
      log.error('Pre-dumping FAILED.');
    }
    throw err;
  } finally {
    log.flush();
  }
}
