import {
  CPU_CAP,
  CpuinfoError,
  type CriuOptions,
  cpuCapNames,
  cpuinfoCheck,
  cpuinfoDump,
  makeLogger,
  runDirs,
} from '@criu-ts/core';
import { ImageDir } from '@criu-ts/images';
import { UsageError } from './getopt.js';

/**
 * `criu-ts cpuinfo dump -D DIR` writes DIR/cpuinfo.img for this CPU; `criu-ts cpuinfo check -D DIR`
 * says whether this CPU can run what that image's CPU ran, with the checks of --cpu-cap (default fpu
 * and ins; none means all here, as CRIU takes it). CRIU's exit codes: check 0 or 1, dump 0 or 255.
 */
export function cpuinfoCommand(o: CriuOptions, err: (s: string) => void): number {
  const action = o.operands[0];
  if (action === undefined) throw new UsageError('cpuinfo requires an action: dump or check');
  if (action !== 'dump' && action !== 'check') throw new UsageError(`unknown cpuinfo sub-command: ${action}`);
  if (o.operands.length > 1)
    throw new UsageError(`excessive parameter${o.operands.length > 2 ? 's' : ''} for command cpuinfo`);
  const dirs = runDirs(o);
  if (action === 'dump') ImageDir.create(dirs.imagesDir); // 0700, before the log file can create it
  const log = makeLogger(o, dirs.workDir, 'cpuinfo');
  const debug = (m: string) => log.debug(m);
  try {
    if (action === 'dump') {
      cpuinfoDump(dirs.imagesDir, debug);
      log.info(`cpuinfo.img written in ${dirs.imagesDir}`);
    } else {
      cpuinfoCheck(dirs.imagesDir, o.cpuCap, debug);
      log.info(`cpuinfo.img of ${dirs.imagesDir} matches this CPU (${cpuCapNames(o.cpuCap || CPU_CAP.ALL)})`);
    }
    return 0;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (log.toFile) log.error(msg);
    if (!(e instanceof CpuinfoError) && !(e instanceof Error && e.name.startsWith('Image'))) throw e;
    err(`criu-ts: ${msg}\n`);
    return action === 'dump' ? 255 : 1;
  } finally {
    log.flush();
  }
}
