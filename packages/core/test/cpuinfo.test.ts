// cpuinfo.img and the --cpu-cap checks, through core's API: this CPU read as CRIU reads it (the image
// byte for byte CRIU's when CRIU is here), other CPUs through a CPUID given to readX86Cpu, CRIU's
// --cpu-cap syntax, images edited to claim what this CPU lacks, and broken images.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type CpuinfoX86Entry, ImageDir } from '@criu-ts/images';
import type { CpuidResult } from '@criu-ts/sys';
import { afterEach, describe, expect, it } from 'vitest';
import {
  applyCpuCap,
  CPU_CAP,
  CpuinfoError,
  cpuinfoCheck,
  cpuinfoDump,
  hostCpu,
  readX86Cpu,
  validateCpuinfo,
  type X86Cpu,
} from '../src/index.js';
import { CRIT, cleanup, haveCrit, tempDir } from './helpers.js';

afterEach(() => cleanup());

const CRIU = '/tmp/criu-zdtm-main/criu/criu';
const haveCriu = fs.existsSync(CRIU);

/** cpuinfo.img's one x86 entry in `dir`. */
function x86Of(dir: string): CpuinfoX86Entry {
  return ImageDir.open(dir).one('cpuinfo').x86_entry?.[0] as CpuinfoX86Entry;
}

/** A copy of this CPU's image in a new dir, edited by `edit`. */
function editedImage(edit: (e: CpuinfoX86Entry) => void): string {
  const dir = tempDir('cpuinfo-');
  cpuinfoDump(dir);
  const entry = ImageDir.open(dir).one('cpuinfo');
  edit(entry.x86_entry?.[0] as CpuinfoX86Entry);
  ImageDir.open(dir).write('cpuinfo', undefined, [entry]);
  return dir;
}

