// The hand-assembled batch loop against GNU as, the code page layout, and where the scratch area goes.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MapsEntry } from '@criu-ts/bfd';
import { describe, expect, it } from 'vitest';
import {
  BATCH_ASM,
  BATCH_CODE,
  BATCH_DONE_RIP,
  BATCH_FAIL_RIP,
  chooseScratchAddress,
  codePage,
  STUB_OFFSET,
  SYSCALL_STUB,
} from '../src/index.js';

function hasBinutils(): boolean {
  try {
    execFileSync('as', ['--version'], { stdio: 'ignore' });
    execFileSync('objcopy', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const entry = (start: bigint, end: bigint, p = ''): MapsEntry => ({
  start,
  end,
  prot: 3,
  shared: false,
  pgoff: 0n,
  major: 0,
  minor: 0,
  ino: 0n,
  path: p,
  deleted: false,
});

describe('batch code', () => {
  it.runIf(hasBinutils())('BATCH_CODE is what GNU as makes of BATCH_ASM', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-compel-as-'));
    try {
      fs.writeFileSync(path.join(dir, 'b.S'), BATCH_ASM);
      execFileSync('as', ['--64', '-o', path.join(dir, 'b.o'), path.join(dir, 'b.S')]);
      execFileSync('objcopy', [
        '-O',
        'binary',
        '-j',
        '.text',
        path.join(dir, 'b.o'),
        path.join(dir, 'b.bin'),
      ]);
      expect(fs.readFileSync(path.join(dir, 'b.bin')).toString('hex')).toBe(BATCH_CODE.toString('hex'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has 55 bytes ending in two int3, and a page with the stub after it', () => {
    expect(BATCH_CODE).toHaveLength(55);
    expect(BATCH_CODE[BATCH_DONE_RIP - 1]).toBe(0xcc);
    expect(BATCH_CODE[BATCH_FAIL_RIP - 1]).toBe(0xcc);
    const page = codePage();
    expect(page).toHaveLength(4096);
    expect(page.subarray(0, BATCH_CODE.length).equals(BATCH_CODE)).toBe(true);
    expect(STUB_OFFSET).toBeGreaterThanOrEqual(BATCH_CODE.length);
    expect(page.subarray(STUB_OFFSET, STUB_OFFSET + 3).equals(SYSCALL_STUB)).toBe(true);
    expect(page.subarray(STUB_OFFSET + 3).every((b) => b === 0xcc)).toBe(true);
  });
});

describe('chooseScratchAddress', () => {
  const G = 0x1_0000_0000n;
  it('takes the first hole above 4 GiB with a free page on each side', () => {
    const maps = [entry(0x400000n, 0x500000n), entry(G, G + 0x3000n), entry(G + 0x5000n, G + 0x100000n)];
    // the 0x2000 hole between the two is too small for 0x1000 + 2 guard pages
    expect(chooseScratchAddress(maps, 0x1000n)).toBe(G + 0x100000n + 0x1000n);
    expect(chooseScratchAddress([entry(G + 0x10000n, G + 0x20000n)], 0x4000n)).toBe(G + 0x1000n);
  });
  it('keeps away from a stack that grows down, and fails when nothing fits', () => {
    const stack = entry(G + 0x300000n, G + 0x400000n, '[stack]');
    const top = entry(G + 0x400000n, 0x7fff_ffff_f000n);
    expect(chooseScratchAddress([entry(0n, G), stack, top], 0x1000n)).toBe(G + 0x1000n);
    expect(chooseScratchAddress([entry(0n, G + 0x200000n), stack, top], 0x1000n)).toBeUndefined();
  });
});
