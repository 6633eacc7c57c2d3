// `criu-ts restore` of hugetlb memory (the hugetlb workload): private and shared MAP_HUGETLB memory
// and hugetlb memfds come back hugetlb (VmFlags ht, KernelPageSize 2048 kB) on the kernel's own
// hugetlbfs (the device /proc/PID/maps shows is the one they had, as zdtm's maps09 and memfd02-hugetlb
// check), with their contents; shared memory is shared again by parent and child; the images say it as
// CRIU 4 writes them (a MEMFD mapping, memfd.img hugetlb_flag); SysV SHM_HUGETLB segments come back
// too (ipcns-shm hugetlb_flag). Needs free 2 MiB huge pages: when there are too few,
// the pool (/proc/sys/vm/nr_hugepages) is raised for the file and set back after it; if that fails,
// the tests are skipped.
import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  big,
  buildWorkloads,
  cleanup,
  critDecodeAll,
  dumpAndKill,
  entries,
  failLines,
  haveCrit,
  num,
  procState,
  readLines,
  restoreDetached,
  runCli,
  startWorkload,
  track,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages';
/** The most huge pages one test here holds at once (memfd: 2 for the memfd, 1 private copy; x2 margin). */
const NEED = 6;
/** MFD_HUGETLB | MFD_HUGE_2MB (21 << 26), as memfd.img's hugetlb_flag holds it. */
const MFD_HUGE_2MB_FLAGS = 0x4 | (21 << 26);
const MAP_HUGETLB = 0x40000;
const MAP_HUGE_2MB = 21 << 26;
const VMA_FILE_SHARED = 1 << 7;
const VMA_AREA_MEMFD = 1 << 14;
const SHM_HUGETLB = 0o4000;

/** Free 2 MiB huge pages now. */
function freeHugePages(): number {
  const m = /^HugePages_Free:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Raise the pool so that NEED pages are free; returns the size to set back, or undefined. */
function raisePool(): number | undefined {
  if (freeHugePages() >= NEED) return undefined;
  try {
    const was = Number(fs.readFileSync(NR_HUGEPAGES, 'utf8'));
    fs.writeFileSync(NR_HUGEPAGES, String(was + NEED - freeHugePages()));
    return was;
  } catch {
    return undefined;
  }
}
const poolWas = raisePool();
afterAll(() => {
  if (poolWas !== undefined) fs.writeFileSync(NR_HUGEPAGES, String(poolWas));
});

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** The smaps fields of the VMA of `pid` that starts at `addr`. */
function smapsOf(pid: number, addr: bigint): Record<string, string> {
  const out: Record<string, string> = {};
  let inside = false;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (m) inside = BigInt(`0x${m[1]}`) === addr;
    else if (inside) {
      const i = line.indexOf(':');
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
    }
  }
  return out;
}

/** The "MAJ:MIN" /proc/PID/maps shows for the VMA at `addr`, and its inode and name. */
function mapsOf(pid: number, addr: bigint): { dev: string; ino: string; path: string } | undefined {
  for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ (\S+) (\d+)\s*(.*)$/.exec(line);
    if (m && BigInt(`0x${m[1]}`) === addr) return { dev: m[2]!, ino: m[3]!, path: m[4]! };
  }
  return undefined;
}

const addrOf = (report: string, what: string) =>
  BigInt(
    `0x${
      readLines(report)
        .find((l) => l.startsWith(`${what} `))!
        .split(' ')[1]
    }`,
  );

/** A VMA at `addr` is hugetlb with 2 MiB pages. */
function expectHuge(pid: number, addr: bigint): void {
  const sm = smapsOf(pid, addr);
  expect(sm.VmFlags?.split(' ')).toContain('ht');
  expect(sm.KernelPageSize).toBe('2048 kB');
}

async function restoreAndCheck(dir: string, report: string, pid: number): Promise<void> {
  const from = readLines(report).length;
  await restoreDetached(dir);
  // Two checks after the restore, so that the first one began after it.
  await waitForLine(report, /^CHECK \d+ /, { pid, fromLine: from });
  await waitForMoreLines(report, 1, pid);
  expect(readLines(report).slice(from).at(-1)).toMatch(/ ok$/);
  expect(readLines(report).filter((l) => / bad /.test(l))).toEqual([]);
  expect(failLines(report)).toEqual([]);
}

