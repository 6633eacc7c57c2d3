// cpuinfo.img: one cpuinfo_entry with one cpuinfo_x86_entry, as CRIU writes it (capability_ver 2,
// 19 words, the XSAVE facts), and read back into what the checks compare (check.ts).
import {
  type CpuinfoEntry,
  type CpuinfoX86Entry,
  CpuinfoX86EntryVendor,
  ImageDir,
  ImageError,
} from '@criu-ts/images';
import { CpuinfoError, type X86Cpu } from './cpu.js';
import { NCAPINTS_V1, NCAPINTS_V2 } from './features.js';

/** The cpuinfo_entry CRIU writes for `cpu`. */
export function cpuinfoEntry(cpu: X86Cpu): CpuinfoEntry {
  const x86: CpuinfoX86Entry = {
    vendor_id: cpu.vendor === 'intel' ? CpuinfoX86EntryVendor.INTEL : CpuinfoX86EntryVendor.AMD,
    cpu_family: cpu.family,
    model: cpu.model,
    stepping: cpu.stepping,
    capability_ver: 2,
    capability: [...cpu.capability],
    ...(cpu.modelId ? { model_id: cpu.modelId } : {}),
    xfeatures_mask: cpu.xfeaturesMask,
    xsave_size: cpu.xsaveSize,
    xsave_size_max: cpu.xsaveSizeMax,
  };
  return { x86_entry: [x86] };
}

/** Writes DIR/cpuinfo.img for `cpu` (an older one of that name is replaced, as CRIU's). */
export function writeCpuinfo(dir: ImageDir, cpu: X86Cpu): void {
  dir.write('cpuinfo', undefined, [cpuinfoEntry(cpu)]);
}

/**
 * The x86 entry of DIR/cpuinfo.img, checked as CRIU checks it before comparing: present and not
 * empty, one x86 entry, a known vendor, a known capability version with its number of words. What
 * is wrong is one CpuinfoError line (an unreadable image: the ImageError's file, byte and reason).
 */
export function readCpuinfo(dir: ImageDir): CpuinfoX86Entry {
  const file = dir.fileName('cpuinfo');
  if (!dir.has('cpuinfo')) throw new CpuinfoError(`cpu: No cpuinfo image (${file})`);
  let entries: CpuinfoEntry[];
  try {
    entries = dir.messages('cpuinfo');
  } catch (e) {
    if (e instanceof ImageError) throw new CpuinfoError(`cpu: ${e.message}`, { cause: e });
    throw e;
  }
  const entry = entries[0];
  if (!entry) throw new CpuinfoError(`cpu: Unexpected EOF on ${file}: no cpuinfo entry after its magic`);
  const n = entry.x86_entry?.length ?? 0;
  const x86 = entry.x86_entry?.[0];
  if (n !== 1 || !x86)
    throw new CpuinfoError(`cpu: No x86 related cpuinfo in image, corruption (n_x86_entry = ${n})`);
  if (x86.vendor_id !== CpuinfoX86EntryVendor.INTEL && x86.vendor_id !== CpuinfoX86EntryVendor.AMD)
    throw new CpuinfoError(`cpu: Unknown cpu vendor ${x86.vendor_id}`);
  const words = x86.capability?.length ?? 0;
  const expected =
    x86.capability_ver === 1 ? NCAPINTS_V1 : x86.capability_ver === 2 ? NCAPINTS_V2 : undefined;
  if (expected === undefined)
    throw new CpuinfoError(`cpu: Image carries unknown capability version ${x86.capability_ver}`);
  if (words !== expected)
    throw new CpuinfoError(`cpu: Image carries ${words} words while ${expected} expected`);
  return x86;
}

/** Opens DIR for reading cpuinfo.img; a missing directory is one line, as CRIU's. */
export function openCpuinfoDir(path: string): ImageDir {
  try {
    return ImageDir.open(path);
  } catch (e) {
    if (e instanceof ImageError) throw new CpuinfoError(`Couldn't open image dir ${path}: ${e.reason}`);
    throw e;
  }
}
