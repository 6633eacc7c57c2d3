// The dump side of cpuinfo: with --cpu-cap, cpuinfo.img describes this CPU, written before the tree is
// seized (as CRIU writes it), so a CPU criu-ts cannot describe fails the dump with the tree untouched.
import type { ImageDir } from '@criu-ts/images';
import { DumpError } from '../dump/errors.js';
import type { Logger } from '../log/logger.js';
import { CpuinfoError } from './cpu.js';
import { dumpCpuinfoIfAsked } from './index.js';

export function dumpCpuinfo(dir: ImageDir, cap: number | undefined, log: Logger): void {
  try {
    dumpCpuinfoIfAsked(dir, cap, (m) => log.debug(m));
  } catch (e) {
    if (e instanceof CpuinfoError) throw new DumpError(e.message, { cause: e });
    throw e;
  }
}
