// Shared memory through dump -> kill -> restore, end to end with the CLI: the `shmem` workload (a parent
// and a child sharing an anonymous shared mapping, a mapped memfd and a SysV segment, each checking the
// other's counter, plus a sealed memfd fd), checked from outside: the restored tasks still see each
// other's writes, /proc/PID/maps shows one object shared by both, page contents by checksum (a page
// only the child ever touched comes back in the parent too), the memfd fd's name, size, position,
// contents and seals, the SysV segment's id, contents and removal state.
import fs from 'node:fs';
import { killAndReap } from '@criu-ts/compel';
import { ImageDir, type MemfdInodeEntry, type MmEntry } from '@criu-ts/images';
import {
  close,
  F_GET_SEALS,
  F_SEAL_GROW,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  fcntl,
  O_RDONLY,
  open,
  SHM_DEST,
  shmRemove,
  shmStat,
} from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  big,
  buildWorkloads,
  cleanup,
  critDecodeAll,
  dumpAndKill,
  entries,
  haveCrit,
  obj,
  onCleanup,
  readLines,
  restoreDetached,
  startWorkload,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const PAGE = 4096;

interface Layout {
  parent: number;
  child: number;
  anon: bigint;
  memfd: bigint;
  sysv: number;
  sysvAddr: bigint;
  fd: number;
  mfd: number;
  report: string;
}

/** Start `shmem` and wait until both tasks tick; the SysV segment is removed at cleanup. */
async function startShmem(args: string[] = []): Promise<Layout> {
  const w = startWorkload('shmem', args);
  const line = await waitForLine(w.report, /^LAYOUT /, { pid: w.pid });
  const f = (k: string) => new RegExp(`\\b${k}=([0-9a-f]+)`).exec(line)![1]!;
  const l: Layout = {
    parent: w.pid,
    child: Number(f('child')),
    anon: BigInt(`0x${f('anon')}`),
    memfd: BigInt(`0x${f('memfd')}`),
    sysv: Number(f('sysv')),
    sysvAddr: BigInt(`0x${f('sysvaddr')}`),
    fd: Number(f('fd')),
    mfd: Number(f('mfd')),
    report: w.report,
  };
  onCleanup(() => {
    for (const p of [l.parent, l.child]) killAndReap(p);
    try {
      shmRemove(l.sysv);
    } catch {
      // removed already (rmid, or the last detach)
    }
  });
  await waitTicks(l, 0);
  return l;
}

/** The last TICK of `role`: [n, other's anon, other's memfd, other's sysv]. */
function lastTick(report: string, role: number): number[] | undefined {
  const ticks = readLines(report).filter((x) => x.startsWith(`TICK ${role} `));
  return ticks.at(-1)?.split(' ').slice(2).map(Number);
}

/** Wait until both roles report the other's counters beyond what they were at line `from`. */
async function waitTicks(l: Layout, from: number): Promise<void> {
  const before = [lastTick(l.report, 0), lastTick(l.report, 1)];
  for (const role of [0, 1]) {
    const was = before[role];
    await waitForLine(
      l.report,
      (x) => {
        if (!x.startsWith(`TICK ${role} `)) return false;
        const v = x.split(' ').slice(2).map(Number);
        return !was || (v[1]! > was[1]! + 2 && v[2]! > was[2]! + 2 && v[3]! > was[3]! + 2);
      },
      { pid: l.parent, fromLine: from },
    );
  }
}

/** SIGUSR1 -> the parent's next SUM line, as fields. */
async function sums(l: Layout): Promise<Record<string, string>> {
  const from = readLines(l.report).length;
  process.kill(l.parent, 'SIGUSR1');
  const line = await waitForLine(l.report, /^SUM /, { pid: l.parent, fromLine: from });
  return Object.fromEntries(
    line
      .split(' ')
      .slice(1)
      .map((kv) => kv.split('=') as [string, string]),
  );
}

/** The workload's FNV-1a 64. */
function fnv(b: Buffer): string {
  let h = 0xcbf29ce484222325n;
  for (const x of b) h = BigInt.asUintN(64, (h ^ BigInt(x)) * 0x100000001b3n);
  return h.toString(16).padStart(16, '0');
}

/** What the child wrote into page 5 of the anonymous mapping. */
function page5(): Buffer {
  const b = Buffer.alloc(PAGE);
  for (let i = 0; i < PAGE / 8; i++)
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(i + 1) * 0x9e3779b97f4a7c15n), i * 8);
  return b;
}

