// `criu-ts restore` of memory whose state is more than its bytes: madvise flags (MADV_DONTFORK),
// MAP_DROPPABLE mappings (kept droppable, their pages dropped as CRIU drops them) and guard regions
// (MADV_GUARD_INSTALL: the pages fault again). Checked from outside (/proc/PID/smaps VmFlags,
// /proc/PID/pagemap) and by the madvise workload's own report.
import fs from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  dumpAndKill,
  failLines,
  readLines,
  restoreDetached,
  startWorkload,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const PAGE = 4096n;
/** PM_GUARD_REGION: bit 58 of a /proc/PID/pagemap entry. */
const PM_GUARD_REGION = 1n << 58n;

/** VmFlags of the VMA of `pid` that contains `addr`. */
function vmFlags(pid: number, addr: bigint): string[] {
  let inside = false;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (m) inside = BigInt(`0x${m[1]}`) <= addr && addr < BigInt(`0x${m[2]}`);
    else if (inside && line.startsWith('VmFlags:')) return line.slice(8).trim().split(' ');
  }
  throw new Error(`no VMA at 0x${addr.toString(16)} in ${pid}`);
}

/** Which of `pages` pages from `addr` are guard pages, from /proc/PID/pagemap. */
function guardPages(pid: number, addr: bigint, pages: number): boolean[] {
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    const b = Buffer.alloc(pages * 8);
    fs.readSync(fd, b, 0, b.length, Number((addr / PAGE) * 8n));
    return Array.from({ length: pages }, (_, i) => (b.readBigUInt64LE(i * 8) & PM_GUARD_REGION) !== 0n);
  } finally {
    fs.closeSync(fd);
  }
}

describe('criu-ts restore: madvise state', () => {
  it('MADV_DONTFORK stays, MAP_DROPPABLE stays droppable and comes back zero, guard pages fault again', async () => {
    const w = startWorkload('madvise');
    await waitForLine(w.report, /^CHECK \d+ /, { pid: w.pid });
    const maps = readLines(w.report).find((l) => l.startsWith('MAPS '))!;
    const addr = Object.fromEntries(
      maps
        .split(' ')
        .slice(1)
        .map((kv) => kv.split('=') as [string, string])
        .map(([k, v]) => [k, BigInt(`0x${v}`)]),
    ) as Record<'dontfork' | 'droppable' | 'guard', bigint>;
    expect(readLines(w.report).at(-1)).toMatch(/ dontfork=ok droppable=data guard=ok$/);
    expect(guardPages(w.pid, addr.guard, 4)).toEqual([false, true, true, false]);

    const dir = await dumpAndKill(w.pid);
    const from = readLines(w.report).length;
    await restoreDetached(dir);
    await waitForLine(w.report, /^CHECK \d+ /, { pid: w.pid, fromLine: from });
    const after = readLines(w.report).slice(from);
    expect(after.at(-1)).toMatch(/ dontfork=ok droppable=zero guard=ok$/);
    expect(vmFlags(w.pid, addr.dontfork)).toContain('dc');
    expect(vmFlags(w.pid, addr.droppable)).toContain('dp');
    expect(guardPages(w.pid, addr.guard, 4)).toEqual([false, true, true, false]);
    expect(failLines(w.report)).toEqual([]);
  });
});
