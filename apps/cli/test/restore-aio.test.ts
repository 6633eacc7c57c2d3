// `criu-ts dump` and `restore` of Linux native AIO contexts (io_setup): the ring comes back at its
// address as a ring of the kernel ("/[aio] (deleted)"), with its header (nr, head, tail) and the
// completed events it held, and the context id the task kept works for new requests. Checked from
// outside (/proc/PID/maps, the ring read through /proc/PID/mem, mm-PID.img) and by the aio workload's
// own report after restore.
import fs from 'node:fs';
import { featureNamed } from '@criu-ts/core';
import { ImageDir } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  cliDump,
  cliKillAndRestore,
  failLines,
  readLines,
  readMaps,
  runCli,
  startWorkload,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** The ring's header words (id, nr, head, tail, magic, compat, incompat, header length), from outside. */
function ringHeader(pid: number, ctx: bigint): number[] {
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  try {
    const b = Buffer.alloc(32);
    expect(fs.readSync(fd, b, 0, 32, ctx)).toBe(32);
    return Array.from({ length: 8 }, (_, i) => b.readUInt32LE(i * 4));
  } finally {
    fs.closeSync(fd);
  }
}

/** The completed events held in the ring between head and tail: [data, res] pairs. */
function ringEvents(pid: number, ctx: bigint): Array<[bigint, bigint]> {
  const [, nr, head, tail] = ringHeader(pid, ctx);
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  try {
    const out: Array<[bigint, bigint]> = [];
    for (let i = head!; i !== tail; i = (i + 1) % nr!) {
      const b = Buffer.alloc(32);
      fs.readSync(fd, b, 0, 32, ctx + 32n + BigInt(i * 32));
      out.push([b.readBigUInt64LE(0), b.readBigInt64LE(16)]);
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

const ringVma = (pid: number, ctx: bigint) => readMaps(pid).find((m) => m.start === ctx);

describe('criu-ts dump and restore: AIO contexts', () => {
  it('a wrapped ring with two completed events comes back at its address; the context id works on', async () => {
    const w = startWorkload('aio');
    const ringLine = await waitForLine(w.report, /^RING /, { pid: w.pid });
    const m = /^RING ctx=([0-9a-f]+) nr=(\d+) head=(\d+) tail=(\d+)$/.exec(ringLine)!;
    const ctx = BigInt(`0x${m[1]}`);
    const [nr, head, tail] = [Number(m[2]), Number(m[3]), Number(m[4])];
    // it wrapped: nr + 3 requests, all reaped but two
    expect([head, tail]).toEqual([1, 3]);
    const before = ringVma(w.pid, ctx)!;
    expect(before.path).toBe('/[aio] (deleted)');
    const header = ringHeader(w.pid, ctx);
    expect(header.slice(1, 4)).toEqual([nr, head, tail]);
    const events = ringEvents(w.pid, ctx);
    expect(events).toEqual([
      [BigInt(nr + 1), 8n],
      [BigInt(nr + 2), 8n],
    ]);

    const dir = await cliDump(w.pid);
    const mm = ImageDir.open(dir).mm(w.pid);
    const len = before.end - before.start;
    // As CRIU writes it: the ring's address, its length, and the nr_events that gives it again.
    expect(mm.aios).toEqual([
      { id: ctx, nr_req: Math.floor((Number(len - 32n) / 32 - 2) / 2), ring_len: Number(len) },
    ]);
    const vma = mm.vmas!.find((v) => v.start === ctx)!;
    expect(vma.status).toBe(1 << 13); // VMA_AREA_AIORING alone
    expect(vma.flags).toBe(1); // MAP_SHARED

    await cliKillAndRestore(dir);
    const after = ringVma(w.pid, ctx)!;
    expect(after).toBeDefined();
    expect(after.path).toBe('/[aio] (deleted)');
    expect([after.end, after.prot, after.shared]).toEqual([before.end, before.prot, true]);
    const header2 = ringHeader(w.pid, ctx);
    // nr, head, tail, magic, features and header length as they were (the id is the kernel's new index)
    expect(header2.slice(1)).toEqual(header.slice(1));
    expect(ringEvents(w.pid, ctx)).toEqual(events);

    const from = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^CHECK 3 /, { pid: w.pid, fromLine: from });
    const checks = readLines(w.report).slice(from);
    expect(checks[0]).toBe(`CHECK 1 leftover=ok io=ok head=${(tail + 2) % nr} tail=${(tail + 2) % nr}`);
    for (const c of checks) expect(c).toMatch(/^CHECK \d+ leftover=ok io=ok /);
    expect(failLines(w.report)).toEqual([]);
  });

  it('check --feature aio_remap: supported (the kernel moves a ring with its context); the probe leaves nothing', async () => {
    const r = await runCli(['check', '--no-default-config', '-verbosity=0', '--feature', 'aio_remap']);
    expect(r).toMatchObject({ code: 0, stdout: 'aio_remap is supported\n' });
    // In this process: the probe's context is destroyed, its ring gone from our maps.
    const rings = () => readMaps(process.pid).filter((m) => m.path.startsWith('/[aio]')).length;
    const had = rings();
    expect(featureNamed('aio_remap')!.probe()).toEqual({ ok: true });
    expect(rings()).toBe(had);
  });
});
