import { randomBytes } from 'node:crypto';
import { UserRegs, xsaveComponent } from '@criu-ts/sys';
import { describe, expect, it } from 'vitest';
import {
  fpregsFromImage,
  fpregsToImage,
  gpregsFromImage,
  gpregsToImage,
  resumableRegs,
} from '../src/registers/x86.js';

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

describe('registers that resume as they are (the syscall restart folded in, as CRIU stores it)', () => {
  const IP = 0x7f00_0000_1234n;
  const stopped = (
    nr: bigint,
    ax: bigint,
    more: Partial<Record<'rdi' | 'rsi' | 'rdx' | 'r10', bigint>> = {},
  ) => {
    const r = new UserRegs().set('orig_rax', nr).set('rax', ax).set('rip', IP);
    for (const [k, v] of Object.entries(more)) r.set(k as 'rdi', v);
    return r;
  };
  const u64 = (v: bigint) => BigInt.asUintN(64, v);

  it('-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND: back onto the syscall instruction, rax = its number', () => {
    for (const ax of [-512n, -513n, -514n]) {
      const r = resumableRegs(stopped(0n, ax)); // read()
      expect([r.get('rip'), r.get('rax'), r.get('orig_rax')]).toEqual([IP - 2n, 0n, 0n]);
    }
    const p = resumableRegs(stopped(34n, -514n)); // pause()
    expect([p.get('rip'), p.get('rax')]).toEqual([IP - 2n, 34n]);
  });

  it('-ERESTART_RESTARTBLOCK of a relative sleep: run again for what it had left (rem)', () => {
    const n = resumableRegs(stopped(35n, -516n, { rdi: 0x1000n, rsi: 0x2000n }));
    expect([n.get('rip'), n.get('rax'), n.get('rdi'), n.get('rsi')]).toEqual([
      IP - 2n,
      35n,
      0x2000n,
      0x2000n,
    ]);
    // clock_nanosleep(clock, flags = 0, req, rem)
    const c = resumableRegs(stopped(230n, -516n, { rdi: 1n, rsi: 0n, rdx: 0x1000n, r10: 0x2000n }));
    expect([c.get('rip'), c.get('rax'), c.get('rdx'), c.get('r10')]).toEqual([
      IP - 2n,
      230n,
      0x2000n,
      0x2000n,
    ]);
    // no rem: the whole request again
    const z = resumableRegs(stopped(230n, -516n, { rsi: 0n, rdx: 0x1000n, r10: 0n }));
    expect(z.get('rdx')).toBe(0x1000n);
    // a futex wait with a timeout: run again as it was
    const f = resumableRegs(stopped(202n, -516n, { rdi: 0x3000n, r10: 0x4000n }));
    expect([f.get('rip'), f.get('rax'), f.get('rdi'), f.get('r10')]).toEqual([
      IP - 2n,
      202n,
      0x3000n,
      0x4000n,
    ]);
  });

  it('restart_syscall returns -EINTR where it is (its restart block stays in the dumping kernel)', () => {
    const r = resumableRegs(stopped(219n, -516n));
    expect([r.get('rip'), r.get('rax')]).toEqual([IP, u64(-4n)]);
  });

  it('leaves alone: user mode, a syscall that has its result, registers already folded; never edits its argument', () => {
    for (const [nr, ax] of [
      [-1n, -512n], // interrupted in user mode, rax whatever it was
      [0n, 5n], // read() returned 5
      [0n, -4n], // an EINTR the task will see (epoll_wait, or CRIU's image of a sleep)
      [0n, 0n], // folded already: ip on the syscall, rax = orig_rax
    ] as const) {
      const before = stopped(nr, ax);
      const r = resumableRegs(before);
      expect(r.buffer.equals(before.buffer)).toBe(true);
    }
    const orig = stopped(0n, -512n);
    const copy = Buffer.from(orig.buffer);
    resumableRegs(orig);
    expect(orig.buffer.equals(copy)).toBe(true);
    // folding twice is folding once
    const once = resumableRegs(stopped(35n, -516n, { rsi: 0x2000n }));
    expect(resumableRegs(once).buffer.equals(once.buffer)).toBe(true);
  });
});
