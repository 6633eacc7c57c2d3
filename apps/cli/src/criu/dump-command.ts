import {
  type CriuOptions,
  DumpError,
  type DumpResult,
  dump,
  dumpOptionsOf,
  dumpStatsLines,
  makeLogger,
  requireRoot,
  runDirs,
} from '@criu-ts/core';
import { ImageDir } from '@criu-ts/images';
import { progressDisplay } from './progress.js';
import { writeText } from './write.js';

/** `criu-ts dump -t PID -D DIR`, with criu's options and meanings. */
export async function dumpCommand(o: CriuOptions, version: string): Promise<number> {
  if (o.tree === undefined) throw new DumpError('dump needs -t/--tree PID: the root of the tree to dump');
  const pid = o.tree;
  requireRoot('dump');
  const dirs = runDirs(o);
  const { imagesDir, workDir } = dirs;
  ImageDir.create(imagesDir); // 0700, before the log file can create it with other modes
  const log = makeLogger(o, workDir, 'dump');
  // On a terminal, a dump that takes more than a second shows how far it is (progress.ts).
  const progress = progressDisplay(o, log);
  let interrupted: string | undefined;
  const onSignal = (sig: string) => {
    interrupted = sig;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    log.info(`criu-ts ${version}: dumping the tree of pid ${pid} into ${imagesDir}`);
    const result = await dump(
      dumpOptionsOf(o, pid, dirs, {
        checkpoint: () => {
          if (interrupted) throw new DumpError(`interrupted by ${interrupted}; the tree was left running`);
        },
        logger: progress ? progress.wrapLog(log) : log,
        ...(progress ? { progress } : {}),
        scriptOutput: log,
      }),
    );
    progress?.end();
    log.info(`Dumping finished successfully: ${result.tasks} tasks, ${result.pagesWritten} pages`);
    if (o.displayStats) printStats(result);
    return 0;
  } catch (err) {
    progress?.end();
    // The -o log says why, as CRIU's does; stderr gets the CLI's one line either way.
    if (log.toFile) log.error(err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    progress?.end();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    log.flush();
  }
}

/** CRIU's --display-stats lines of a dump, on stdout whatever the verbosity. */
function printStats(r: DumpResult): void {
  writeText(1, `${dumpStatsLines(r.stats).join('\n')}\n`);
}
