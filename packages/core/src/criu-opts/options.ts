/**
 * CRIU's option set as one object: what the command line (apps/cli) and the RPC service
 * (apps/service, from criu_opts) both fill, with CRIU's defaults, as CRIU's CLI and RPC fill one
 * `opts`. run.ts maps it onto DumpOptions and RestoreOptions; log.ts opens the log it names.
 */
import type { CgroupMode } from '../cgroup/dump.js';
import { CPU_CAP } from '../cpuinfo/cap.js';
import type { NetworkLockMethod } from '../net-lock/index.js';

export interface CriuOptions {
  /** The command and its operands (`cpuinfo dump`). */
  command?: string;
  operands: string[];
  tree?: number;
  /** What becomes of a dumped tree: killed (CRIU's default), left running (-R) or stopped (-s). */
  finalState: 'dead' | 'running' | 'stopped';
  restoreDetached: boolean;
  restoreSibling: boolean;
  imagesDir: string;
  workDir?: string;
  logFile?: string;
  /** CRIU's log levels: 0 nothing, 1 errors, 2 warnings (default), 3 info, 4 debug. */
  verbosity: number;
  /** criu-ts's own: `text` (CRIU's layout, default) or `json` (pino's structured lines). */
  logFormat: 'text' | 'json';
  pidfile?: string;
  /** --address: the service's socket (service), the page server's address (page-server). */
  address?: string;
  /** --port: the page server's TCP port (page-server: 0 or none binds a free one; dump: where to connect). */
  port?: number;
  /** dump --page-server: memory goes to the page server at --address/--port. */
  pageServer: boolean;
  /** --ps-socket FD: the page server is on this connected socket instead (with --page-server). */
  psSocket?: number;
  statusFd?: number;
  shellJob: boolean;
  fileLocks: boolean;
  /** --action-script: programs run at each stage (notify/action-scripts.ts), in the order given. */
  actionScripts: string[];
  /** --auto-dedup: pages a dump holds are punched out of its parents; restore punches what it read. */
  autoDedup: boolean;
  tcpEstablished: boolean;
  tcpClose: boolean;
  skipInFlight: boolean;
  extUnixSk: boolean;
  /** --ghost-limit: the most disk space an unlinked file kept in the images may take (bytes). */
  ghostLimit?: bigint;
  /** --ghost-fiemap: find the data of unlinked files with FIEMAP (default), else SEEK_DATA/SEEK_HOLE. */
  ghostFiemap: boolean;
  /** --link-remap: link files whose name is gone back under a new one (link_remap.N). */
  linkRemap: boolean;
  displayStats: boolean;
  forceIrmap: boolean;
  irmapScanPaths: string[];
  freezeCgroup?: string;
  /** Seconds a dump may take to seize and freeze the tree (CRIU's default 10). */
  timeout: number;
  manageCgroups: CgroupMode;
  /** --cgroup-root [controller:]/path, in the order given. */
  cgroupRoots: Array<{ controller?: string; path: string }>;
  cgroupYard?: string;
  cgroupProps?: string;
  cgroupPropsFile?: string;
  cgroupDumpControllers: string[];
  networkLock?: NetworkLockMethod;
  /** --pre-dump-mode: unset means read (criu-ts's default; splice is refused by name). */
  preDumpMode?: 'splice' | 'read';
  /** --track-mem */
  trackMem: boolean;
  /** --prev-images-dir, as given (relative to the images dir). */
  prevImagesDir?: string;
  /** --cpu-cap: CRIU's CPU_CAP bits (cpuinfo/cap.ts); with IMAGE, dump writes cpuinfo.img and restore checks it. */
  cpuCap: number;
  features: string[];
  checkExtra: boolean;
  checkExperimental: boolean;
  help: boolean;
  version: boolean;
}

export function defaultOptions(): CriuOptions {
  return {
    operands: [],
    finalState: 'dead',
    restoreDetached: false,
    restoreSibling: false,
    imagesDir: '.',
    verbosity: 2,
    logFormat: 'text',
    pageServer: false,
    shellJob: false,
    fileLocks: false,
    actionScripts: [],
    autoDedup: false,
    tcpEstablished: false,
    tcpClose: false,
    skipInFlight: false,
    extUnixSk: false,
    ghostFiemap: true,
    linkRemap: false,
    displayStats: false,
    forceIrmap: false,
    irmapScanPaths: [],
    timeout: 10,
    manageCgroups: 'soft',
    cgroupRoots: [],
    cgroupDumpControllers: [],
    trackMem: false,
    cpuCap: CPU_CAP.DEFAULT,
    features: [],
    checkExtra: false,
    checkExperimental: false,
    help: false,
    version: false,
  };
}
