// Bad input, case by case: every problem is an ImageError naming the file and the byte offset
// where reading went wrong, with a message that says what was wrong. Never a raw protobufjs
// exception, never a hang, never an allocation sized by a corrupt length.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeMessage,
  IMG_COMMON_MAGIC,
  ImageDir,
  ImageError,
  ImageReader,
  ImageWriter,
  imageToCrit,
  MAGICS,
  type MagicName,
  PAGE_SIZE,
  PageMap,
  PE_PRESENT,
  pagemapEntry,
  readImage,
} from '../../src/index.js';
import { x86Core } from '../x86-core.js';

let tmp: string;
let n = 0;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'images-robustness-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** A fresh file name in the temp dir. */
const fresh = (name = 'x.img') => join(tmp, `${n++}-${name}`);

const u32 = (...values: number[]) => {
  const b = Buffer.alloc(4 * values.length);
  for (const [i, v] of values.entries()) b.writeUInt32LE(v >>> 0, 4 * i);
  return b;
};
/** The two magics of an image (common head + image magic). */
const head = (magic: MagicName) => u32(IMG_COMMON_MAGIC, MAGICS[magic]);
/** One framed entry: length word + payload. */
const framed = (payload: Uint8Array) => Buffer.concat([u32(payload.length), payload]);
const varint = (v: number) => {
  const out: number[] = [];
  for (; v >= 0x80; v = Math.floor(v / 128)) out.push((v & 0x7f) | 0x80);
  return [...out, v];
};
const file = (...parts: Uint8Array[]) => {
  const path = fresh();
  writeFileSync(path, Buffer.concat(parts));
  return path;
};

const pstree = { pid: 1, ppid: 0, pgid: 1, sid: 1, threads: [1] };
const pstreeBytes = Buffer.from(encodeMessage('pstree_entry', pstree));

/** Runs `fn`, which must throw an ImageError about `path` at `offset` matching `what`. */
function expectImageError(fn: () => unknown, path: string, offset: number, what: RegExp): ImageError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'no error thrown').toBeDefined();
  if (!(thrown instanceof ImageError))
    throw new Error(`not an ImageError: ${String(thrown)}`, { cause: thrown });
  expect(thrown.file).toBe(path);
  expect(thrown.offset).toBe(offset);
  expect(thrown.reason).toMatch(what);
  expect(thrown.message).toBe(`${path}: at byte ${offset}: ${thrown.reason}`);
  return thrown;
}

/** Every way the package reads a whole image must report the same error. */
function expectAllReadersFail(path: string, offset: number, what: RegExp): void {
  expectImageError(() => readImage(path), path, offset, what);
  expectImageError(() => imageToCrit(path), path, offset, what);
  expectImageError(() => imageToCrit(path, { pretty: true }), path, offset, what);
  expectImageError(() => imageToCrit(path, { pretty: true, noPayload: true }), path, offset, what);
}

