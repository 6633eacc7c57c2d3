// CRIU's option set, shared by the command line and the RPC service (see options.ts).
export { type DaemonStart, startDaemonCopy } from './daemon.js';
export { type CriuLog, makeLogger } from './log.js';
export { type CriuOptions, defaultOptions } from './options.js';
export { absolutePath, OptionError, requireRoot } from './paths.js';
export {
  dumpOptionsOf,
  preDumpOptionsOf,
  type RunDirs,
  type RunHooks,
  restoreOptionsOf,
  runDirs,
  type StageHook,
} from './run.js';
export { dumpStatsLines, restoreStatsLines } from './stats.js';
