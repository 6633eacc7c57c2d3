import { mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CoreEntry,
  ImageDir,
  ImageReader,
  imageFileName,
  PAGE_SIZE,
  PE_PARENT,
  PE_PRESENT,
  parseImageFileName,
  readImage,
} from '../src/index.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'images-test-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const page = (fill: number) => Buffer.alloc(PAGE_SIZE, fill);

describe('ImageDir', () => {
  it('creates the directory 0700 and images 0600, replacing old ones', () => {
    const dir = ImageDir.create(join(tmp, 'd'));
    expect(statSync(dir.path).mode & 0o777).toBe(0o700);
    dir.write('pstree', undefined, [{ pid: 10, ppid: 0, pgid: 10, sid: 10, threads: [10] }]);
    dir.write('pstree', undefined, [{ pid: 11, ppid: 0, pgid: 11, sid: 11, threads: [11, 12] }]);
    expect(statSync(dir.fileName('pstree')).mode & 0o777).toBe(0o600);
    expect(dir.pstree()).toEqual([{ pid: 11, ppid: 0, pgid: 11, sid: 11, threads: [11, 12] }]);
  });

  it('reads back typed entries with 64-bit values as bigint', () => {
    const dir = ImageDir.create(tmp);
    const core: CoreEntry = {
      mtype: 1,
      thread_info: {
        clear_tid_addr: 0x7fffffffe000n,
        gpregs: {
          r15: 0n,
          r14: 0n,
          r13: 0n,
          r12: 0n,
          bp: 0n,
          bx: 0n,
          r11: 0n,
          r10: 0n,
          r9: 0n,
          r8: 0n,
          ax: 0xffffffffffffffdcn,
          cx: 0n,
          dx: 0n,
          si: 0n,
          di: 0n,
          orig_ax: 35n,
          ip: 0x401000n,
          cs: 0x33n,
          flags: 0x246n,
          sp: 0x7ffc0000n,
          ss: 0x2bn,
          fs_base: 0n,
          gs_base: 0n,
          ds: 0n,
          es: 0n,
          fs: 0n,
          gs: 0n,
        },
        fpregs: { cwd: 0x37f, swd: 0, twd: 0, fop: 0, rip: 0n, rdp: 0n, mxcsr: 0x1f80, mxcsr_mask: 0xffff },
      },
      tc: { task_state: 1, exit_code: 0, personality: 0, flags: 0, blk_sigset: 0n, comm: 'sleep' },
    } as CoreEntry;
    dir.write('core-%u', 42, [core]);
    const back = dir.core(42);
    expect(back.thread_info?.gpregs.ax).toBe(0xffffffffffffffdcn);
    expect(back.tc?.comm).toBe('sleep');
    expect(ImageReader.open(dir.fileName('core-%u', 42)).magic).toBe('CORE');
    expect(dir.list().map((f) => f.file)).toEqual(['core-42.img']);
  });

  it('names images as CRIU does', () => {
    expect(parseImageFileName('pagemap-123.img')?.name.pattern).toBe('pagemap-%lu');
    expect(parseImageFileName('pagemap-shmem-7.img')?.name.pattern).toBe('pagemap-shmem-%lu');
    expect(parseImageFileName('ghost-file-1f.img')).toMatchObject({ id: '1f' });
    // CRIU's service images have no .img: zdtm and crit read stats-dump by that name.
    expect(parseImageFileName('stats-dump.img')).toBeUndefined();
    expect(parseImageFileName('stats-dump')?.name.magic).toBe('STATS');
    expect(imageFileName('stats-%s', 'restore')).toBe('stats-restore');
    expect(imageFileName('irmap-cache')).toBe('irmap-cache');
    expect(imageFileName('core-%u', 7)).toBe('core-7.img');
    expect(parseImageFileName('tmpfs-dev-5.tar.gz')?.name.magic).toBe('RAW');
  });
});

describe('pagemap and pages', () => {
  it('finds page contents by address, across runs and parent dumps', () => {
    const parent = ImageDir.create(join(tmp, 'parent-dump'));
    const pw = parent.pageMapWriter(7, 1);
    pw.addPresent(0x10000n, 2, Buffer.concat([page(1), page(2)]));
    pw.close();

    const child = ImageDir.create(join(tmp, 'child-dump'));
    symlinkSync('../parent-dump', join(child.path, 'parent'));
    const cw = child.pageMapWriter(7, 1);
    cw.addParent(0x10000n, 1);
    cw.addPresent(0x11000n, 1, page(9));
    cw.addPresent(0x40000n, 3);
    cw.writeData(Buffer.concat([page(3), page(4), page(5)]));
    cw.close();

    const map = child.pageMap(7);
    try {
      expect(map.runs.map((r) => r.flags)).toEqual([PE_PARENT, PE_PRESENT, PE_PRESENT]);
      expect(map.readPage(0x10010n)?.[0]).toBe(1); // from the parent
      expect(map.readPage(0x11fffn)?.[0]).toBe(9);
      expect(map.readPage(0x42000n)?.[0]).toBe(5);
      expect(map.readPage(0x43000n)).toBeUndefined();
      const straddle = map.read(0x40ffen, 4);
      expect([...straddle]).toEqual([3, 3, 4, 4]);
    } finally {
      map.close();
    }
  });

  it('writes both page-count fields, field 2 only when it fits u32', () => {
    const dir = ImageDir.create(tmp);
    const w = dir.pageMapWriter(1, 1);
    w.addParent(0x1000n, 5);
    w.addParent(0x100000000000n, 0x100000000n);
    w.close();
    const entries = readImage(dir.fileName('pagemap-%lu', 1)).entries.map((e) => e.message);
    expect(entries[0]).toEqual({ pages_id: 1 });
    expect(entries[1]).toEqual({ vaddr: 0x1000n, compat_nr_pages: 5, flags: PE_PARENT, nr_pages: 5n });
    expect(entries[2]).toMatchObject({ compat_nr_pages: 0, nr_pages: 0x100000000n });
  });
});
