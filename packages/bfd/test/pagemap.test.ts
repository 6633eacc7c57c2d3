// pagemap entries and PAGEMAP_SCAN on a live process with a known page pattern.

import { closeSync, openSync, readSync } from 'node:fs';
import { O_CLOEXEC, O_RDONLY, open, close as sysClose } from '@criu-ts/sys';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PAGE_IS_FILE,
  PAGE_IS_PRESENT,
  PAGE_IS_SWAPPED,
  PAGE_IS_WRITTEN,
  PAGE_SIZE,
  PAGEMAP_SCAN,
  Pagemap,
  PM_PRESENT,
  ProcDir,
  pagemapEntry,
} from '../src/index.js';
import { firstLine, killStarted, start, waitSleeping } from './helpers.js';

afterEach(killStarted);

const PAGES = 64;
const TOUCHED = [0, 1, 2, 3, 10, ...Array.from({ length: 10 }, (_, i) => 20 + i), 63];
const RUNS: [number, number][] = [
  [0, 4],
  [10, 11],
  [20, 30],
  [63, 64],
];

/** A python process with 64 anonymous pages of which TOUCHED are written, and an 8-page file mapping. */
async function startWorkload() {
  const py = start('python3', [
    '-c',
    [
      'import ctypes, mmap, os, signal, tempfile',
      'libc = ctypes.CDLL(None)',
      'libc.mmap.restype = ctypes.c_void_p',
      'libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]',
      `a = libc.mmap(None, ${PAGES} * 4096, 3, 0x22, -1, 0)`,
      `for i in ${JSON.stringify(TOUCHED)}: ctypes.memset(a + i * 4096, 7, 1)`,
      'fd, p = tempfile.mkstemp(); os.write(fd, b"y" * 8 * 4096); os.unlink(p)',
      'm = mmap.mmap(fd, 8 * 4096, mmap.MAP_SHARED, mmap.PROT_READ)',
      'sum(m[i * 4096] for i in range(8))',
      'print(hex(a), flush=True)',
      'signal.pause()',
    ].join('\n'),
  ]);
  const base = BigInt(await firstLine(py));
  await waitSleeping(py.pid);
  return { pid: py.pid, base };
}

const region = (base: bigint, [s, e]: [number, number], categories: number) => ({
  start: base + BigInt(s * PAGE_SIZE),
  end: base + BigInt(e * PAGE_SIZE),
  categories,
});

