// This CPU as cpuinfo.img describes it: vendor, family/model/stepping, the 19 capability words and the
// XSAVE facts, all from CPUID (@criu-ts/sys's cpuid), computed the way CRIU's compel does, so that
// an image written here compares with one CRIU writes on the same machine, bit for bit.
import { type CpuidResult, cpuid } from '@criu-ts/sys';
import { hasFeature, NCAPINTS, WORD, X86_FEATURE } from './features.js';

export type CpuVendor = 'intel' | 'amd';

export interface X86Cpu {
  vendor: CpuVendor;
  /** CPUID(0)'s vendor string: GenuineIntel, AuthenticAMD, HygonGenuine. */
  vendorString: string;
  family: number;
  model: number;
  stepping: number;
  /** NCAPINTS (19) words, as CRIU's x86_capability. */
  capability: number[];
  /** The brand string, leading blanks removed (empty when the CPU has none). */
  modelId: string;
  /** The user XSAVE components this CPU supports, as CRIU's xfeatures_mask. */
  xfeaturesMask: bigint;
  /** CPUID(0xd,0).EBX: the XSAVE area size of the components the kernel enabled (XCR0). */
  xsaveSize: number;
  /** CPUID(0xd,0).ECX: the XSAVE area size of every component the CPU supports. */
  xsaveSizeMax: number;
}

/** Why this CPU cannot be described (not x86-64, an unknown vendor). */
export class CpuinfoError extends Error {
  override name = 'CpuinfoError';
}

export type CpuidFn = (leaf: number, sub?: number) => CpuidResult;

// Components CRIU keeps in xfeatures_mask (XFEATURE_MASK_USER), and what it then clears as
// "supervisor" (its XFEATURE_MASK_SUPERVISOR: bits 8, 1 and 3, since it ORs XFEATURE_HDC's index 10
// rather than its mask). The result is what CRIU writes; the same computation here matches it.
const XFEATURE_MASK_USER = 0x2ffn;
const XFEATURE_MASK_SUPERVISOR = 0x100n | 10n;
const XFEATURE_MASK_FPSSE = 3n;

/** The feature each of the first 11 XSAVE components needs in CPUID (CRIU's xsave_cpuid_features). */
const XSAVE_CPUID_FEATURES: readonly number[] = [
  X86_FEATURE.FPU,
  X86_FEATURE.XMM,
  X86_FEATURE.AVX,
  X86_FEATURE.MPX,
  X86_FEATURE.MPX,
  X86_FEATURE.AVX512F,
  X86_FEATURE.AVX512F,
  X86_FEATURE.AVX512F,
  X86_FEATURE.INTEL_PT,
  X86_FEATURE.PKU,
  X86_FEATURE.HDC,
];

function setBit(caps: number[], feature: number, on: boolean): void {
  const w = feature >> 5;
  const bit = 1 << (feature & 31);
  caps[w] = (on ? (caps[w] as number) | bit : (caps[w] as number) & ~bit) >>> 0;
}

function vendorString(r: CpuidResult): string {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(r.ebx, 0);
  b.writeUInt32LE(r.edx, 4);
  b.writeUInt32LE(r.ecx, 8);
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? 12 : nul).toString('latin1');
}

/** The brand string of leaves 0x80000002..4: up to the first NUL, leading blanks removed. */
function brandString(id: CpuidFn): string {
  const b = Buffer.alloc(48);
  for (let i = 0; i < 3; i++) {
    const r = id(0x80000002 + i);
    b.writeUInt32LE(r.eax, i * 16);
    b.writeUInt32LE(r.ebx, i * 16 + 4);
    b.writeUInt32LE(r.ecx, i * 16 + 8);
    b.writeUInt32LE(r.edx, i * 16 + 12);
  }
  const nul = b.indexOf(0);
  return b
    .subarray(0, nul < 0 ? 48 : nul)
    .toString('latin1')
    .replace(/^ +/, '');
}

/**
 * Reads this CPU (or what `id` answers: tests give other CPUs' CPUID) the way CRIU does: the leaves
 * the kernel fills its capability words from, the bits the kernel synthesizes that CRIU sets too
 * (cpuid, nopl, rep_good), and the XSAVE components CPUID enumerates and allows.
 */
