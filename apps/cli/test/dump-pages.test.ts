// The page copy of dump (two buffers, the pages image written past the page cache) and the memory fill of
// restore (pages read with O_DIRECT, or through the page cache when the image is dirty there), checked from outside: every byte of many separate mappings, read-only ones and a PROT_NONE one
// among them, read through /proc/PID/mem before the dump and after the restore; and a dump whose page
// copy fails half way (a full disk) leaves the task running as it was.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PageMap } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  dumpAndKill,
  failLines,
  mountTmpfs,
  oneLineFailure,
  PYTHON,
  procState,
  readLines,
  restoreDetached,
  runCli,
  startCommand,
  startWorkload,
  tempDir,
  tracerPid,
  waitFor,
  waitForLine,
  waitInPause,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/**
 * A python3 that maps areas apart from each other (a free page between any two, so none merge) and fills
 * each page with its own bytes: 30 small ones (every third made read-only after the fill), one PROT_NONE
 * area with data, one of which only every other page was touched, and two large ones (20 MiB, 17 MiB
 * and a page) so that the copy crosses buffers and restore fills from both sides. Writes
 * `AREA <hex start> <bytes> <prot>` lines, then READY.
 */
const SCRIPT = String.raw`
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PG = 4096
R, W = 1, 2
MAP = 0x02 | 0x20  # MAP_PRIVATE | MAP_ANONYMOUS
areas = [(i % 5 + 1, R if i % 3 == 2 else R | W, True) for i in range(30)]
areas += [(3, 0, True), (64, R | W, 'half'), (20 * 256, R | W, True), (17 * 256 + 1, R | W, True)]
total = sum(n + 1 for n, _, _ in areas) + 1
base = libc.mmap(None, total * PG, 0, MAP, -1, 0)
libc.munmap(base, total * PG)
out = open(sys.argv[1], 'a', buffering=1)
at = base + PG
for i, (n, prot, fill) in enumerate(areas):
    if libc.mmap(at, n * PG, R | W, MAP | 0x100000, -1, 0) != at:  # MAP_FIXED_NOREPLACE
        out.write('FAIL mmap %d\n' % i); sys.exit(1)
    page = bytearray(PG)
    for j in range(n):
        if fill == 'half' and j % 2: continue
        page[0:16] = (b'%04d:%08d:' % (i, j)) + bytes(2)
        page[16:] = bytes([(i * 7 + j) & 0xff]) * (PG - 16)
        ctypes.memmove(at + j * PG, bytes(page), PG)
    if prot != R | W: libc.mprotect(at, n * PG, prot)
    out.write('AREA %x %d %d\n' % (at, n * PG, prot))
    at += (n + 1) * PG
out.write('READY\n')
while True: time.sleep(1)
`;

interface Area {
  start: bigint;
  len: number;
  prot: number;
}

async function startAreas(): Promise<{ pid: number; report: string; areas: Area[] }> {
  const dir = tempDir('criu-ts-pages-');
  const report = path.join(dir, 'report');
  const pid = await startCommand([PYTHON, '-c', SCRIPT, report]);
  await waitForLine(report, /^READY$/, { pid, timeoutMs: 60_000 });
  expect(failLines(report)).toEqual([]);
  const areas = readLines(report)
    .filter((l) => l.startsWith('AREA '))
    .map((l) => {
      const [, start, len, prot] = l.split(' ');
      return { start: BigInt(`0x${start}`), len: Number(len), prot: Number(prot) };
    });
  expect(areas).toHaveLength(34);
  return { pid, report, areas };
}

/** sha256 of each area's bytes, read through /proc/PID/mem (PROT_NONE too), and its maps permissions. */
function contents(pid: number, areas: Area[]): string[] {
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
  try {
    return areas.map((a) => {
      const b = Buffer.alloc(a.len);
      expect(fs.readSync(fd, b, 0, a.len, a.start)).toBe(a.len);
      const line = maps.split('\n').find((l) => l.startsWith(`${a.start.toString(16)}-`));
      return `${line?.split(' ')[1]} ${createHash('sha256').update(b).digest('hex')}`;
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** The pages image of a one-task dump. */
function pagesFileOf(dir: string): string {
  const f = fs.readdirSync(dir).find((n) => /^pages-\d+\.img$/.test(n));
  if (!f) throw new Error(`no pages image in ${dir}`);
  return path.join(dir, f);
}

describe('dump and restore of page contents', () => {
  it('many separate mappings, read-only and PROT_NONE ones among them: every byte and every protection comes back, from an image out of the page cache and from one dirty in it', async () => {
    const { pid, areas } = await startAreas();
    const before = contents(pid, areas);
    // The half-touched area: untouched pages read as zero and stay so.
    expect(new Set(before).size).toBe(before.length);

    // 1. The image as the dump wrote it (past the page cache): restore reads it with O_DIRECT.
    let dir = await dumpAndKill(pid);
    await restoreDetached(dir);
    expect(contents(pid, areas)).toEqual(before);

    // 2. Again, with the image written again through the page cache (dirty there, as CRIU leaves its
    // images): restore reads it from the cache.
    dir = await dumpAndKill(pid);
    const file = pagesFileOf(dir);
    fs.writeFileSync(file, fs.readFileSync(file));
    await restoreDetached(dir);
    expect(contents(pid, areas)).toEqual(before);
    expect(procState(pid)).not.toBe('gone');
  });

  it('the pages image holds the task’s bytes in pagemap order (what CRIU and crit read)', async () => {
    const { pid, areas } = await startAreas();
    const before = contents(pid, areas);
    const dir = await dumpAndKill(pid, { extra: ['-R'] });
    // The pages image, read through the pagemap the way CRIU's restore reads it: the largest area
    // (20 MiB, more than one copy buffer) is where its run says.
    const big = areas[32]!;
    const pm = PageMap.forTask(dir, pid);
    try {
      const b = pm.read(big.start, big.len);
      expect(`rw-p ${createHash('sha256').update(b).digest('hex')}`).toBe(before[32]);
      const none = areas[30]!;
      expect(`---p ${createHash('sha256').update(pm.read(none.start, none.len)).digest('hex')}`).toBe(
        before[30],
      );
    } finally {
      pm.close();
    }
    expect(fs.statSync(pagesFileOf(dir)).size % 4096).toBe(0);
  });

  it('a dump whose page copy fails half way (the disk fills up): exit 1 naming the image; memhog runs on with its checksum', async () => {
    const mnt = path.join(tempDir('criu-ts-pages-full-'), 'mnt');
    mountTmpfs(mnt, '24m');
    const w = startWorkload('memhog', ['64']);
    const sum = await waitForLine(w.report, /^SUM /, { pid: w.pid, timeoutMs: 60_000 });
    await waitInPause(w.pid);
    const r = await runCli(['dump', '-t', String(w.pid), '-D', path.join(mnt, 'images')]);
    const line = oneLineFailure(r);
    expect(line).toMatch(/ENOSPC|no space/i);
    // The pages image, or the pagemap written beside it when its last bytes meet the full disk first.
    expect(line).toMatch(/(pages|pagemap)-\d+\.img/);
    // Released, not stopped, and its memory as it was.
    await waitFor(() => tracerPid(w.pid) === 0, 'memhog to be released');
    expect(procState(w.pid)).toMatch(/^[SR]$/);
    const n = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    expect(await waitForLine(w.report, /^SUM /, { pid: w.pid, fromLine: n })).toBe(sum);
  });
});
