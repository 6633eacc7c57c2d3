// The restore side of cpuinfo: with --cpu-cap, cpuinfo.img is compared with this CPU before the plan
// is made, so a refused restore has created nothing (no task, no cgroup, no file).
import type { ImageDir } from '@criu-ts/images';
import type { Logger } from '../log/logger.js';
import { RestoreError } from '../restore/errors.js';
import { CpuinfoError } from './cpu.js';
import { checkCpuinfoIfAsked } from './index.js';

export function checkCpuinfoForRestore(dir: ImageDir, cap: number | undefined, log: Logger): void {
  try {
    checkCpuinfoIfAsked(dir, cap, (m) => log.debug(m));
  } catch (e) {
    if (e instanceof CpuinfoError) throw new RestoreError(e.message, { cause: e });
    throw e;
  }
}
