/**
 * @criu-ts/core: checkpoint/restore logic. One folder per kernel object (mm, files, creds,
 * signals, timers, ...), each with its dump side; dump/ puts them together.
 */

export type { CgroupMode, CgroupRoot } from './cgroup/dump.js';
export { basicChecks, FEATURES, type Feature, type FeatureAnswer, featureNamed } from './check/features.js';
/** CPU compatibility of images (CRIU's cpuinfo.img, --cpu-cap). */
export {
  applyCpuCap,
  CPU_CAP,
  CpuCapSyntaxError,
  type CpuidFn,
  CpuinfoError,
  cpuCapNames,
  cpuinfoCheck,
  cpuinfoDump,
  cpuinfoEntry,
  featureName,
  hostCpu,
  readCpuinfo,
  readX86Cpu,
  validateCpuinfo,
  writeCpuinfo,
  type X86Cpu,
  xfeatureNames,
} from './cpuinfo/index.js';
/** CRIU's option set as one object, shared by the CLI and the RPC service, and its mapping to dump/restore. */
export * from './criu-opts/index.js';
export { type DumpOptions, type DumpResult, dump } from './dump/dump.js';
export { DumpError } from './dump/errors.js';
export { type PreDumpOptions, type PreDumpResult, preDump, SPLICE_REFUSED } from './dump/pre-dump.js';
/**
 * The fd driver seam: one driver per kind of fd, both directions (`FdDriver`; files/driver.ts says
 * how to add a kind).
 */
export type {
  FdCheckContext,
  FdDriver,
  FdDumpContext,
  FdDumpDriver,
  FdKind,
  FdRestoreContext,
  FdRestoreDriver,
  FileTable,
  InTaskContext,
  LateOpen,
  OpenFile,
} from './files/driver.js';
export {
  type LogBindings,
  type Logger,
  type LogLevel,
  levelOfVerbosity,
  type PinoLogger,
  type PinoLoggerOptions,
  pinoLogger,
  silentLogger,
} from './log/logger.js';
/** Deduplication of incremental images: --auto-dedup at dump (after a task's pagemap) and `dedup`. */
export { DedupError, dedupAfterDump, dedupImages, dedupParent, dedupShmemParent } from './mm/dedup.js';
export {
  type DirtyTrackMechanism,
  dirtyTrackMechanism,
  KEEPER_COMM,
  readKeeperState,
  STATE_FILE as TRACK_STATE_FILE,
} from './mm/track/index.js';
export { NETWORK_LOCK_METHODS, type NetworkLockMethod } from './net-lock/index.js';
export { type ActionScriptsOptions, actionScripts, bothNotify } from './notify/action-scripts.js';
export {
  callNotify,
  NOTIFY_STAGES,
  type Notify,
  type NotifyStage,
  notifyFailure,
  reportNotify,
  rpcNotifyHasPid,
} from './notify/index.js';
export type { Progress, ProgressKind, ProgressPhase } from './progress/progress.js';
export { fpregsFromImage, fpregsToImage, gpregsFromImage, gpregsToImage } from './registers/x86.js';
export * from './restore/index.js';
