import { closeSync, writeSync } from 'node:fs';
import {
  absolutePath,
  type CriuOptions,
  checkPidfile,
  makeLogger,
  RestoreError,
  requireRoot,
  restore,
  restoreOptionsOf,
  restoreStatsLines,
  runDirs,
  waitForRoot,
  writePidfile,
} from '@criu-ts/core';
import type { RestoreStatsEntry } from '@criu-ts/images';
import { progressDisplay } from './progress.js';
import { writeText } from './write.js';

/**
 * `criu-ts restore -D DIR`, with criu's options and meanings. Resolves to criu-ts's exit status:
 * without -d, the restored root task's, as CRIU's.
 */
export async function restoreCommand(o: CriuOptions, version: string): Promise<number> {
  requireRoot('restore');
  const dirs = runDirs(o);
  const { imagesDir, workDir } = dirs;
  const log = makeLogger(o, workDir, 'restore');
  // CRIU refuses to overwrite a pidfile; found out before anything is created. The file itself comes
  // only once the tree runs, whole (writePidfile), so no kill of criu-ts leaves an empty one.
  const pidfilePath = o.pidfile ? absolutePath(o.pidfile, '--pidfile', workDir) : undefined;
  if (pidfilePath) checkPidfile(pidfilePath);
  // On a terminal, a restore that takes more than a second shows how far it is (progress.ts).
  const progress = progressDisplay(o, log);
  let root: number;
  try {
    log.info(`criu-ts ${version}: restoring from ${imagesDir}`);
    const result = restore(
      restoreOptionsOf(o, dirs, {
        logger: progress ? progress.wrapLog(log) : log,
        ...(progress ? { progress } : {}),
        scriptOutput: log,
      }),
    );
    progress?.end();
    root = result.root;
    log.info(`Restore finished successfully: root ${root}, ${result.pids.length} tasks`);
    if (pidfilePath) writePidfile(pidfilePath, root);
    if (o.displayStats) printStats(result.stats);
  } catch (e) {
    progress?.end();
    if (log.toFile) log.error(e instanceof Error ? e.message : String(e));
    throw e;
  } finally {
    progress?.end();
    log.flush();
  }
  // --status-fd: the caller learns the tree runs (a zero byte), then the fd is ours no more.
  if (o.statusFd !== undefined) {
    try {
      writeSync(o.statusFd, Buffer.of(0));
      closeSync(o.statusFd);
    } catch (e) {
      throw new RestoreError(`--status-fd ${o.statusFd}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }
  // criu-ts's exit code is the root task's. A sibling root is not ours to wait for: criu-ts's
  // parent gets it (CRIU: --restore-sibling only makes sense with -d).
  if (!o.restoreDetached && !o.restoreSibling) return waitForRoot(root);
  return 0;
}

/** CRIU's --display-stats lines of a restore, on stdout whatever the verbosity. */
function printStats(s: RestoreStatsEntry): void {
  writeText(1, `${restoreStatsLines(s).join('\n')}\n`);
}