describe.skipIf(freeHugePages() < NEED)('criu-ts restore: hugetlb', () => {
  it('a private MAP_HUGETLB mapping comes back hugetlb with its contents', async () => {
    const w = startWorkload('hugetlb', ['private']);
    await waitForLine(w.report, /^CHECK \d+ ok$/, { pid: w.pid });
    const addr = addrOf(w.report, 'MAP');
    const dev = mapsOf(w.pid, addr)!.dev;
    const dir = await dumpAndKill(w.pid);
    await restoreAndCheck(dir, w.report, w.pid);
    expectHuge(w.pid, addr);
    expect(mapsOf(w.pid, addr)!.dev).toBe(dev);
  });

  it('a shared MAP_HUGETLB mapping comes back shared hugetlb, dumped as CRIU does (a hugetlb memfd)', async () => {
    const w = startWorkload('hugetlb', ['shared']);
    await waitForLine(w.report, /^CHECK \d+ ok$/, { pid: w.pid });
    const addr = addrOf(w.report, 'MAP');
    const before = mapsOf(w.pid, addr)!;
    const dir = await dumpAndKill(w.pid);
    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['memfd.img', `mm-${w.pid}.img`]);
      expect(failures).toEqual([]);
      const inode = entries(decoded.get('memfd.img')).find((e) => e.name === '/anon_hugepage')!;
      expect(inode).toBeDefined();
      expect(num(inode.hugetlb_flag)).toBe(MFD_HUGE_2MB_FLAGS);
      expect(num(inode.size)).toBe(4 << 20);
      const mm = entries(decoded.get(`mm-${w.pid}.img`))[0]!;
      const vma = (mm.vmas as Array<Record<string, unknown>>).find((v) => big(v.start as bigint) === addr)!;
      expect(num(vma.status as number) & (VMA_AREA_MEMFD | VMA_FILE_SHARED)).toBe(
        VMA_AREA_MEMFD | VMA_FILE_SHARED,
      );
      expect(num(vma.flags as number) & (MAP_HUGETLB | MAP_HUGE_2MB)).toBe(MAP_HUGETLB | MAP_HUGE_2MB);
    }
    await restoreAndCheck(dir, w.report, w.pid);
    expectHuge(w.pid, addr);
    const after = mapsOf(w.pid, addr)!;
    expect(after.dev).toBe(before.dev);
    expect(fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8')).toMatch(
      new RegExp(`^${addr.toString(16)}-\\S+ rw-s `, 'm'),
    );
  });

  it('a hugetlb memfd comes back with its size, seals, fd, shared contents and private copy', async () => {
    const w = startWorkload('hugetlb', ['memfd']);
    await waitForLine(w.report, /^CHECK \d+ ok$/, { pid: w.pid });
    const shared = addrOf(w.report, 'MAP');
    const priv = addrOf(w.report, 'PRIVATE');
    const fd = Number(
      readLines(w.report)
        .find((l) => l.startsWith('FD '))!
        .split(' ')[1],
    );
    const before = { shared: mapsOf(w.pid, shared)!, priv: mapsOf(w.pid, priv)! };
    const dir = await dumpAndKill(w.pid);
    await restoreAndCheck(dir, w.report, w.pid);
    expectHuge(w.pid, shared);
    expectHuge(w.pid, priv);
    // The same device (the kernel's hugetlbfs of 2 MiB pages), one memfd for both mappings and the fd.
    const after = { shared: mapsOf(w.pid, shared)!, priv: mapsOf(w.pid, priv)! };
    expect(after.shared.dev).toBe(before.shared.dev);
    expect(after.priv.dev).toBe(before.priv.dev);
    expect(after.priv.ino).toBe(after.shared.ino);
    expect(after.shared.path).toBe('/memfd:criu-ts-huge (deleted)');
    expect(fs.readlinkSync(`/proc/${w.pid}/fd/${fd}`)).toBe('/memfd:criu-ts-huge (deleted)');
    expect(String(fs.statSync(`/proc/${w.pid}/fd/${fd}`).ino)).toBe(after.shared.ino);
  });

  it('shared MAP_HUGETLB memory of a parent and its child is shared again', async () => {
    const w = startWorkload('hugetlb', ['fork']);
    await waitForLine(w.report, /^CHECK \d+ ok$/, { pid: w.pid });
    const child = Number(
      readLines(w.report)
        .find((l) => l.startsWith('CHILD '))!
        .split(' ')[1],
    );
    track(child);
    const addr = addrOf(w.report, 'MAP');
    const dir = await dumpAndKill(w.pid, { kill: [w.pid, child] });
    // The parent's checks pass only while the child echoes through the shared memory.
    await restoreAndCheck(dir, w.report, w.pid);
    expect(procState(child)).not.toBe('gone');
    expectHuge(w.pid, addr);
    expectHuge(child, addr);
    const [p, c] = [mapsOf(w.pid, addr)!, mapsOf(child, addr)!];
    expect(c.dev).toBe(p.dev);
    expect(c.ino).toBe(p.ino);
  });

  it('a SysV SHM_HUGETLB segment comes back hugetlb, with its contents, removed as it was', async () => {
    const w = startWorkload('hugetlb', ['sysv']);
    await waitForLine(w.report, /^CHECK \d+ ok$/, { pid: w.pid });
    const addr = addrOf(w.report, 'MAP');
    const before = mapsOf(w.pid, addr)!;
    const dir = await dumpAndKill(w.pid);
    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir);
      expect(failures).toEqual([]);
      const name = [...decoded.keys()].find((k) => k.startsWith('ipcns-shm-'))!;
      const seg = entries(decoded.get(name))[0]!;
      expect(num(seg.hugetlb_flag)).toBe(SHM_HUGETLB | MAP_HUGE_2MB);
    }
    await restoreAndCheck(dir, w.report, w.pid);
    expectHuge(w.pid, addr);
    const after = mapsOf(w.pid, addr)!;
    expect(after.dev).toBe(before.dev);
    expect(after.path).toBe(before.path);
    // Removed (IPC_RMID) while attached, as at the dump: no key, marked for destruction.
    const line = fs
      .readFileSync('/proc/sysvipc/shm', 'utf8')
      .split('\n')
      .find((l) => l.trim().split(/\s+/)[1] === after.ino);
    expect(line).toBeDefined();
    expect(Number.parseInt(line!.trim().split(/\s+/)[2]!, 8) & 0o1000).toBe(0o1000);
  });
});

describe('criu-ts check: memfd_hugetlb', () => {
  it('answers yes where the kernel has hugetlbfs (the hugetlb memfds above restore)', async () => {
    const r = await runCli(['check', '--feature', 'memfd_hugetlb']);
    if (/\bhugetlbfs\b/.test(fs.readFileSync('/proc/filesystems', 'utf8'))) {
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('memfd_hugetlb is supported\n');
    } else {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/memfd_hugetlb is not supported/);
    }
  });
});
