// Image facts computed by core without a process (the CLI's end-to-end image facts are in
// apps/cli/test/image-facts.test.ts): the auxv CRIU can read, the itimer values a restore arms.
import { describe, expect, it } from 'vitest';
import { AUXV_MAX_WORDS, auxvForImage } from '../src/mm/dump.js';
import { itimerval } from '../src/timers/restore.js';

describe('auxv as CRIU reads it', () => {
  it('auxv longer than CRIU reads: what describes the kernel goes first, what locates the program stays', () => {
    const pairs: Array<[bigint, bigint]> = [
      [33n, 0x7000n], // AT_SYSINFO_EHDR
      [51n, 3376n], // AT_MINSIGSTKSZ
      [16n, 0xbfebfbffn], // AT_HWCAP
      [6n, 4096n], // AT_PAGESZ
      [17n, 100n], // AT_CLKTCK
      [3n, 0x5000n], // AT_PHDR
      [4n, 56n],
      [5n, 13n],
      [7n, 0x7100n], // AT_BASE
      [8n, 0n], // AT_FLAGS
      [9n, 0x5100n], // AT_ENTRY
      [11n, 0n],
      [12n, 0n],
      [13n, 0n],
      [14n, 0n],
      [23n, 0n],
      [25n, 0x7ff0n], // AT_RANDOM
      [26n, 2n], // AT_HWCAP2
      [31n, 0x7ff8n], // AT_EXECFN
      [15n, 0x7ff4n], // AT_PLATFORM
      [27n, 28n], // AT_RSEQ_FEATURE_SIZE
      [28n, 32n], // AT_RSEQ_ALIGN
      [29n, 1n], // newer kernels' entries
      [30n, 1n],
      [0n, 0n],
    ];
    const out = auxvForImage(pairs.flat());
    expect(out.length).toBe(AUXV_MAX_WORDS);
    const types = new Set(out.filter((_, i) => i % 2 === 0));
    for (const t of [33n, 3n, 7n, 9n, 25n, 31n, 16n, 6n, 29n, 30n])
      expect(types.has(t), `type ${t}`).toBe(true);
    for (const t of [0n, 51n, 28n]) expect(types.has(t), `type ${t}`).toBe(false);
    expect(types.has(27n)).toBe(true); // dropped only while the vector does not fit
    // this kernel's vector fits once AT_NULL is gone: nothing else is dropped
    expect(auxvForImage([...pairs.slice(0, 22).flat(), 0n, 0n])).toEqual(pairs.slice(0, 22).flat());
  });
});

describe('itimers', () => {
  it('itimer values at restore: as they were; value 0 with an interval is armed for one interval; 0/0 is off', () => {
    const t = (isec: bigint, iusec: bigint, vsec: bigint, vusec: bigint) => ({ isec, iusec, vsec, vusec });
    const words = (b: Buffer | undefined) => b && [0, 8, 16, 24].map((o) => b.readBigInt64LE(o));
    expect(words(itimerval(t(0n, 50_000n, 0n, 20_000n)))).toEqual([0n, 50_000n, 0n, 20_000n]);
    expect(words(itimerval(t(1n, 500n, 0n, 0n)))).toEqual([1n, 500n, 1n, 500n]);
    expect(words(itimerval(t(0n, 0n, 3n, 0n)))).toEqual([0n, 0n, 3n, 0n]);
    expect(itimerval(t(0n, 0n, 0n, 0n))).toBeUndefined();
    expect(itimerval(undefined)).toBeUndefined();
  });
});
