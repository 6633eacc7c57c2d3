import { DumpError, type DumpResult, dump } from '@criu-ts/core';
import { ImageDir } from '@criu-ts/images';
import { makeLogger } from './log.js';
import type { CriuOptions } from './options.js';
import { absolutePath, requireRoot } from './preflight.js';
import { progressDisplay } from './progress.js';
import { writeText } from './write.js';

/** The cgroup options of a dump; relative paths are the work dir's, as CRIU runs in it. */
function cgroupDumpOptions(o: CriuOptions, workDir: string) {
  return {
    mode: o.manageCgroups,
    roots: o.cgroupRoots,
    ...(o.cgroupYard ? { yard: absolutePath(o.cgroupYard, '--cgroup-yard', workDir) } : {}),
    ...(o.cgroupProps ? { props: o.cgroupProps } : {}),
    ...(o.cgroupPropsFile
      ? { propsFile: absolutePath(o.cgroupPropsFile, '--cgroup-props-file', workDir) }
      : {}),
    dumpControllers: o.cgroupDumpControllers,
  };
}

/** `criu-ts dump -t PID -D DIR`, with criu's options and meanings. */
export async function dumpCommand(o: CriuOptions, version: string): Promise<number> {
  if (o.tree === undefined) throw new DumpError('dump needs -t/--tree PID: the root of the tree to dump');
  const pid = o.tree;
  requireRoot('dump');
  const imagesDir = absolutePath(o.imagesDir, '-D');
  ImageDir.create(imagesDir); // 0700, before the log file can create it with other modes
  const workDir = o.workDir === undefined ? imagesDir : absolutePath(o.workDir, '-W');
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
    const result = await dump({
      pid,
      imagesDir,
      workDir,
      leaveRunning: o.finalState === 'running',
      leaveStopped: o.finalState === 'stopped',
      shellJob: o.shellJob,
      ...(o.freezeCgroup ? { freezeCgroup: o.freezeCgroup } : {}),
      cgroups: cgroupDumpOptions(o, workDir),
      timeoutMs: o.timeout * 1000,
      tcpEstablished: o.tcpEstablished,
      tcpClose: o.tcpClose,
      networkLock: o.networkLock ?? 'nftables',
      extUnixSk: o.extUnixSk,
      skipInFlight: o.skipInFlight,
      fileLocks: o.fileLocks,
      irmap: { force: o.forceIrmap, scanPaths: o.irmapScanPaths },
      ...(o.ghostLimit !== undefined ? { ghostLimit: o.ghostLimit } : {}),
      ghostFiemap: o.ghostFiemap,
      linkRemap: o.linkRemap,
      checkpoint: () => {
        if (interrupted) throw new DumpError(`interrupted by ${interrupted}; the tree was left running`);
      },
      logger: progress ? progress.wrapLog(log) : log,
      ...(progress ? { progress } : {}),
    });
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

/** CRIU's --display-stats lines of a dump (on stdout, whatever the verbosity), in its order. */
function printStats(r: DumpResult): void {
  const s = r.stats;
  const n = (v: bigint) => `${v} (0x${v.toString(16)})`;
  writeText(
    1,
    [
      'Displaying dump stats:',
      `Freezing time: ${s.freezing_time} us`,
      `Frozen time: ${s.frozen_time} us`,
      `Memory dump time: ${s.memdump_time} us`,
      `Memory write time: ${s.memwrite_time} us`,
      ...(s.irmap_resolve !== undefined ? [`IRMAP resolve time: ${s.irmap_resolve} us`] : []),
      `Memory pages scanned: ${n(s.pages_scanned)}`,
      `Memory pages skipped from parent: ${n(s.pages_skipped_parent)}`,
      `Memory pages written: ${n(s.pages_written)}`,
      `Lazy memory pages: ${n(s.pages_lazy)}`,
      '',
    ].join('\n'),
  );
}
