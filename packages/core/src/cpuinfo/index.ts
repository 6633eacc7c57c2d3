/**
 * The CPU an image needs (CRIU's cpuinfo): `cpuinfo dump` / a dump with --cpu-cap writes cpuinfo.img
 * for this CPU; `cpuinfo check` / a restore with --cpu-cap compares it with this CPU before any task
 * exists, and refuses, naming what is missing, when this CPU cannot run the image's tasks.
 */
import { ImageDir } from '@criu-ts/images';
import { CPU_CAP, cpuCapNames } from './cap.js';
import { validateCpuinfo } from './check.js';
import { CpuinfoError, hostCpu, type X86Cpu } from './cpu.js';
import { hasFeature, X86_FEATURE } from './features.js';
import { openCpuinfoDir, readCpuinfo, writeCpuinfo } from './image.js';

export { applyCpuCap, CPU_CAP, CpuCapSyntaxError, cpuCapNames } from './cap.js';
export { validateCpuinfo } from './check.js';
export { type CpuidFn, CpuinfoError, type CpuVendor, hostCpu, readX86Cpu, type X86Cpu } from './cpu.js';
export { featureName, INS_FEATURES, NCAPINTS, WORD, X86_FEATURE, xfeatureNames } from './features.js';
export { cpuinfoEntry, readCpuinfo, writeCpuinfo } from './image.js';

type Log = (msg: string) => void;

/** This CPU, refused where CRIU refuses it (an FPU without FXSAVE), and said in the log as CRIU says it. */
function initCpu(log: Log): X86Cpu {
  const cpu = hostCpu();
  if (hasFeature(cpu.capability, X86_FEATURE.FPU) && !hasFeature(cpu.capability, X86_FEATURE.FXSR))
    throw new CpuinfoError('cpu: missing support fxsave/restore insns');
  log(`cpu: x86_family ${cpu.family} x86_vendor_id ${cpu.vendorString} x86_model_id ${cpu.modelId}`);
  log(
    `cpu: fpu: xfeatures_mask 0x${cpu.xfeaturesMask.toString(16)} xsave_size ${cpu.xsaveSize} xsave_size_max ${cpu.xsaveSizeMax}`,
  );
  return cpu;
}

/** `cpuinfo dump`: writes DIR/cpuinfo.img for this CPU (DIR made 0700 when missing, as a dump's). */
export function cpuinfoDump(imagesDir: string | ImageDir, log: Log = () => {}): void {
  const cpu = initCpu(log);
  writeCpuinfo(typeof imagesDir === 'string' ? ImageDir.create(imagesDir) : imagesDir, cpu);
}

/**
 * `cpuinfo check`: compares DIR/cpuinfo.img with this CPU under `cap` (CPU_CAP bits; none, as CRIU
 * takes it here, means all). Throws a CpuinfoError naming the first mismatch.
 */
export function cpuinfoCheck(imagesDir: string | ImageDir, cap: number, log: Log = () => {}): void {
  const cpu = initCpu(log);
  const dir = typeof imagesDir === 'string' ? openCpuinfoDir(imagesDir) : imagesDir;
  const checks = cap === CPU_CAP.NONE ? CPU_CAP.ALL : cap;
  log(`cpu: checking ${dir.fileName('cpuinfo')} (${cpuCapNames(checks)})`);
  validateCpuinfo(readCpuinfo(dir), cpu, checks);
}

/** A dump's part: cpuinfo.img when `cap` asks for the image (--cpu-cap), nothing otherwise (CRIU's default). */
export function dumpCpuinfoIfAsked(dir: ImageDir, cap: number | undefined, log: Log = () => {}): void {
  if (cap !== undefined && cap & CPU_CAP.IMAGE) cpuinfoDump(dir, log);
}

/** A restore's part, before any task exists: cpuinfo.img checked when `cap` asks for it (--cpu-cap). */
export function checkCpuinfoIfAsked(dir: ImageDir, cap: number | undefined, log: Log = () => {}): void {
  if (cap === undefined || !(cap & CPU_CAP.IMAGE)) return;
  validateCpuinfo(readCpuinfo(dir), initCpu(log), cap);
}