export function readX86Cpu(id: CpuidFn = cpuid): X86Cpu {
  if (id === cpuid && process.arch !== 'x64')
    throw new CpuinfoError(`cpuinfo: only x86-64 CPUs are described by criu-ts (this is ${process.arch})`);
  const caps = new Array<number>(NCAPINTS).fill(0);
  const l0 = id(0);
  const level = l0.eax | 0;
  const vs = vendorString(l0);
  let vendor: CpuVendor;
  if (vs === 'GenuineIntel') vendor = 'intel';
  else if (vs === 'AuthenticAMD' || vs === 'HygonGenuine') vendor = 'amd';
  else throw new CpuinfoError(`cpu: Unsupported CPU vendor ${vs}`);

  let family = 4;
  let model = 0;
  let stepping = 0;
  if (level >= 1) {
    const r = id(1);
    family = (r.eax >>> 8) & 0xf;
    model = (r.eax >>> 4) & 0xf;
    stepping = r.eax & 0xf;
    if (family === 0xf) family += (r.eax >>> 20) & 0xff;
    if (family >= 6) model += ((r.eax >>> 16) & 0xf) << 4;
    caps[WORD.CPUID_1_EDX] = r.edx >>> 0;
    caps[WORD.CPUID_1_ECX] = r.ecx >>> 0;
  }
  if (level >= 6) caps[WORD.CPUID_6_EAX] = id(6).eax >>> 0;
  if (level >= 7) {
    const r = id(7, 0);
    caps[WORD.CPUID_7_0_EBX] = r.ebx >>> 0;
    caps[WORD.CPUID_7_0_ECX] = r.ecx >>> 0;
    caps[WORD.CPUID_7_0_EDX] = r.edx >>> 0;
  }
  if (level >= 0xd) caps[WORD.CPUID_D_1_EAX] = id(0xd, 1).eax >>> 0;
  if (level >= 0xf) {
    caps[WORD.CPUID_F_0_EDX] = id(0xf, 0).edx >>> 0;
    if (hasFeature(caps, X86_FEATURE.CQM_LLC)) caps[WORD.CPUID_F_1_EDX] = id(0xf, 1).edx >>> 0;
  }
  const ext = id(0x80000000).eax >>> 0;
  if ((ext & 0xffff0000) >>> 0 === 0x80000000 && ext >= 0x80000001) {
    const r = id(0x80000001);
    caps[WORD.CPUID_8000_0001_ECX] = r.ecx >>> 0;
    caps[WORD.CPUID_8000_0001_EDX] = r.edx >>> 0;
  }
  const modelId = ext >= 0x80000004 ? brandString(id) : '';
  if (ext >= 0x80000007) caps[WORD.CPUID_8000_0007_EBX] = id(0x80000007).ebx >>> 0;
  if (ext >= 0x8000000a) caps[WORD.CPUID_8000_000A_EDX] = id(0x8000000a).edx >>> 0;
  if (ext >= 0x80000008) caps[WORD.CPUID_8000_0008_EBX] = id(0x80000008).ebx >>> 0;

  // What the kernel synthesizes on x86-64, as CRIU sets it.
  setBit(caps, X86_FEATURE.CPUID, true);
  setBit(caps, X86_FEATURE.NOPL, true);
  if (level < 0xd) setBit(caps, X86_FEATURE.XSAVE, false);
  if (vendor === 'intel') {
    if (family === 15) {
      setBit(caps, X86_FEATURE.REP_GOOD, false);
      setBit(caps, X86_FEATURE.ERMS, false);
    } else if (family === 6) setBit(caps, X86_FEATURE.REP_GOOD, true);
  } else {
    setBit(caps, 31, false); // a nonstandard 3DNow bit in word 0; word 1 says 3DNow
    if (family >= 0x10) setBit(caps, X86_FEATURE.REP_GOOD, true);
    if (family === 0xf) {
      const sig = id(1).eax >>> 0;
      if ((sig >= 0x0f48 && sig < 0x0f50) || sig >= 0x0f58) setBit(caps, X86_FEATURE.REP_GOOD, true);
    }
  }

  let xfeaturesMask = 0n;
  let xsaveSize = 0;
  let xsaveSizeMax = 0;
  if (hasFeature(caps, X86_FEATURE.FPU) && hasFeature(caps, X86_FEATURE.XSAVE)) {
    const r = id(0xd, 0);
    xfeaturesMask = BigInt(r.eax >>> 0) | (BigInt(r.edx >>> 0) << 32n);
    // A CPU whose XSAVE lacks x87 and SSE is broken: CRIU keeps the raw mask and no sizes then.
    if ((xfeaturesMask & XFEATURE_MASK_FPSSE) === XFEATURE_MASK_FPSSE) {
      XSAVE_CPUID_FEATURES.forEach((feat, i) => {
        if (!hasFeature(caps, feat)) xfeaturesMask &= ~(1n << BigInt(i));
      });
      xfeaturesMask &= XFEATURE_MASK_USER;
      xfeaturesMask &= ~XFEATURE_MASK_SUPERVISOR;
      xsaveSize = r.ebx >>> 0;
      xsaveSizeMax = r.ecx >>> 0;
    }
  }
  return {
    vendor,
    vendorString: vs,
    family,
    model,
    stepping,
    capability: caps,
    modelId,
    xfeaturesMask,
    xsaveSize,
    xsaveSizeMax,
  };
}

let thisCpu: X86Cpu | undefined;

/** This CPU, read once. */
export function hostCpu(): X86Cpu {
  thisCpu ??= readX86Cpu();
  return thisCpu;
}
