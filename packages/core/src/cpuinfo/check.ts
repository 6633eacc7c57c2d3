// Whether this CPU can run what an image's CPU ran, as CRIU decides it (--cpu-cap): fpu compares the
// FPU features, the XSAVE components and both XSAVE sizes; ins, the instruction-set features; cpu,
// every capability word. The first mismatch is one line, CRIU's words, then what is missing by name.
import type { CpuinfoX86Entry } from '@criu-ts/images';
import { CPU_CAP } from './cap.js';
import { CpuinfoError, type X86Cpu } from './cpu.js';
import {
  featureName,
  featuresIn,
  hasFeature,
  INS_MASK,
  NCAPINTS,
  NCAPINTS_V1,
  X86_FEATURE,
  xfeatureNames,
} from './features.js';

/** What the image says, completed from this CPU where an older image says nothing (as CRIU does). */
interface ImageCpu {
  capability: number[];
  xfeaturesMask: bigint;
  xsaveSize: number;
  xsaveSizeMax: number;
}

function imageCpu(x86: CpuinfoX86Entry, host: X86Cpu): ImageCpu {
  const capability = [...(x86.capability ?? [])].map((w) => w >>> 0);
  // capability_ver 1 has 12 words; the rest are taken as this CPU's.
  if (x86.capability_ver === 1) capability.push(...host.capability.slice(NCAPINTS_V1, NCAPINTS));
  return {
    capability,
    xfeaturesMask: x86.xfeatures_mask ?? host.xfeaturesMask,
    xsaveSize: x86.xsave_size ?? host.xsaveSize,
    xsaveSizeMax: x86.xsave_size_max ?? host.xsaveSizeMax,
  };
}

const names = (features: number[]) => features.map(featureName).join(', ');

/**
 * Throws a CpuinfoError when `x86` (an image's CPU, checked by readCpuinfo) needs what `host` does not
 * have under the checks of `cap` (CPU_CAP bits; IMAGE is not looked at here).
 */
export function validateCpuinfo(x86: CpuinfoX86Entry, host: X86Cpu, cap: number): void {
  const img = imageCpu(x86, host);
  if (cap & CPU_CAP.FPU) {
    const fpuBits = [X86_FEATURE.FPU, X86_FEATURE.FXSR, X86_FEATURE.OSXSAVE, X86_FEATURE.XSAVES];
    const missing = fpuBits.map((b) => hasFeature(img.capability, b) && !hasFeature(host.capability, b));
    if (missing.some(Boolean)) {
      const [fpu, fxsr, osxsave, xsaves] = missing.map(Number);
      const what = fpuBits.filter((_, i) => missing[i]);
      throw new CpuinfoError(
        `cpu: FPU feature required by image is not supported on host (fpu:${fpu} fxsr:${fxsr} osxsave:${osxsave} xsaves:${xsaves}): missing ${names(what)}`,
      );
    }
    const m = img.xfeaturesMask & ~host.xfeaturesMask;
    if (m !== 0n)
      throw new CpuinfoError(
        `cpu: CPU xfeatures has unsupported bits (0x${m.toString(16)}): missing ${xfeatureNames(m).join(', ')}`,
      );
    if (img.xsaveSize !== host.xsaveSize)
      throw new CpuinfoError(
        `cpu: CPU xsave size mismatch (${img.xsaveSize}/${host.xsaveSize}): the image's tasks have an XSAVE area of ${img.xsaveSize} bytes, this CPU's is ${host.xsaveSize}`,
      );
    if (img.xsaveSizeMax !== host.xsaveSizeMax)
      throw new CpuinfoError(
        `cpu: CPU xsave max size mismatch (${img.xsaveSizeMax}/${host.xsaveSizeMax}): the image's CPU supports XSAVE components of ${img.xsaveSizeMax} bytes, this CPU's ${host.xsaveSizeMax}`,
      );
  }
  if (cap & CPU_CAP.INS) {
    const missing = featuresIn(img.capability, host.capability, INS_MASK);
    if (missing.length)
      throw new CpuinfoError(
        `cpu: CPU instruction capabilities do not match run time: missing ${names(missing)}`,
      );
  }
  if (cap & CPU_CAP.CPU) {
    const missing = featuresIn(img.capability, host.capability);
    const extra = featuresIn(host.capability, img.capability);
    if (missing.length || extra.length) {
      const parts = [
        ...(missing.length ? [`missing ${names(missing)}`] : []),
        ...(extra.length ? [`not in the image ${names(extra)}`] : []),
      ];
      throw new CpuinfoError(`cpu: CPU capabilities do not match run time: ${parts.join('; ')}`);
    }
  }
}