function readMem(pid: number, addr: bigint, len: number): Buffer {
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  try {
    const b = Buffer.alloc(len);
    expect(fs.readSync(fd, b, 0, len, addr)).toBe(len);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** The /proc/PID/maps line at `addr`: perms, dev, inode, path. */
function mapAt(pid: number, addr: bigint) {
  const line = fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .find((x) => x.startsWith(`${addr.toString(16)}-`));
  expect(line, `pid ${pid} has a mapping at 0x${addr.toString(16)}`).toBeDefined();
  const [, perms, , dev, inode, ...rest] = line!.split(/\s+/);
  return { perms, dev, inode, path: rest.join(' ') };
}

const FD_BYTES = Buffer.from(Array.from({ length: 10000 }, (_, i) => (i * 7 + 3) & 0xff));

/** The memfd fd of the parent, from outside: link, size, position, contents, seals. */
function memfdFd(l: Layout) {
  const link = fs.readlinkSync(`/proc/${l.parent}/fd/${l.fd}`);
  const info = fs.readFileSync(`/proc/${l.parent}/fdinfo/${l.fd}`, 'utf8');
  const pos = Number(/^pos:\s*(\d+)/m.exec(info)![1]);
  const flags = Number.parseInt(/^flags:\s*(\d+)/m.exec(info)![1]!, 8);
  const size = fs.statSync(`/proc/${l.parent}/fd/${l.fd}`).size;
  const contents = fs.readFileSync(`/proc/${l.parent}/fd/${l.fd}`);
  const fd = open(`/proc/${l.parent}/fd/${l.fd}`, O_RDONLY);
  let seals: number;
  try {
    seals = fcntl(fd, F_GET_SEALS);
  } finally {
    close(fd);
  }
  return { link, pos, accmode: flags & 3, size, same: contents.equals(FD_BYTES), seals };
}

describe('restore of shared memory', () => {
  it('two tasks sharing anonymous shared memory, a memfd and a SysV segment keep seeing each other', async () => {
    const l = await startShmem();
    const childPage5 = (await waitForLine(l.report, /^PAGE5 /, { pid: l.parent })).split(' ')[1];
    expect(childPage5).toBe(fnv(page5()));
    const before = await sums(l);
    const fdBefore = memfdFd(l);
    expect(fdBefore).toEqual({
      link: '/memfd:criu-ts-fd (deleted)',
      pos: 1234,
      accmode: 2,
      size: 10000,
      same: true,
      seals: F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE,
    });

    const dir = await dumpAndKill(l.parent, { kill: [l.parent, l.child] });
    // The segment outlives the killed tasks (not removed): restore attaches it again as it is.
    expect(shmStat(l.sysv).nattch).toBe(0n);
    const from = readLines(l.report).length;
    await restoreDetached(dir);

    // Both still see the other's counters move, in all three areas.
    await waitTicks(l, from);
    expect(readLines(l.report).filter((x) => x.startsWith('FAIL'))).toEqual([]);

    // One object each, shared by both tasks (same device and inode in both maps).
    for (const [addr, name] of [
      [l.anon, '/memfd:/dev/zero'],
      [l.memfd, '/memfd:criu-ts-shm'],
      [l.sysvAddr, `/SYSV${'0'.repeat(8)}`],
    ] as const) {
      const p = mapAt(l.parent, addr);
      const c = mapAt(l.child, addr);
      expect(p.path).toContain(name);
      expect(p.perms).toBe('rw-s');
      expect(`${c.dev} ${c.inode}`).toBe(`${p.dev} ${p.inode}`);
    }
    expect(mapAt(l.parent, l.sysvAddr).inode).toBe(String(l.sysv));
    expect(shmStat(l.sysv).nattch).toBe(2n);

    // Page 5 was only ever in the child's page tables; it is in the object, so both see it.
    expect(fnv(readMem(l.parent, l.anon + 5n * BigInt(PAGE), PAGE))).toBe(childPage5);
    expect(fnv(readMem(l.child, l.anon + 5n * BigInt(PAGE), PAGE))).toBe(childPage5);
    expect(await sums(l)).toEqual(before);

    // The memfd fd: same name, size, position, flags, contents and seals; the mapped memfd is an fd too.
    expect(memfdFd(l)).toEqual(fdBefore);
    expect(fs.readlinkSync(`/proc/${l.child}/fd/${l.mfd}`)).toBe('/memfd:criu-ts-shm (deleted)');
    const mfdIno = fs.statSync(`/proc/${l.child}/fd/${l.mfd}`).ino;
    expect(String(mfdIno)).toBe(mapAt(l.parent, l.memfd).inode);
  });

  it('a SysV segment removed while attached comes back with its id and contents, and is removed again', async () => {
    const l = await startShmem(['rmid']);
    expect(shmStat(l.sysv).mode & SHM_DEST).toBe(SHM_DEST);
    const before = await sums(l);
    const dir = await dumpAndKill(l.parent, { kill: [l.parent, l.child] });
    // Gone with its last user: restore must make it again, with the same id.
    expect(() => shmStat(l.sysv)).toThrow();
    const from = readLines(l.report).length;
    await restoreDetached(dir);
    await waitTicks(l, from);
    const st = shmStat(l.sysv);
    expect(st.nattch).toBe(2n);
    expect(st.mode & SHM_DEST).toBe(SHM_DEST);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.size).toBe(BigInt(3 * PAGE + 100));
    expect(await sums(l)).toEqual(before);
    expect(readLines(l.report).filter((x) => x.startsWith('FAIL'))).toEqual([]);
  });

  it('dump -R leaves every shared object untouched, and crit decodes the images', async () => {
    const l = await startShmem();
    const before = await sums(l);
    const fdBefore = memfdFd(l);
    const dir = await dumpAndKill(l.parent, { extra: ['-R'] });
    const from = readLines(l.report).length;
    await waitTicks(l, from);
    expect(await sums(l)).toEqual(before);
    expect(memfdFd(l)).toEqual(fdBefore);
    expect(readLines(l.report).filter((x) => x.startsWith('FAIL'))).toEqual([]);

    const stats = fs.readdirSync(dir).filter((f) => f.startsWith('pagemap-shmem-'));
    // The anonymous mapping, the mapped memfd and the memfd fd: three objects, each once.
    expect(stats).toHaveLength(3);
    if (!haveCrit) return;
    const { decoded, failures } = critDecodeAll(dir);
    expect(failures).toEqual([]);
    const inodes = entries(decoded.get('memfd.img'));
    const byName = new Map(inodes.map((e) => [String(e.name), e]));
    expect([...byName.keys()].sort()).toEqual(['/dev/zero', 'criu-ts-fd', 'criu-ts-shm']);
    expect(big(byName.get('criu-ts-fd')!.size)).toBe(10000n);
    expect(big(byName.get('/dev/zero')!.size)).toBe(16n * BigInt(PAGE));
    // Page 5 of the anonymous mapping (only the child touched it) is in its object's pagemap.
    const anonId = big(byName.get('/dev/zero')!.shmid);
    const runs = entries(decoded.get(`pagemap-shmem-${anonId}.img`));
    expect(big(runs[0]!.pages_id)).toBeGreaterThan(0n);
    const covered = runs
      .slice(1)
      .some((r) => big(r.vaddr) <= 0x5000n && big(r.vaddr) + big(r.nr_pages) * 4096n > 0x5000n);
    expect(covered).toBe(true);
    const memfdFiles = entries(decoded.get('files.img')).filter((e) => e.type === 'MEMFD');
    expect(memfdFiles.length).toBeGreaterThanOrEqual(3);
    const fdEntry = memfdFiles.find((e) => big(obj(e.memfd).pos) === 1234n);
    expect(fdEntry).toBeDefined();
    const shm = entries(decoded.get(fs.readdirSync(dir).find((f) => f.startsWith('ipcns-shm-'))!));
    expect(shm.map((e) => big(obj(e.desc).id))).toEqual([BigInt(l.sysv)]);
    const dumpStats = obj(entries(decoded.get('stats-dump'))[0]!.dump);
    expect(big(dumpStats.shpages_written)).toBeGreaterThan(0n);
  });

  it('images of older CRIU (VMA_ANON_SHARED with the inode as shmid) restore to one shared memfd', async () => {
    const l = await startShmem();
    const before = await sums(l);
    const dir = await dumpAndKill(l.parent, { kill: [l.parent, l.child] });
    // Rewrite the anonymous mapping the way CRIU before 3.15 recorded it.
    const img = ImageDir.open(dir);
    const anon = img.messages<MemfdInodeEntry>('memfd').find((e) => e.name === '/dev/zero')!;
    for (const pid of [l.parent, l.child]) {
      const mm = img.mm(pid) as MmEntry;
      const v = mm.vmas!.find((x) => x.start === l.anon)!;
      expect(v.status & (1 << 14)).toBe(1 << 14); // VMA_AREA_MEMFD, as CRIU 4 writes it
      v.status = 1 | (1 << 8); // VMA_AREA_REGULAR | VMA_ANON_SHARED
      v.flags |= 0x20; // MAP_ANONYMOUS
      v.shmid = BigInt(anon.shmid);
      delete v.fdflags;
      img.write('mm-%u', pid, [mm]);
    }
    const from = readLines(l.report).length;
    await restoreDetached(dir);
    await waitTicks(l, from);
    const p = mapAt(l.parent, l.anon);
    const c = mapAt(l.child, l.anon);
    expect(p.path).toBe('/memfd: (deleted)');
    expect(`${c.dev} ${c.inode}`).toBe(`${p.dev} ${p.inode}`);
    expect(await sums(l)).toEqual(before);
    expect(readLines(l.report).filter((x) => x.startsWith('FAIL'))).toEqual([]);
  });
});
