// Shared anonymous memory (mmap MAP_SHARED|MAP_ANONYMOUS) between a parent and its child, dumped,
// killed and restored: both go on seeing each other's writes, and a page only the parent wrote before
// the fork (never in the child's page tables) keeps its contents.
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  critDecodeAll,
  entries,
  haveCrit,
  PYTHON,
  readLines,
  runCli,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

// Each task bumps its own counter in the shared area and reports the other's; the parent also checks
// a page it wrote once, before the fork, far into the area.
const SHARED_PY = `
import mmap, os, struct, sys, time
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
m = mmap.mmap(-1, 8 << 20)
m[4096 * 1000:4096 * 1000 + 5] = b'hello'
child = os.fork() == 0
me, other = (1, 0) if child else (0, 1)
if child: out.write('CHILD %d\\n' % os.getpid())
n = 0
while True:
    n += 1
    m[me * 8:me * 8 + 8] = struct.pack('Q', n)
    seen = struct.unpack('Q', m[other * 8:other * 8 + 8])[0]
    out.write('%s %d %d %s\\n' % ('C' if child else 'P', n, seen, m[4096 * 1000:4096 * 1000 + 5] == b'hello'))
    time.sleep(0.01)
`;

/** The last "P n seen hello" / "C n seen hello" lines. */
function last(report: string, who: 'P' | 'C'): { n: number; seen: number; hello: boolean } {
  const l = readLines(report)
    .filter((x) => x.startsWith(`${who} `))
    .at(-1);
  const [, n, seen, hello] = (l ?? 'X 0 0 False').split(' ');
  return { n: Number(n), seen: Number(seen), hello: hello === 'True' };
}

async function startShared() {
  const d = tempDir('criu-ts-shmem-');
  const report = path.join(d, 'report');
  const pid = startTraceable([PYTHON, '-c', SHARED_PY, report], { setsid: true });
  track(pid);
  const child = Number((await waitForLine(report, /^CHILD /, { pid })).split(' ')[1]);
  track(child);
  await waitFor(() => last(report, 'P').seen > 20 && last(report, 'C').seen > 20, 'both counting');
  return { pid, child, report };
}

/** Both go on and each sees the other's counter move past where it was. */
async function expectStillShared(w: { pid: number; report: string }): Promise<void> {
  const p0 = last(w.report, 'P');
  const c0 = last(w.report, 'C');
  await waitFor(
    () => last(w.report, 'P').seen > c0.n + 10 && last(w.report, 'C').seen > p0.n + 10,
    () => `both to see the other move on (${JSON.stringify([last(w.report, 'P'), last(w.report, 'C')])})`,
  );
  expect(last(w.report, 'P').hello).toBe(true);
}

async function dump(pid: number, extra: string[] = []): Promise<string> {
  const dir = path.join(tempDir('criu-ts-shmem-img-'), 'images');
  const r = await runCli(['dump', '-t', String(pid), '-D', dir, ...extra]);
  if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
  return dir;
}

describe('criu-ts restore: shared anonymous memory', () => {
  it('parent and child keep seeing each other through a MAP_SHARED|MAP_ANONYMOUS area', async () => {
    const w = await startShared();
    const dir = await dump(w.pid);
    const shmem = fs.readdirSync(dir).filter((f) => f.startsWith('pagemap-shmem-'));
    expect(shmem).toHaveLength(1); // one object, dumped once for both tasks
    for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
    const r = await runCli(['restore', '-D', dir, '-d']);
    if (r.code !== 0 || r.stderr) throw new Error(`restore: exit ${r.code}: ${r.stderr}`);
    for (const e of ImageDir.open(dir).pstree()) track(e.pid);
    await expectStillShared(w);
    // Both map one object again: the same inode in both tasks' maps.
    const inode = (pid: number) =>
      fs
        .readFileSync(`/proc/${pid}/maps`, 'utf8')
        .split('\n')
        .find((l) => l.includes('/memfd:criu-ts-shmem'))
        ?.split(/\s+/)[4];
    expect(inode(w.pid)).toBeDefined();
    expect(inode(w.pid)).toBe(inode(w.child));
  });

  it('dump -R leaves the area as it was: the two go on sharing it', async () => {
    const w = await startShared();
    await dump(w.pid, ['-R']);
    await expectStillShared(w);
  });

  it.skipIf(!haveCrit)('crit decodes pagemap-shmem and the VMAs say ANON_SHARED', async () => {
    const w = await startShared();
    const dir = await dump(w.pid, ['-R']);
    const name = fs.readdirSync(dir).find((f) => f.startsWith('pagemap-shmem-'))!;
    const { decoded, failures } = critDecodeAll(dir, [name, `mm-${w.pid}.img`]);
    expect(failures).toEqual([]);
    expect(entries(decoded.get(name)).length).toBeGreaterThanOrEqual(2); // head + runs
    const mm = entries(decoded.get(`mm-${w.pid}.img`))[0]!;
    const VMA_ANON_SHARED = 1 << 8;
    const vmas = mm.vmas as Array<{ status: number }>;
    expect(vmas.some((v) => (Number(v.status) & VMA_ANON_SHARED) !== 0)).toBe(true);
  });
});