/** What check() throws, or 'ok'. */
function checkSays(dir: string, cap: number): string {
  try {
    cpuinfoCheck(dir, cap);
    return 'ok';
  } catch (e) {
    expect(e).toBeInstanceOf(CpuinfoError);
    const msg = (e as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
}

describe('cpuinfo: this CPU', () => {
  it('is read as CRIU reads it: cpuinfo.img byte for byte the one `criu cpuinfo dump` writes', () => {
    const ours = tempDir('cpuinfo-ours-');
    cpuinfoDump(ours);
    const bytes = fs.readFileSync(path.join(ours, 'cpuinfo.img'));
    // Without CRIU here: at least what CRIU's format requires (magics, one x86 entry, 19 words).
    expect(bytes.readUInt32LE(0)).toBe(0x54564319);
    expect(bytes.readUInt32LE(4)).toBe(0x61404013);
    const x86 = x86Of(ours);
    expect(x86.capability_ver).toBe(2);
    expect(x86.capability).toHaveLength(19);
    expect(x86.xfeatures_mask).toBe(hostCpu().xfeaturesMask);
    if (!haveCriu) return;
    const theirs = tempDir('cpuinfo-criu-');
    execFileSync(CRIU, ['cpuinfo', 'dump', '-D', theirs], { stdio: 'ignore' });
    expect(bytes.equals(fs.readFileSync(path.join(theirs, 'cpuinfo.img')))).toBe(true);
  });

  it.skipIf(!haveCrit)('reads with crit as this CPU: vendor, family, xsave sizes', () => {
    const dir = tempDir('cpuinfo-');
    cpuinfoDump(dir);
    const json = JSON.parse(
      execFileSync(CRIT, ['decode', '-i', path.join(dir, 'cpuinfo.img')], { encoding: 'utf8' }),
    );
    const e = json.entries[0].x86_entry[0];
    const cpu = hostCpu();
    expect(json.magic).toBe('CPUINFO');
    expect(e.vendor_id).toBe(cpu.vendor === 'intel' ? 'INTEL' : 'AMD');
    expect([e.cpu_family, e.model, e.stepping]).toEqual([cpu.family, cpu.model, cpu.stepping]);
    expect(e.capability).toEqual(cpu.capability);
    expect([e.xsave_size, e.xsave_size_max]).toEqual([cpu.xsaveSize, cpu.xsaveSizeMax]);
    // /proc/cpuinfo's flags agree with the words on what both name (the kernel's own words).
    const flags = new Set(
      /^flags\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? [],
    );
    for (const [name, word, bit] of [
      ['fpu', 0, 0],
      ['sse2', 0, 26],
      ['avx', 4, 28],
      ['avx2', 9, 5],
      ['avx512f', 9, 16],
      ['pku', 11, 3],
    ] as const)
      expect(`${name} ${((cpu.capability[word] as number) >>> bit) & 1}`).toBe(
        `${name} ${flags.has(name) ? 1 : 0}`,
      );
  });

  it('cpuinfo dump then check passes with every check, and an old image of that name is replaced', () => {
    const dir = tempDir('cpuinfo-');
    fs.writeFileSync(path.join(dir, 'cpuinfo.img'), 'stale');
    cpuinfoDump(dir);
    for (const cap of [CPU_CAP.NONE, CPU_CAP.DEFAULT, CPU_CAP.ALL, CPU_CAP.ALL | CPU_CAP.IMAGE])
      expect(checkSays(dir, cap)).toBe('ok');
  });
});

describe('cpuinfo: images that claim what this CPU lacks', () => {
  it('AVX-512 / PKRU / AMX state components this CPU does not have: refused by fpu, naming them', () => {
    const host = hostCpu();
    // Components this CPU lacks among opmask, ZMM_Hi256, Hi16_ZMM, PKRU, AMX tile config and data.
    const claim = [5n, 6n, 7n, 9n, 17n, 18n].map((b) => 1n << b).reduce((a, b) => a | b);
    const lacking = claim & ~host.xfeaturesMask;
    expect(lacking).not.toBe(0n);
    const dir = editedImage((e) => {
      e.xfeatures_mask = (e.xfeatures_mask ?? 0n) | claim;
    });
    const msg = checkSays(dir, CPU_CAP.DEFAULT);
    expect(msg).toMatch(`cpu: CPU xfeatures has unsupported bits (0x${lacking.toString(16)}): missing `);
    if (lacking & (1n << 17n)) expect(msg).toContain('AMX Tile config');
    if (lacking & (1n << 9n)) expect(msg).toContain('Protection Keys User registers');
    // ins alone does not look at XSAVE state: CRIU's --cpu-cap=^fpu.
    expect(checkSays(dir, CPU_CAP.INS)).toBe('ok');
  });

  it('a larger XSAVE area (or max size) than this CPU has: refused, with both sizes', () => {
    const host = hostCpu();
    const big = editedImage((e) => {
      e.xsave_size = host.xsaveSize + 8576;
    });
    expect(checkSays(big, CPU_CAP.FPU)).toMatch(
      `cpu: CPU xsave size mismatch (${host.xsaveSize + 8576}/${host.xsaveSize})`,
    );
    const bigMax = editedImage((e) => {
      e.xsave_size_max = host.xsaveSizeMax + 64;
    });
    expect(checkSays(bigMax, CPU_CAP.FPU)).toMatch(
      `cpu: CPU xsave max size mismatch (${host.xsaveSizeMax + 64}/${host.xsaveSizeMax})`,
    );
    expect(checkSays(big, CPU_CAP.INS | CPU_CAP.CPU)).toBe('ok');
  });

  it('instructions this CPU lacks (AVX512_4VNNIW, AVX512_4FMAPS): refused by ins, named', () => {
    const host = hostCpu();
    const word18 = host.capability[18] as number;
    const dir = editedImage((e) => {
      (e.capability as number[])[18] = (word18 | 0b1100) >>> 0;
    });
    const missing = ['avx512_4vnniw', 'avx512_4fmaps'].filter((_, i) => !(word18 & (4 << i)));
    expect(missing.length).toBeGreaterThan(0);
    expect(checkSays(dir, CPU_CAP.DEFAULT)).toBe(
      `cpu: CPU instruction capabilities do not match run time: missing ${missing.join(', ')}`,
    );
    expect(checkSays(dir, CPU_CAP.FPU)).toBe('ok');
  });

  it('a bit outside the instruction set (a thermal feature): only the strict cpu check refuses it', () => {
    const host = hostCpu();
    const word14 = host.capability[14] as number;
    const bit = [0, 1, 2, 4, 6].find((b) => !(word14 & (1 << b)));
    expect(bit).toBeDefined();
    const dir = editedImage((e) => {
      (e.capability as number[])[14] = (word14 | (1 << (bit as number))) >>> 0;
    });
    expect(checkSays(dir, CPU_CAP.DEFAULT)).toBe('ok');
    expect(checkSays(dir, CPU_CAP.CPU)).toMatch(/^cpu: CPU capabilities do not match run time: missing \w+$/);
    // And the other way round: a CPU with more than the image's is no "match" for cpu either.
    const less = editedImage((e) => {
      (e.capability as number[])[0] = ((host.capability[0] as number) & ~(1 << 25)) >>> 0; // no sse
    });
    expect(checkSays(less, CPU_CAP.DEFAULT)).toBe('ok');
    expect(checkSays(less, CPU_CAP.CPU)).toBe(
      'cpu: CPU capabilities do not match run time: not in the image sse',
    );
  });

  it('images CRIU does not take: unknown vendor, wrong number of words, unknown capability version', () => {
    expect(
      checkSays(
        editedImage((e) => {
          e.vendor_id = 0;
        }),
        CPU_CAP.ALL,
      ),
    ).toBe('cpu: Unknown cpu vendor 0');
    expect(
      checkSays(
        editedImage((e) => {
          e.capability = e.capability?.slice(0, 12);
        }),
        CPU_CAP.ALL,
      ),
    ).toBe('cpu: Image carries 12 words while 19 expected');
    expect(
      checkSays(
        editedImage((e) => {
          e.capability_ver = 3;
        }),
        CPU_CAP.ALL,
      ),
    ).toBe('cpu: Image carries unknown capability version 3');
    // capability_ver 1 (CRIU before 3.7): 12 words, the rest taken as this CPU's; no xsave fields.
    const v1 = editedImage((e) => {
      e.capability_ver = 1;
      e.capability = e.capability?.slice(0, 12);
      delete e.xfeatures_mask;
      delete e.xsave_size;
      delete e.xsave_size_max;
    });
    expect(checkSays(v1, CPU_CAP.ALL)).toBe('ok');
  });
});

describe('cpuinfo: broken images, one line each', () => {
  const good = () => {
    const dir = tempDir('cpuinfo-');
    cpuinfoDump(dir);
    return fs.readFileSync(path.join(dir, 'cpuinfo.img'));
  };
  const withBytes = (b: Buffer) => {
    const dir = tempDir('cpuinfo-bad-');
    fs.writeFileSync(path.join(dir, 'cpuinfo.img'), b);
    return dir;
  };

  it('missing, empty, magic only, truncated, wrong magic, another image under its name', () => {
    const bytes = good();
    expect(checkSays(tempDir('cpuinfo-none-'), CPU_CAP.DEFAULT)).toMatch(/^cpu: No cpuinfo image \(/);
    expect(checkSays(withBytes(Buffer.alloc(0)), CPU_CAP.DEFAULT)).toMatch(/cpuinfo\.img: at byte 0: /);
    expect(checkSays(withBytes(bytes.subarray(0, 8)), CPU_CAP.DEFAULT)).toMatch(
      /^cpu: Unexpected EOF on .*cpuinfo\.img: no cpuinfo entry after its magic$/,
    );
    expect(checkSays(withBytes(bytes.subarray(0, 40)), CPU_CAP.DEFAULT)).toMatch(
      /cpuinfo\.img: at byte 12: cpuinfo_entry entry needs \d+ bytes but only 28 remain/,
    );
    expect(checkSays(withBytes(Buffer.from('garbagegarbage')), CPU_CAP.DEFAULT)).toMatch(
      /cpuinfo\.img: at byte 0: unknown magic 0x62726167/,
    );
    // An inventory.img renamed: a CRIU image, but not this one.
    const inv = tempDir('cpuinfo-inv-');
    ImageDir.open(inv).write('inventory', undefined, [{ img_version: 2 }]);
    fs.renameSync(path.join(inv, 'inventory.img'), path.join(inv, 'cpuinfo.img'));
    expect(checkSays(inv, CPU_CAP.DEFAULT)).toMatch(/cpuinfo\.img: at byte \d+: .*magic/i);
    expect(checkSays('/nonexistent/criu-ts-cpuinfo', CPU_CAP.DEFAULT)).toMatch(
      /^Couldn't open image dir \/nonexistent\/criu-ts-cpuinfo: /,
    );
  });
});

describe('cpuinfo: --cpu-cap, as CRIU parses it', () => {
  it('starts from fpu,ins without the image; any value but none adds the image', () => {
    const d = CPU_CAP.DEFAULT;
    const cases: Array<[string | undefined, number]> = [
      [undefined, 0b1111],
      ['fpu', 0b1101],
      ['cpu', 0b1111],
      ['ins', 0b1101],
      ['all', 0b1111],
      ['none', 0],
      ['^none', 0b1111],
      ['^ins', 0b1001],
      ['fpu,^ins', 0b1001],
      ['^fpu,^ins', 0],
      ['^all', 0],
      ['^all,cpu', 0b1010],
      ['none,fpu', 0b1001],
    ];
    for (const [value, want] of cases) expect([value, applyCpuCap(d, value)]).toEqual([value, want]);
    expect(() => applyCpuCap(d, 'bogus')).toThrow("Unknown FPU mode `bogus' selected");
    expect(() => applyCpuCap(d, 'fpux')).toThrow("Unknown FPU mode `fpux' selected");
  });
});

// ---- other CPUs, through the CPUID readX86Cpu is given ----------------------------------------------------

const R = (eax = 0, ebx = 0, ecx = 0, edx = 0): CpuidResult => ({ eax, ebx, ecx, edx });
const vendorRegs = (s: string) => {
  const b = Buffer.from(s, 'latin1');
  return { ebx: b.readUInt32LE(0), edx: b.readUInt32LE(4), ecx: b.readUInt32LE(8) };
};

/** An Intel Skylake-SP-like CPU: family 6 model 0x55, AVX-512 and PKU, XSAVE of x87..PKRU. */
function intelCpuid(leaf: number, sub = 0): CpuidResult {
  const v = vendorRegs('GenuineIntel');
  const brand = Buffer.alloc(48);
  brand.write('       Intel(R) Xeon(R) Test CPU', 'latin1');
  switch (leaf) {
    case 0:
      return R(0x16, v.ebx, v.ecx, v.edx);
    case 1:
      // family 6, ext model 5, model 5, stepping 4; edx: fpu..sse2 (+fxsr); ecx: xsave, osxsave, avx
      return R(0x00050654, 0, (1 << 26) | (1 << 27) | (1 << 28), 0x07ffffff & ~(1 << 10) & ~(1 << 20));
    case 7:
      return sub === 0 ? R(0, (1 << 16) | (1 << 5), 1 << 3, 0) : R();
    case 0xd:
      if (sub === 0) return R(0x2e7, 2696, 2696, 0);
      if (sub === 1) return R(0xf);
      return R();
    case 0x80000000:
      return R(0x80000008);
    case 0x80000001:
      return R(0, 0, 1, 1 << 11);
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: {
      const o = (leaf - 0x80000002) * 16;
      return R(
        brand.readUInt32LE(o),
        brand.readUInt32LE(o + 4),
        brand.readUInt32LE(o + 8),
        brand.readUInt32LE(o + 12),
      );
    }
    default:
      return R();
  }
}

describe('cpuinfo: other CPUs (a CPUID given)', () => {
  it('an Intel family 6: extended model, rep_good and nopl set, XSAVE components masked as CRIU masks them', () => {
    const cpu = readX86Cpu(intelCpuid);
    expect(cpu).toMatchObject({
      vendor: 'intel',
      family: 6,
      model: 0x55,
      stepping: 4,
      modelId: 'Intel(R) Xeon(R) Test CPU',
      xsaveSize: 2696,
      xsaveSizeMax: 2696,
    });
    // x87, AVX, opmask, ZMM_Hi256, Hi16_ZMM, PKRU: SSE (bit 1) is dropped by CRIU's supervisor mask.
    expect(cpu.xfeaturesMask).toBe(0x2e5n);
    const has = (w: number, b: number) => ((cpu.capability[w] as number) >>> b) & 1;
    expect([has(3, 16), has(3, 20), has(3, 25)]).toEqual([1, 1, 1]); // rep_good, nopl, cpuid
    expect(has(10, 3)).toBe(1); // xsaves, from leaf 0xd.1
  });

  it('an image of that Intel CPU on this one: refused or accepted as the features say', () => {
    const intel = readX86Cpu(intelCpuid);
    const entry: CpuinfoX86Entry = {
      vendor_id: 1,
      cpu_family: intel.family,
      model: intel.model,
      stepping: intel.stepping,
      capability_ver: 2,
      capability: intel.capability,
      xfeatures_mask: intel.xfeaturesMask,
      xsave_size: intel.xsaveSize,
      xsave_size_max: intel.xsaveSizeMax,
    };
    const host: X86Cpu = hostCpu();
    let msg = 'ok';
    try {
      validateCpuinfo(entry, host, CPU_CAP.FPU);
    } catch (e) {
      msg = (e as Error).message;
    }
    // It had XSAVES (this CPU may not) or other components or sizes: some FPU line, or ok if all match.
    if (!(((host.capability[10] as number) >>> 3) & 1))
      expect(msg).toBe(
        'cpu: FPU feature required by image is not supported on host (fpu:0 fxsr:0 osxsave:0 xsaves:1): missing xsaves',
      );
  });

  it('AVX-512 state dumped on a CPU with it, restored on one without: fpu and ins both refuse, naming it', () => {
    const avx512 = readX86Cpu(intelCpuid);
    // The same CPU without AVX-512 and PKU: leaf 7 without them, XSAVE of x87, SSE and AVX only.
    const plain = readX86Cpu((leaf, sub = 0) => {
      if (leaf === 7 && sub === 0) return R(0, 1 << 5, 0, 0);
      if (leaf === 0xd && sub === 0) return R(0x7, 832, 832, 0);
      return intelCpuid(leaf, sub);
    });
    const entry: CpuinfoX86Entry = {
      vendor_id: 1,
      cpu_family: avx512.family,
      model: avx512.model,
      stepping: avx512.stepping,
      capability_ver: 2,
      capability: avx512.capability,
      xfeatures_mask: avx512.xfeaturesMask,
      xsave_size: avx512.xsaveSize,
      xsave_size_max: avx512.xsaveSizeMax,
    };
    const says = (cap: number) => {
      try {
        validateCpuinfo(entry, plain, cap);
        return 'ok';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(says(CPU_CAP.FPU)).toBe(
      'cpu: CPU xfeatures has unsupported bits (0x2e0): missing AVX-512 opmask, AVX-512 Hi256, AVX-512 ZMM_Hi256, Protection Keys User registers',
    );
    expect(says(CPU_CAP.INS)).toBe(
      'cpu: CPU instruction capabilities do not match run time: missing avx512f',
    );
    expect(says(CPU_CAP.CPU)).toBe('cpu: CPU capabilities do not match run time: missing avx512f, pku');
    // The other way round (the image of the plain CPU on the AVX-512 one): more is fine, but not the sizes.
    const back = {
      ...entry,
      capability: plain.capability,
      xfeatures_mask: plain.xfeaturesMask,
      xsave_size: 832,
      xsave_size_max: 832,
    };
    expect(() => validateCpuinfo(back, avx512, CPU_CAP.INS)).not.toThrow();
    expect(() => validateCpuinfo(back, avx512, CPU_CAP.FPU)).toThrow(
      'cpu: CPU xsave size mismatch (832/2696)',
    );
  });

  it('no XSAVE before CPUID level 0xd, and vendors criu-ts does not know are refused', () => {
    const old = readX86Cpu((leaf, sub) =>
      leaf === 0 ? { ...intelCpuid(0), eax: 0xb } : intelCpuid(leaf, sub),
    );
    expect(((old.capability[4] as number) >>> 26) & 1).toBe(0);
    expect([old.xfeaturesMask, old.xsaveSize]).toEqual([0n, 0]);
    const hygon = readX86Cpu((leaf, sub) =>
      leaf === 0 ? { eax: 0xd, ...vendorRegs('HygonGenuine') } : intelCpuid(leaf, sub),
    );
    expect(hygon.vendor).toBe('amd');
    expect(((hygon.capability[0] as number) >>> 31) & 1).toBe(0);
    expect(() =>
      readX86Cpu((leaf, sub) =>
        leaf === 0 ? { eax: 0xd, ...vendorRegs('CentaurHauls') } : intelCpuid(leaf, sub),
      ),
    ).toThrow('cpu: Unsupported CPU vendor CentaurHauls');
  });
});
