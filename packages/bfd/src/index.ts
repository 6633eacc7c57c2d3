// @criu-ts/bfd: buffered /proc readers and allocation-light parsers (CRIU's "bfd" engine).
//
// Low level: BfdBuffer (one reused, growable read buffer), Cursor (byte tokenizer), KeyTable
// (fixed keys by byte comparison). Parsers are pure functions over (Buffer, length). ProcDir
// caches the /proc/PID directory fd and reads every file through openat().

export { BfdBuffer, DEFAULT_BUFFER_SIZE } from './buffer.js';
export { type CgroupLine, parseCgroup } from './cgroup.js';
export { Cursor, unescapeOctal } from './cursor.js';
export {
  type EpollTfd,
  type EventfdInfo,
  type FanotifyInfo,
  type FanotifyMark,
  type FdInfo,
  type FdLock,
  type InotifyWatch,
  parseFdInfo,
  type TimerfdInfo,
} from './fdinfo.js';
export { KeyTable } from './keys.js';
export {
  type MapsEntry,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  parseMaps,
  parseSmaps,
  parseSmapsRollup,
  type SmapsCounters,
  type SmapsEntry,
  type SmapsRollup,
} from './maps.js';
export { type MountInfo, parseMountInfo } from './mountinfo.js';
export {
  PAGE_IS_ALL,
  PAGE_IS_FILE,
  PAGE_IS_GUARD,
  PAGE_IS_HUGE,
  PAGE_IS_PFNZERO,
  PAGE_IS_PRESENT,
  PAGE_IS_SOFT_DIRTY,
  PAGE_IS_SWAPPED,
  PAGE_IS_WPALLOWED,
  PAGE_IS_WRITTEN,
  PAGE_SHIFT,
  PAGE_SIZE,
  PAGEMAP_SCAN,
  Pagemap,
  type PagemapOptions,
  type PageRegion,
  PM_FILE,
  PM_MMAP_EXCLUSIVE,
  PM_PFN_MASK,
  PM_PRESENT,
  PM_SCAN_CHECK_WPASYNC,
  PM_SCAN_WP_MATCHING,
  PM_SOFT_DIRTY,
  PM_SWAP,
  PM_UFFD_WP,
  pagemapEntry,
  type ScanOptions,
  type ScanResult,
} from './pagemap.js';
export { isGone, listPids, ProcDir, type ProcDirOptions } from './procdir.js';
export {
  PROC_ROOT,
  parseUptime,
  procExists,
  procPath,
  readProcLink,
  readProcText,
  readStat,
  readStatus,
  readSysctl,
  readSysctlInt,
  readUptime,
  type Uptime,
  withProcDir,
  writeProcText,
  writeSysctl,
} from './procfs.js';
export { type ProcStat, parseStat } from './stat.js';
export { type ProcStatus, parseStatus, type StatusVm } from './status.js';
export { parseChildren } from './task.js';
export {
  hasVmFlag,
  VM_FLAG_NAMES,
  VmFlag,
  type VmFlagName,
  vmFlagMask,
  vmFlagNames,
} from './vmflags.js';
