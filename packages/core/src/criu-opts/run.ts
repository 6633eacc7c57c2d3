// From CRIU's option set to what dump() and restore() take: the one mapping the command line and the
// RPC service share, so that `criu-ts dump ...` and a criu_req DUMP with the same options do the same.

import type { DumpOptions } from '../dump/dump.js';
import type { PreDumpOptions } from '../dump/pre-dump.js';
import type { Logger } from '../log/logger.js';
import { actionScripts, bothNotify } from '../notify/action-scripts.js';
import type { Notify } from '../notify/index.js';
import type { Progress } from '../progress/progress.js';
import type { RestoreOptions } from '../restore/restore.js';
import type { CriuOptions } from './options.js';
import { absolutePath, OptionError } from './paths.js';

/**
 * A stage hook (CRIU's action-script names: pre-dump, post-dump, network-lock, ...), called
 * synchronously; throwing aborts the dump or restore: core's `Notify`.
 */
export type StageHook = Notify;

/** The directories of a run: -D and -W made absolute (relative -W: the current directory's). */
export interface RunDirs {
  imagesDir: string;
  workDir: string;
}

export function runDirs(o: Pick<CriuOptions, 'imagesDir' | 'workDir'>): RunDirs {
  const imagesDir = absolutePath(o.imagesDir, '-D');
  const workDir = o.workDir === undefined ? imagesDir : absolutePath(o.workDir, '-W');
  return { imagesDir, workDir };
}

/** What a run adds to the options: its log, its progress line, its interruption and stage hooks. */
export interface RunHooks {
  logger: Logger;
  progress?: Progress;
  /** Called between steps of a dump; throw to abort it (Ctrl-C, a client gone). */
  checkpoint?: () => void;
  notify?: StageHook;
  /** Where --action-script's scripts write (the log's fd, default stderr), and the log's flush. */
  scriptOutput?: { fd: number; flush(): void };
}

/** The run's stage hooks: the caller's (RPC notifications), then --action-script's scripts. */
function stageHooks(o: CriuOptions, imagesDir: string, hooks: RunHooks): { notify?: Notify } {
  const scripts = actionScripts({
    scripts: o.actionScripts,
    imagesDir,
    output: hooks.scriptOutput?.fd ?? 2,
    flush: () => hooks.scriptOutput?.flush(),
  });
  const notify = bothNotify(hooks.notify, scripts);
  return notify ? { notify } : {};
}

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

/** dump()'s options for the tree of `pid`, from CRIU's options. */
export function dumpOptionsOf(o: CriuOptions, pid: number, dirs: RunDirs, hooks: RunHooks): DumpOptions {
  const { imagesDir, workDir } = dirs;
  return {
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
    ...(o.autoDedup ? { autoDedup: true } : {}),
    irmap: { force: o.forceIrmap, scanPaths: o.irmapScanPaths },
    ...(o.ghostLimit !== undefined ? { ghostLimit: o.ghostLimit } : {}),
    ghostFiemap: o.ghostFiemap,
    linkRemap: o.linkRemap,
    cpuCap: o.cpuCap,
    ...(o.pageServer ? { pageServer: pageServerOf(o) } : {}),
    ...(o.trackMem ? { trackMem: true } : {}),
    ...(o.prevImagesDir !== undefined ? { prevImagesDir: o.prevImagesDir } : {}),
    logger: hooks.logger,
    ...(hooks.checkpoint ? { checkpoint: hooks.checkpoint } : {}),
    ...(hooks.progress ? { progress: hooks.progress } : {}),
    ...stageHooks(o, imagesDir, hooks),
  };
}

/** dump --page-server: where to connect (CRIU needs both --address and --port), or --ps-socket's socket. */
function pageServerOf(o: CriuOptions): { host: string; port: number } | { fd: number } {
  if (o.psSocket !== undefined) return { fd: o.psSocket };
  if (o.address === undefined || !o.port) throw new OptionError('--page-server needs --address and --port');
  return { host: o.address, port: o.port };
}

/** preDump()'s options for the tree of `pid`, from CRIU's options (pre-dump always tracks memory). */
export function preDumpOptionsOf(
  o: CriuOptions,
  pid: number,
  dirs: RunDirs,
  hooks: RunHooks,
): PreDumpOptions {
  if (o.pageServer) throw new OptionError('pre-dump --page-server is not supported by criu-ts yet');
  return {
    pid,
    imagesDir: dirs.imagesDir,
    workDir: dirs.workDir,
    timeoutMs: o.timeout * 1000,
    ...(o.freezeCgroup ? { freezeCgroup: o.freezeCgroup } : {}),
    ...(o.prevImagesDir !== undefined ? { prevImagesDir: o.prevImagesDir } : {}),
    ...(o.preDumpMode ? { preDumpMode: o.preDumpMode } : {}),
    ...(o.autoDedup ? { autoDedup: true } : {}),
    logger: hooks.logger,
    ...stageHooks(o, dirs.imagesDir, hooks),
  };
}

/** restore()'s options, from CRIU's options. */
export function restoreOptionsOf(o: CriuOptions, dirs: RunDirs, hooks: RunHooks): RestoreOptions {
  const { imagesDir, workDir } = dirs;
  return {
    imagesDir,
    workDir,
    shellJob: o.shellJob,
    sibling: o.restoreSibling,
    manageCgroups: o.manageCgroups,
    cgroupRoots: o.cgroupRoots,
    ...(o.cgroupYard ? { cgroupYard: absolutePath(o.cgroupYard, '--cgroup-yard', workDir) } : {}),
    ...(o.networkLock ? { networkLock: o.networkLock } : {}),
    tcpClose: o.tcpClose,
    cpuCap: o.cpuCap,
    ...(o.autoDedup ? { autoDedup: true } : {}),
    logger: hooks.logger,
    ...(hooks.progress ? { progress: hooks.progress } : {}),
    ...stageHooks(o, imagesDir, hooks),
  };
}