describe('pagemap', () => {
  it('PAGEMAP_SCAN is _IOWR("f", 16, struct pm_scan_arg) with a 96-byte argument', () => {
    expect(PAGEMAP_SCAN).toBe(((3 << 30) | (96 << 16) | (0x66 << 8) | 16) >>> 0);
  });

  it('reads entries for a range: present bits follow the touched pages; same bytes as pread', async () => {
    const { pid, base } = await startWorkload();
    const dir = ProcDir.open(pid);
    try {
      const pm = dir.pagemap();
      const end = base + BigInt(PAGES * PAGE_SIZE);
      const ents = pm.read(base, end);
      expect(ents).toHaveLength(PAGES);
      const present = [...ents].map((e, i) => (pagemapEntry.present(e) ? i : -1)).filter((i) => i >= 0);
      expect(present).toEqual(TOUCHED);
      for (const e of ents) {
        if (pagemapEntry.present(e)) {
          expect(pagemapEntry.swapped(e)).toBe(false);
          expect(pagemapEntry.exclusive(e)).toBe(true);
          expect(pagemapEntry.file(e)).toBe(false);
          expect(pagemapEntry.pfn(e)).not.toBe(0n); // root sees PFNs
        }
      }
      // the same bytes through a plain pread of the file
      const raw = Buffer.alloc(PAGES * 8);
      const fd = openSync(`/proc/${pid}/pagemap`, 'r');
      try {
        readSync(fd, raw, 0, raw.length, Number(base / BigInt(PAGE_SIZE)) * 8);
      } finally {
        closeSync(fd);
      }
      expect(Buffer.from(ents.buffer, ents.byteOffset, ents.byteLength).equals(raw)).toBe(true);
      // caller-provided output array
      const out = new BigUint64Array(PAGES + 10);
      const got = pm.read(base, end, out);
      expect(got.buffer).toBe(out.buffer);
      expect([...got]).toEqual([...ents]);
      expect(got[0]! & PM_PRESENT).toBe(PM_PRESENT);
    } finally {
      dir.close();
    }
  });

  for (const useIoctl of [true, false]) {
    it(`scan (${useIoctl ? 'PAGEMAP_SCAN ioctl' : 'pagemap fallback'}) finds the present runs`, async () => {
      const { pid, base } = await startWorkload();
      const fd = open(`/proc/${pid}/pagemap`, O_RDONLY | O_CLOEXEC);
      try {
        const pm = new Pagemap(fd, { useIoctl, vecLen: 2 });
        const end = base + BigInt(PAGES * PAGE_SIZE);
        const r = pm.scan(base, end, { categoryMask: PAGE_IS_PRESENT, returnMask: PAGE_IS_PRESENT });
        expect(r.via).toBe(useIoctl ? 'ioctl' : 'pagemap');
        expect(pm.ioctlAvailable).toBe(useIoctl);
        expect(r.regions).toEqual(RUNS.map((run) => region(base, run, PAGE_IS_PRESENT)));
        expect(r.walkEnd).toBe(end);
        expect(pm.presentRuns(base, end)).toEqual(RUNS.map((run) => region(base, run, PAGE_IS_PRESENT)));
        // the holes, by inverting PRESENT
        const holes = pm.scan(base, end, {
          categoryInverted: PAGE_IS_PRESENT,
          categoryMask: PAGE_IS_PRESENT,
          returnMask: PAGE_IS_PRESENT,
        });
        expect(holes.regions).toEqual(
          (
            [
              [4, 10],
              [11, 20],
              [30, 63],
            ] as [number, number][]
          ).map((run) => region(base, run, 0)),
        );
        // a page limit stops the walk after 5 pages: [0,4) and [10,11)
        const lim = pm.scan(base, end, {
          categoryMask: PAGE_IS_PRESENT,
          returnMask: PAGE_IS_PRESENT,
          maxPages: 5,
        });
        expect(lim.regions).toEqual(RUNS.slice(0, 2).map((run) => region(base, run, PAGE_IS_PRESENT)));
        expect(lim.walkEnd < end).toBe(true);
        if (!useIoctl) {
          expect(() => pm.scan(base, end, { categoryMask: PAGE_IS_WRITTEN })).toThrow(/PAGEMAP_SCAN/);
        }
      } finally {
        sysClose(fd);
      }
    });
  }

  it('ioctl and fallback agree on every VMA of the process', async () => {
    const { pid } = await startWorkload();
    const dir = ProcDir.open(pid);
    const fd = open(`/proc/${pid}/pagemap`, O_RDONLY | O_CLOEXEC);
    try {
      const viaIoctl = dir.pagemap();
      const viaFile = new Pagemap(fd, { useIoctl: false });
      const mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE;
      let files = 0;
      for (const vma of dir.maps()) {
        if (vma.path.startsWith('[v')) continue; // vvar/vdso/vsyscall: special mappings
        const a = viaIoctl.scan(vma.start, vma.end, {
          categoryAnyofMask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
          returnMask: mask,
        });
        const b = viaFile.scan(vma.start, vma.end, {
          categoryAnyofMask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
          returnMask: mask,
        });
        expect(a.via).toBe('ioctl');
        expect(a.regions, `${vma.start.toString(16)} ${vma.path}`).toEqual(b.regions);
        if (a.regions.some((r) => r.categories & PAGE_IS_FILE)) files++;
      }
      expect(files).toBeGreaterThan(0);
    } finally {
      dir.close();
      sysClose(fd);
    }
  });
});