describe('framing', () => {
  it('an empty file', () => {
    const path = file();
    expectAllReadersFail(path, 0, /^image magic needs 4 bytes but only 0 remain \(file size 0\)$/);
  });

  it.each([1, 2, 3])('a %i-byte file', (size) => {
    const path = file(head('CORE').subarray(0, size));
    expectAllReadersFail(path, 0, new RegExp(`^image magic needs 4 bytes but only ${size} remain`));
  });

  it('a common magic with nothing after it', () => {
    const path = file(u32(IMG_COMMON_MAGIC), Buffer.from([1, 2]));
    expectAllReadersFail(path, 4, /^image magic needs 4 bytes but only 2 remain/);
  });

  it('an unknown magic after the common magic', () => {
    const path = file(u32(IMG_COMMON_MAGIC, 0x12345678), framed(pstreeBytes));
    expectAllReadersFail(path, 4, /^unknown magic 0x12345678 /);
  });

  it('an unknown magic in first place (no common magic)', () => {
    const path = file(u32(0xdeadbeef, 0), framed(pstreeBytes));
    expectAllReadersFail(path, 0, /^unknown magic 0xdeadbeef \(not a CRIU image/);
  });

  it('a raw image (pages-N.img) read as an image', () => {
    const path = file(Buffer.alloc(PAGE_SIZE, 0xcc));
    expectAllReadersFail(path, 0, /^unknown magic 0xcccccccc \(not a CRIU image, or a raw one/);
  });

  it('a known magic that is the wrong one for the file name', () => {
    const dir = ImageDir.create(fresh('dir'));
    // An mm image under core-42.img: CRIU refuses it ("Magic doesn't match"), and so do we.
    new ImageWriter(dir.fileName('core-%u', 42), 'MM').close();
    const path = dir.fileName('core-%u', 42);
    expectImageError(() => dir.core(42), path, 4, /^magic is MM, expected CORE$/);
    expectImageError(() => dir.open('core-%u', 42), path, 4, /^magic is MM, expected CORE$/);
    expectImageError(() => readImage(path, 'CORE'), path, 4, /^magic is MM, expected CORE$/);
    // Inventory has no common magic: its own magic is at byte 0.
    writeFileSync(dir.fileName('inventory'), u32(MAGICS.PSTREE));
    expectImageError(
      () => dir.inventory(),
      dir.fileName('inventory'),
      0,
      /^magic is PSTREE, expected INVENTORY$/,
    );
    // crit-style decoding goes by the magic alone, as crit does.
    expect(readImage(path).magic).toBe('MM');
  });

  it('a missing file and a directory', () => {
    const missing = join(tmp, 'no-such.img');
    expectAllReadersFail(missing, 0, /^missing image \(no such file\)$/);
    const dir = fresh('a-dir');
    mkdirSync(dir);
    expectAllReadersFail(dir, 0, /^is a directory, not an image file: not read$/);
  });

  it('truncated inside the length word', () => {
    for (const cut of [1, 2, 3]) {
      const path = file(head('PSTREE'), framed(pstreeBytes).subarray(0, cut));
      expectAllReadersFail(
        path,
        8,
        new RegExp(`^length of pstree_entry entry needs 4 bytes but only ${cut} remain`),
      );
    }
  });

  it('truncated inside the length word of a later entry', () => {
    const path = file(head('PSTREE'), framed(pstreeBytes), framed(pstreeBytes).subarray(0, 2));
    expectAllReadersFail(path, 12 + pstreeBytes.length, /^length of pstree_entry entry needs 4 bytes/);
  });

  it('a length past the end of the file', () => {
    const path = file(head('CORE'), u32(100), Buffer.alloc(10));
    // The payload is what is missing: the offset is where it starts.
    expectAllReadersFail(path, 12, /^core_entry entry needs 100 bytes but only 10 remain \(file size 22\)$/);
  });

  it('a 4 GiB length in a 100-byte file: no allocation, fast', () => {
    const path = file(head('CORE'), u32(0xffffffff), Buffer.alloc(88, 0xab));
    expect(readFileSync(path).length).toBe(100);
    const big = file(head('CORE'), u32(60 * 1024 * 1024), Buffer.alloc(88, 0xab)); // under the cap
    globalThis.gc?.();
    const before = process.memoryUsage();
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) {
      expectAllReadersFail(path, 8, /^entry length 4294967295 is implausible for core_entry$/);
      expectAllReadersFail(big, 12, /^core_entry entry needs 62914560 bytes but only 88 remain/);
    }
    const ms = performance.now() - t0;
    const after = process.memoryUsage();
    const MiB = 1024 * 1024;
    // 160 failed reads: each one allocates its 256 KiB read buffer and nothing sized by the length.
    expect(ms).toBeLessThan(2000);
    expect(after.rss - before.rss).toBeLessThan(48 * MiB);
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(48 * MiB);
    // And a single read stays within a few MiB.
    const one0 = process.memoryUsage();
    expectImageError(() => readImage(path), path, 8, /implausible/);
    expectImageError(() => readImage(big), big, 12, /needs 62914560 bytes/);
    const one1 = process.memoryUsage();
    expect(one1.arrayBuffers - one0.arrayBuffers).toBeLessThan(4 * MiB);
    expect(one1.rss - one0.rss).toBeLessThan(8 * MiB);
  });

  it('huge lengths in every position of a pagemap', () => {
    const path = fresh('pagemap.img');
    const w = new ImageWriter(path, 'PAGEMAP');
    w.write({ pages_id: 1 });
    for (let i = 0; i < 3; i++) w.write(pagemapEntry(BigInt(i) << 20n, 1, PE_PRESENT));
    w.close();
    const good = readImage(path).entries.map((e) => e.offset);
    const bytes = readFileSync(path);
    for (const at of good) {
      const bad = Buffer.from(bytes);
      bad.writeUInt32LE(0xfffffff0, at);
      const p = file(bad);
      expectAllReadersFail(p, at, /^entry length 4294967280 is implausible for pagemap_(head|entry)$/);
    }
  });
});

describe('entry payloads', () => {
  const pstreeImage = (payload: number[]) =>
    file(head('PSTREE'), framed(pstreeBytes), framed(Buffer.from(payload)));
  const second = 12 + pstreeBytes.length;

  it('an invalid wire type', () => {
    expectAllReadersFail(pstreeImage([0x0f, 1]), second, /^bad pstree_entry entry: invalid wire type 7/);
  });

  it('a known field with the wrong wire type (skipped, then missing)', () => {
    // pid as fixed64: protobufjs (like Python protobuf) skips it as unknown, so pid is missing.
    expectAllReadersFail(
      pstreeImage([0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 1, 0x18, 1, 0x20, 1]),
      second,
      /^bad pstree_entry entry: missing required 'pid'$/,
    );
  });

  it('a truncated varint', () => {
    expectAllReadersFail(pstreeImage([0x08, 0x80]), second, /^bad pstree_entry entry: index out of range/);
    expectAllReadersFail(pstreeImage([0x08, 0xff, 0xff, 0xff]), second, /^bad pstree_entry entry:/);
  });

  it('a varint longer than 10 bytes', () => {
    expectAllReadersFail(
      pstreeImage([0x08, ...Array(11).fill(0xff), 0x01]),
      second,
      /^bad pstree_entry entry: invalid varint encoding$/,
    );
  });

  it('a length-delimited field running past its entry', () => {
    expectAllReadersFail(pstreeImage([0x22, 0x7f, 1]), second, /^bad pstree_entry entry: index out of range/);
  });

  it('a missing required field', () => {
    expectAllReadersFail(pstreeImage([0x08, 1]), second, /^bad pstree_entry entry: missing required 'ppid'$/);
  });

  it('a missing required field of a nested message', () => {
    const core = x86Core(1);
    const bytes = Buffer.from(encodeMessage('core_entry', core));
    // thread_core.creds without uid: cut the creds message down to its later fields.
    const creds = Buffer.from(encodeMessage('creds_entry', core.thread_core!.creds!));
    expect(creds[0]).toBe(0x08); // uid = field 1, varint
    const noUid = creds.subarray(2 + (creds[1]! >= 0x80 ? 1 : 0));
    const tc = Buffer.from(encodeMessage('thread_core_entry', { ...core.thread_core!, creds: undefined }));
    const tcBad = Buffer.concat([tc, Buffer.from([0x52, noUid.length]), noUid]);
    const coreBad = Buffer.concat([
      Buffer.from(encodeMessage('core_entry', { ...core, thread_core: undefined })),
      Buffer.from([0x2a, ...varint(tcBad.length)]),
      tcBad,
    ]);
    expect(bytes.length).toBeGreaterThan(1000);
    expectAllReadersFail(
      file(head('CORE'), framed(coreBad)),
      8,
      /^bad core_entry entry: missing required 'uid'$/,
    );
  });

  it('deeply nested groups do not overflow the stack', () => {
    expectAllReadersFail(pstreeImage(Array(200_000).fill(0x0b)), second, /^bad pstree_entry entry:/);
  });

  it('a pagemap entry with garbage, at entry 500 of 1000', () => {
    const path = fresh('pagemap.img');
    const w = new ImageWriter(path, 'PAGEMAP');
    w.write({ pages_id: 1 });
    for (let i = 0; i < 1000; i++) w.write(pagemapEntry(BigInt(i) << 16n, 1, PE_PRESENT));
    w.close();
    const entries = readImage(path).entries;
    const at = entries[501]!.offset; // entry 0 is the head
    const bytes = readFileSync(path);
    const cases: Array<[number[], RegExp]> = [
      [[0x08, 0x80], /^bad pagemap_entry entry: index out of range/], // vaddr varint cut short
      [[0x0f], /^bad pagemap_entry entry: invalid wire type 7/],
      [[0x10, 1], /^bad pagemap_entry entry: missing required 'vaddr'$/],
      [[0x08, 1], /^bad pagemap_entry entry: missing required 'compat_nr_pages'$/],
    ];
    for (const [payload, what] of cases) {
      const len = bytes.readUInt32LE(at);
      const bad = Buffer.concat([
        bytes.subarray(0, at),
        framed(Buffer.from(payload)),
        bytes.subarray(at + 4 + len),
      ]);
      expectAllReadersFail(file(bad), at, what);
    }
  });

  it('invalid UTF-8 in a string field decodes, as in CRIU and crit (Linux paths are bytes)', () => {
    // Not an error: protobuf-c (CRIU) and crit both accept it, and a file name with such bytes is a
    // legitimate CRIU image. The decoded JS string has U+FFFD in place of the bad bytes.
    const fown = { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 };
    const reg = Buffer.from(
      encodeMessage('reg_file_entry', { id: 1, flags: 0, pos: 0n, fown, name: '/tmp/AB' }),
    );
    const at = reg.indexOf('AB');
    reg[at] = 0xff;
    reg[at + 1] = 0xc3;
    const path = file(head('REG_FILES'), framed(reg));
    const name = readImage(path).entries[0]!.message.name as string;
    expect(name.startsWith('/tmp/')).toBe(true);
    expect(name).toContain('\ufffd');
    expect(() => imageToCrit(path, { pretty: true })).not.toThrow();
  });
});

describe('blobs after entries', () => {
  it('a pipe-data blob shorter than its entry says', () => {
    const entry = Buffer.from(encodeMessage('pipe_data_entry', { pipe_id: 2, bytes: 100 }));
    const path = file(head('PIPES_DATA'), framed(entry), Buffer.alloc(50, 7));
    expectAllReadersFail(path, 12 + entry.length, /^pipe-data blob needs 100 bytes but only 50 remain/);
  });

  it('a pipe-data blob of 2^32-1 bytes in a small file', () => {
    const entry = Buffer.from(encodeMessage('pipe_data_entry', { pipe_id: 2, bytes: 0xffffffff }));
    const path = file(head('PIPES_DATA'), framed(entry), Buffer.alloc(50, 7));
    expectAllReadersFail(
      path,
      12 + entry.length,
      /^pipe-data blob needs 4294967295 bytes but only 50 remain/,
    );
  });

  it('a tcp output queue cut short', () => {
    const entry = Buffer.from(
      encodeMessage('tcp_stream_entry', {
        inq_len: 10,
        inq_seq: 1,
        outq_len: 20,
        outq_seq: 2,
        opt_mask: 0,
        snd_wscale: 0,
        mss_clamp: 1460,
      }),
    );
    const path = file(head('TCP_STREAM'), framed(entry), Buffer.alloc(25));
    expectAllReadersFail(path, 12 + entry.length + 10, /^tcp output queue needs 20 bytes but only 15 remain/);
  });

  const desc = { key: 1, uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600, id: 1 };

  it('semaphore values cut short, and their padding', () => {
    const entry = Buffer.from(encodeMessage('ipc_sem_entry', { desc, nsems: 3 }));
    const p1 = file(head('IPCNS_SEM'), framed(entry), Buffer.alloc(5));
    expectAllReadersFail(p1, 12 + entry.length, /^semaphore values needs 6 bytes but only 5 remain/);
    const p2 = file(head('IPCNS_SEM'), framed(entry), Buffer.alloc(7));
    expectAllReadersFail(p2, 12 + entry.length + 6, /^semaphore padding of 2 bytes runs past the end/);
  });

  it('a sysv message that is not an ipc_msg, and one cut short', () => {
    const entry = Buffer.from(encodeMessage('ipc_msg_entry', { desc, qbytes: 100, qnum: 2 }));
    const msg = Buffer.from(encodeMessage('ipc_msg', { mtype: 1n, msize: 5 }));
    const first = Buffer.concat([framed(msg), Buffer.alloc(8)]);
    const base = 12 + entry.length;
    const p1 = file(head('IPCNS_MSG'), framed(entry), first, framed(Buffer.from([0x08, 1])));
    expectAllReadersFail(p1, base + first.length, /^bad ipc_msg: missing required 'msize'$/);
    const p2 = file(head('IPCNS_MSG'), framed(entry), first, framed(msg), Buffer.alloc(3));
    expectAllReadersFail(
      p2,
      base + first.length + 4 + msg.length,
      /^ipc message text needs 5 bytes but only 3/,
    );
  });

  it('shared memory contents cut short', () => {
    const entry = Buffer.from(encodeMessage('ipc_shm_entry', { desc, size: 1n << 40n }));
    const path = file(head('IPCNS_SHM'), framed(entry), Buffer.alloc(64));
    expectAllReadersFail(path, 12 + entry.length, /^shared memory contents needs 1099511627776 bytes/);
  });

  it('a ghost file chunk cut short, and a chunk length of 2^64-1', () => {
    const ghost = Buffer.from(
      encodeMessage('ghost_file_entry', { uid: 0, gid: 0, mode: 0o100644, chunks: true }),
    );
    const chunk = (len: bigint) => Buffer.from(encodeMessage('ghost_chunk_entry', { len, off: 0n }));
    const base = 12 + ghost.length;
    const p1 = file(head('GHOST_FILE'), framed(ghost), framed(chunk(100n)), Buffer.alloc(99));
    expectAllReadersFail(p1, base + 4 + chunk(100n).length, /^ghost file chunk needs 100 bytes but only 99/);
    const huge = chunk(0xffffffffffffffffn);
    const p2 = file(head('GHOST_FILE'), framed(ghost), framed(huge), Buffer.alloc(99));
    expectAllReadersFail(p2, base + 4 + huge.length, /^ghost file chunk needs 18446744073709552000 bytes/);
  });
});

describe('PageMap', () => {
  it('a pagemap without its head', () => {
    const dir = fresh('pm-nohead');
    mkdirSync(dir);
    writeFileSync(join(dir, 'pagemap-1.img'), head('PAGEMAP'));
    expectImageError(
      () => PageMap.forTask(dir, 1),
      join(dir, 'pagemap-1.img'),
      8,
      /^pagemap has no pagemap_head$/,
    );
  });

  it('a pagemap that is some other image', () => {
    const dir = ImageDir.create(fresh('pm-core'));
    new ImageWriter(dir.fileName('pagemap-%lu', 1), 'CORE').close();
    const path = dir.fileName('pagemap-%lu', 1);
    expectImageError(() => dir.pageMap(1), path, 4, /^magic is CORE, expected PAGEMAP$/);
  });

  it('readPage where pages-N.img is shorter than the pagemap says', () => {
    const dir = ImageDir.create(fresh('pm-short'));
    const w = dir.pageMapWriter(7, 3);
    w.addPresent(0x10000n, 2, Buffer.alloc(2 * PAGE_SIZE, 1));
    w.addPresent(0x40000n, 4, Buffer.alloc(4 * PAGE_SIZE, 2));
    w.close();
    const pages = dir.fileName('pages-%u', 3);
    truncateSync(pages, 4 * PAGE_SIZE + PAGE_SIZE / 2); // the second run's 3rd page is half there
    const pm = dir.pageMap(7);
    try {
      expect(pm.readPage(0x41000n)![0]).toBe(2);
      expectImageError(
        () => pm.readPage(0x42000n),
        pages,
        4 * PAGE_SIZE,
        /^page data missing \(read 2048 of 4096 bytes\)$/,
      );
      expectImageError(
        () => pm.readPage(0x43fffn),
        pages,
        5 * PAGE_SIZE,
        /^page data missing \(read 0 of 4096/,
      );
      expectImageError(() => pm.read(0x41800n, PAGE_SIZE), pages, 4 * PAGE_SIZE, /^page data missing/);
    } finally {
      pm.close();
    }
  });

  it('a missing pages-N.img', () => {
    const dir = ImageDir.create(fresh('pm-nopages'));
    const w = dir.pageMapWriter(7, 3);
    w.addPresent(0x10000n, 1, Buffer.alloc(PAGE_SIZE));
    w.close();
    rmSync(dir.fileName('pages-%u', 3));
    const pm = dir.pageMap(7);
    try {
      expectImageError(
        () => pm.readPage(0x10000n),
        dir.fileName('pages-%u', 3),
        0,
        /^missing image \(no such file\)$/,
      );
    } finally {
      pm.close();
    }
  });

  it('page counts so large that the data offset is past any file offset', () => {
    const dir = ImageDir.create(fresh('pm-huge'));
    const w = dir.pageMapWriter(7, 3);
    w.addPresent(0x1000n, 1n << 40n, Buffer.alloc(PAGE_SIZE));
    w.addPresent(1n << 62n, 1n << 52n, undefined);
    w.close();
    const pm = dir.pageMap(7);
    const pages = dir.fileName('pages-%u', 3);
    try {
      expect(pm.readPage(0x1000n)).toHaveLength(PAGE_SIZE);
      expectImageError(() => pm.readPage(1n << 62n), pages, 2 ** 52, /^page data missing \(read 0 of/);
      // Byte 2^64 - 2^13 of pages-3.img: beyond what pread can take.
      const last = 0xfffffffffffff000n;
      const at = Number((1n << 52n) + (last - (1n << 62n)));
      expectImageError(() => pm.readPage(last), pages, at, /^page data missing \(read 0 of/);
    } finally {
      pm.close();
    }
  });
});

describe('ImageReader', () => {
  it('stops at the bad entry after yielding the good ones, and reports its offset', () => {
    const path = file(head('PSTREE'), framed(pstreeBytes), framed(pstreeBytes), u32(5), Buffer.from([0x08]));
    const r = ImageReader.open(path);
    try {
      expect(r.next()?.offset).toBe(8);
      expect(r.next()?.offset).toBe(12 + pstreeBytes.length);
      expectImageError(
        () => r.next(),
        path,
        20 + 2 * pstreeBytes.length,
        /^pstree_entry entry needs 5 bytes/,
      );
    } finally {
      r.close();
    }
  });
});
