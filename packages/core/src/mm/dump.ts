import type { ProcDir, ProcStat } from '@criu-ts/bfd';
import type { MmEntry } from '@criu-ts/images';
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
    mm_saved_auxv: trimAuxv(words),
    vmas: vmas.map((v) => v.entry),
    dumpable: remote.dumpable,
    thp_disabled: remote.thpDisabled,
  };
}

/** The auxv up to and including its AT_NULL pair. */
function trimAuxv(words: bigint[]): bigint[] {
  for (let i = 0; i + 1 < words.length; i += 2) if (words[i] === 0n) return words.slice(0, i + 2);
  return words;
}
