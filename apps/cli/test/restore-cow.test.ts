// `criu-ts restore` keeps copy-on-write sharing: private pages a parent and its child still shared at
// the dump are one physical page again after the restore (same PFN in both /proc/PID/pagemap), pages
// either of them wrote are their own, and the child's dropped pages stay zero. The cow workload checks
// its contents itself.
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
  track,
  waitFor,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const PM_PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

/** PFN of each of `pages` pages from `addr` in `pid` (undefined where not present). */
function pfns(pid: number, addr: bigint, pages: number): Array<bigint | undefined> {
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    const b = Buffer.alloc(pages * 8);
    fs.readSync(fd, b, 0, b.length, Number((addr / 4096n) * 8n));
    return Array.from({ length: pages }, (_, i) => {
      const e = b.readBigUInt64LE(i * 8);
      return e & PM_PRESENT ? e & PFN_MASK : undefined;
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** Pages whose PFN is the same in both (present in both). */
function shared(a: Array<bigint | undefined>, b: Array<bigint | undefined>): number[] {
  return a.flatMap((x, i) => (x !== undefined && x === b[i] ? [i] : []));
}

const okAfter = (report: string, who: string, from: number) =>
  readLines(report)
    .slice(from)
    .some((l) => l.startsWith(`${who} `) && l.endsWith(' ok'));

describe('criu-ts restore: copy-on-write', () => {
  it('pages a parent and its child still shared come back shared; written and dropped ones do not', async () => {
    const w = startWorkload('cow');
    await waitFor(
      () => readLines(w.report).some((l) => l.startsWith('MAP ')) && okAfter(w.report, 'CHILD', 0),
      'cow to map and both tasks to check',
    );
    const lines = readLines(w.report);
    const child = Number(lines.find((l) => /^CHILD \d+$/.test(l))!.split(' ')[1]);
    track(child);
    const [, hexAddr, n] = lines.find((l) => l.startsWith('MAP '))!.split(' ');
    const addr = BigInt(`0x${hexAddr}`);
    const pages = Number(n);
    // Untouched by both: i % 4 == 3, and i % 8 == 6.
    const untouched = Array.from({ length: pages }, (_, i) => i).filter((i) => i % 4 === 3 || i % 8 === 6);
    expect(shared(pfns(w.pid, addr, pages), pfns(child, addr, pages))).toEqual(untouched);

    const dir = await dumpAndKill(w.pid, { kill: [w.pid, child] });
    const from = readLines(w.report).length;
    await restoreDetached(dir);
    await waitFor(
      () => okAfter(w.report, 'PARENT', from) && okAfter(w.report, 'CHILD', from),
      'both restored tasks checking their pages',
    );
    const after = { parent: pfns(w.pid, addr, pages), child: pfns(child, addr, pages) };
    expect(shared(after.parent, after.child)).toEqual(untouched);
    // The child's dropped pages are not the parent's (at most the zero page, once the child reads them).
    for (let i = 2; i < pages; i += 8) {
      expect(after.parent[i], `parent page ${i}`).toBeDefined();
      expect(after.child[i], `child page ${i}`).not.toBe(after.parent[i]);
    }
    expect(readLines(w.report).filter((l) => / bad \d+$/.test(l))).toEqual([]);
    expect(failLines(w.report)).toEqual([]);
  });
});
