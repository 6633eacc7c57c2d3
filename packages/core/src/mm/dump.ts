import type { ProcDir, ProcStat } from '@criu-ts/bfd';
import type { MmEntry } from '@criu-ts/images';
import { AT_NULL } from '@criu-ts/sys';
import { dumpAioRings } from '../aio/dump.js';
import type { DumpVma } from './vmas.js';

/** What only the task can say about its mm (injected: brk(0), prctl). */
export interface MmRemote {
  brk: bigint;
  dumpable: number;
  thpDisabled: boolean;
}

/**
 * mm-PID.img: the mm fields of /proc/PID/stat, the current brk, the saved auxv, the exe
 * file and every VMA. restore puts them back with prctl(PR_SET_MM_MAP).
 */
export function dumpMm(
  proc: ProcDir,
  stat: ProcStat,
  vmas: DumpVma[],
  exeFileId: number,
  remote: MmRemote,
): MmEntry {
  const auxv = proc.readBytes('auxv');
  // AIO rings: checked in the frozen task (refused if not as the kernel made them).
  const aios = typeof proc.pid === 'number' ? dumpAioRings(proc.pid, vmas) : [];
  const words: bigint[] = [];
  for (let off = 0; off + 8 <= auxv.length; off += 8) words.push(auxv.readBigUInt64LE(off));
  return {
    mm_start_code: stat.startCode,
    mm_end_code: stat.endCode,
    mm_start_data: stat.startData,
    mm_end_data: stat.endData,
    mm_start_stack: stat.startStack,
    mm_start_brk: stat.startBrk,
    mm_brk: remote.brk,
    mm_arg_start: stat.argStart,
    mm_arg_end: stat.argEnd,
    mm_env_start: stat.envStart,
    mm_env_end: stat.envEnd,
    exe_file_id: exeFileId,
    mm_saved_auxv: auxvForImage(words),
    vmas: vmas.map((v) => v.entry),
    ...(aios.length ? { aios } : {}),
    dumpable: remote.dumpable,
    thp_disabled: remote.thpDisabled,
  };
}

/**
 * Words of mm_saved_auxv CRIU reads at most (its AT_VECTOR_SIZE for x86_64: 22 pairs): CRIU refuses a
 * longer vector as a corrupt image, so criu-ts never writes more.
 */
export const AUXV_MAX_WORDS = 44;

const AUXV_END = BigInt(AT_NULL);
/**
 * Entries dropped, in this order, when a kernel gives more than AUXV_MAX_WORDS: ones that only describe
 * the kernel or the CPU (restore runs on the dumping kernel anyway) and that nothing reads back from
 * /proc/PID/auxv once a program runs. What locates the program (AT_PHDR, AT_ENTRY, AT_BASE, AT_EXECFN,
 * AT_SYSINFO_EHDR, AT_RANDOM) goes last. glibc keeps its own copy of the vector on the stack, which is
 * restored with the memory.
 */
const AUXV_DROP_FIRST = [
  1n, // AT_IGNORE
  51n, // AT_MINSIGSTKSZ
  28n, // AT_RSEQ_ALIGN
  27n, // AT_RSEQ_FEATURE_SIZE
  8n, // AT_FLAGS
  17n, // AT_CLKTCK
  24n, // AT_BASE_PLATFORM
  15n, // AT_PLATFORM
  26n, // AT_HWCAP2
];

/**
 * mm_saved_auxv as CRIU can read it: the pairs before AT_NULL (the kernel ends the vector with AT_NULL
 * itself when it is set again: PR_SET_MM_MAP zero-fills the rest), at most AUXV_MAX_WORDS words. This
 * kernel's 23 pairs with AT_NULL are 22 without: nothing but the terminator is left out here.
 */
export function auxvForImage(words: bigint[]): bigint[] {
  const pairs: Array<[bigint, bigint]> = [];
  for (let i = 0; i + 1 < words.length; i += 2) {
    if (words[i] === AUXV_END) break;
    pairs.push([words[i]!, words[i + 1]!]);
  }
  for (const type of AUXV_DROP_FIRST) {
    if (pairs.length * 2 <= AUXV_MAX_WORDS) break;
    const at = pairs.findIndex(([t]) => t === type);
    if (at >= 0) pairs.splice(at, 1);
  }
  return pairs.slice(0, AUXV_MAX_WORDS / 2).flat();
}
