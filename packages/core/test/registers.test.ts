import { randomBytes } from 'node:crypto';
import { UserRegs, xsaveComponent } from '@criu-ts/sys';
import { describe, expect, it } from 'vitest';
import { fpregsFromImage, fpregsToImage, gpregsFromImage, gpregsToImage } from '../src/registers/x86.js';

describe('x86 registers', () => {
  it('general registers survive the trip through the core image', () => {
    const regs = new UserRegs(randomBytes(27 * 8));
    const back = gpregsFromImage(gpregsToImage(regs));
    expect(back.buffer.equals(regs.buffer)).toBe(true);
  });

  it('the XSAVE area survives the trip, at the offsets this CPU reports', () => {
    const ymm = xsaveComponent(2);
    const size = Math.max(
      576 + 256,
      ...[5, 6, 7].map((b) => xsaveComponent(b)).map((c) => c.offset + c.size),
    );
    const xstate = randomBytes(size);
    // Only the fields CRIU keeps are compared: legacy area (minus reserved bytes) and components.
    xstate.fill(0, 416, 512);
    xstate.writeBigUInt64LE(0xe7n, 512);
    xstate.fill(0, 520, 576);
    const fp = fpregsToImage(xstate);
    expect(fp.xsave?.ymmh_space?.length).toBe(ymm.size / 4);
    const back = fpregsFromImage(fp, size);
    // The abridged tag word is one byte: byte 5 is reserved.
    xstate[5] = 0;
    for (const bit of [2, 5, 6, 7]) {
      const c = xsaveComponent(bit);
      if (c.size === 0) continue;
      expect(
        back.subarray(c.offset, c.offset + c.size).equals(xstate.subarray(c.offset, c.offset + c.size)),
      ).toBe(true);
    }
    expect(back.subarray(0, 416).equals(xstate.subarray(0, 416))).toBe(true);
    expect(back.readBigUInt64LE(512) & 0xe7n).toBe(0xe7n);
  });
});
