// dump() (the in-process API, with leaveRunning) on real processes, its images read back by Debian's
// crit (CRIU's own decoder) and compared with /proc as read just before the dump: VMAs, fds with their
// positions and flags, creds, registers, pages against RSS and against the workload's own checksum,
// the process tree, every thread. The dumped tasks keep running and their own checks keep passing.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ImageDir } from '@criu-ts/images';
import { kill, processVmReadv, SIGCONT, SIGUSR1 } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dump } from '../src/index.js';
import {
  big,
  buildWorkloads,
  cleanup,
  counterNumbers,
  critDecodeAll,
  entries,
  type FdState,
  failLines,
  haveCrit,
  isConsecutiveFromOne,
  type MapsLine,
  memhogChecksum,
  memhogFirstWord,
  num,
  type Obj,
  obj,
  procStat,
  procState,
  procStatus,
  readFds,
  readLines,
  readMaps,
  readSmapsCounters,
  startCommand,
  startPythonCounter,
  startWorkload,
  tempDir,
  tracerPid,
  track,
  waitFor,
  waitForLine,
  waitForMoreLines,
  waitInPause,
  workloadPath,
} from './helpers.js';

const PAGE = 4096;
const O_CLOEXEC = 0o2000000;
// vma.proto status bits (CRIU's image.h)
const VMA = {
  REGULAR: 1 << 0,
  VSYSCALL: 1 << 2,
  VDSO: 1 << 3,
  HEAP: 1 << 5,
  FILE_PRIVATE: 1 << 6,
  FILE_SHARED: 1 << 7,
  ANON_PRIVATE: 1 << 9,
  VVAR: 1 << 12,
};
const MAP_ANONYMOUS = 0x20;

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** What /proc says of a task just before its dump. */
interface Before {
  maps: MapsLine[];
  status: Record<string, string>;
  fds: FdState[];
  smaps: Map<bigint, Record<string, number>>;
  stat: ReturnType<typeof procStat>;
  exe: string;
  cwd: string;
  root: string;
}

function readBefore(pid: number): Before {
  return {
    maps: readMaps(pid),
    status: procStatus(pid),
    fds: readFds(pid),
    smaps: readSmapsCounters(pid),
    stat: procStat(pid),
    exe: fs.readlinkSync(`/proc/${pid}/exe`),
    cwd: fs.readlinkSync(`/proc/${pid}/cwd`),
    root: fs.readlinkSync(`/proc/${pid}/root`),
  };
}

interface Dumped {
  dir: string;
  before: Before;
  afterFds: FdState[];
  /** The entries of an image, as crit decoded them. */
  img: (file: string) => Obj[];
  images: string[];
  pagesWritten: number;
}

/** /proc, then dump -R, then /proc again (fd positions move in running tasks), then crit decode. */
async function dumpLive(pid: number): Promise<Dumped> {
  const before = readBefore(pid);
  const dir = path.join(tempDir('criu-ts-core-img-'), 'images');
  const result = await dump({ pid, imagesDir: dir, leaveRunning: true });
  const afterFds = readFds(pid);
  const { decoded, failures } = critDecodeAll(dir);
  expect(failures).toEqual([]);
  return {
    dir,
    before,
    afterFds,
    img: (file) => {
      const d = decoded.get(file);
      if (d === undefined) throw new Error(`${file} is missing: ${[...decoded.keys()].join(' ')}`);
      return entries(d);
    },
    images: [...decoded.keys()],
    pagesWritten: result.pagesWritten,
  };
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** The maps lines as CRIU keeps them: [vvar] and [vvar_vclock] are one area. */
function mergeVvar(maps: MapsLine[]): MapsLine[] {
  const out: MapsLine[] = [];
  for (const m of maps) {
    const prev = out[out.length - 1];
    if (m.path === '[vvar_vclock]' && prev?.path === '[vvar]' && prev.end === m.start) {
      out[out.length - 1] = { ...prev, end: m.end };
    } else out.push(m);
  }
  return out;
}

function filesById(d: Dumped): Map<number, Obj> {
  return new Map(d.img('files.img').map((e) => [num(e.id), e]));
}

/** mm-PID.img: every VMA as /proc/PID/maps had it, file VMAs naming their file, mm fields from stat. */
function checkMm(d: Dumped, pid: number): void {
  const mm = d.img(`mm-${pid}.img`)[0]!;
  const vmas = mm.vmas as Obj[];
  const want = mergeVvar(d.before.maps);
  const line = (start: bigint, end: bigint, prot: number, pgoff: bigint) =>
    `${hex(start)}-${hex(end)} prot=${prot} pgoff=${hex(pgoff)}`;
  expect(vmas.map((v) => line(big(v.start), big(v.end), num(v.prot), big(v.pgoff)))).toEqual(
    want.map((m) => line(m.start, m.end, m.prot, m.pgoff)),
  );
  const files = filesById(d);
  for (const [i, m] of want.entries()) {
    const v = vmas[i]!;
    const status = num(v.status);
    const where = `${m.path || 'anon'} ${hex(m.start)}`;
    if (m.path.startsWith('/')) {
      expect(status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED), where).not.toBe(0);
      const f = files.get(num(v.shmid));
      expect(f?.type, where).toBe('REG');
      expect(obj(f?.reg).name, where).toBe(m.path);
    } else if (m.path === '[vsyscall]') {
      // as CRIU 4.2 writes it
      expect(status, where).toBe(VMA.VSYSCALL | VMA.ANON_PRIVATE);
      expect(num(v.flags), where).toBe(MAP_ANONYMOUS | 2 /* MAP_PRIVATE */);
    } else {
      expect(status & VMA.ANON_PRIVATE, where).not.toBe(0);
      expect(num(v.flags) & MAP_ANONYMOUS, where).not.toBe(0);
      if (m.path === '[vdso]') expect(status & VMA.VDSO, where).not.toBe(0);
      if (m.path === '[vvar]') expect(status & VMA.VVAR, where).not.toBe(0);
      if (m.path === '[heap]') expect(status & VMA.HEAP, where).not.toBe(0);
    }
  }
  expect(obj(files.get(num(mm.exe_file_id))?.reg).name).toBe(d.before.exe);
  const f = (n: number) => BigInt(d.before.stat.f(n));
  expect({
    start_code: big(mm.mm_start_code),
    end_code: big(mm.mm_end_code),
    start_stack: big(mm.mm_start_stack),
    start_data: big(mm.mm_start_data),
    end_data: big(mm.mm_end_data),
    start_brk: big(mm.mm_start_brk),
    arg_start: big(mm.mm_arg_start),
    arg_end: big(mm.mm_arg_end),
    env_start: big(mm.mm_env_start),
    env_end: big(mm.mm_env_end),
  }).toEqual({
    start_code: f(26),
    end_code: f(27),
    start_stack: f(28),
    start_data: f(45),
    end_data: f(46),
    start_brk: f(47),
    arg_start: f(48),
    arg_end: f(49),
    env_start: f(50),
    env_end: f(51),
  });
}

/** fdinfo-N.img + files.img: every fd, its file, flags, and a position between before and after. */
function checkFds(d: Dumped, pid: number): void {
  const ids = d.img(`ids-${pid}.img`)[0]!;
  const fdinfo = d.img(`fdinfo-${num(ids.files_id)}.img`);
  expect(fdinfo.map((e) => num(e.fd))).toEqual(d.before.fds.map((f) => f.fd));
  const files = filesById(d);
  for (const before of d.before.fds) {
    const e = fdinfo.find((x) => num(x.fd) === before.fd)!;
    const after = d.afterFds.find((x) => x.fd === before.fd);
    const where = `fd ${before.fd} ${before.link}`;
    expect(e.type, where).toBe('REG');
    expect(num(e.flags), where).toBe(before.flags & O_CLOEXEC ? 1 : 0);
    const f = files.get(num(e.id));
    expect(f?.type, where).toBe('REG');
    const reg = obj(f?.reg);
    expect(reg.name, where).toBe(before.link);
    expect(num(reg.flags), where).toBe(before.flags & ~O_CLOEXEC);
    // CRIU writes mnt_id only with the mount namespace dumped (mountpoints-N.img), which criu-ts does not
    expect(reg.mnt_id, where).toBeUndefined();
    const pos = big(reg.pos);
    expect(pos >= before.pos, `${where}: pos ${pos} < ${before.pos} before the dump`).toBe(true);
    if (after) expect(pos <= after.pos, `${where}: pos ${pos} > ${after.pos} after the dump`).toBe(true);
  }
  const fs_ = d.img(`fs-${pid}.img`)[0]!;
  expect(obj(files.get(num(fs_.cwd_id))?.reg).name).toBe(d.before.cwd);
  expect(obj(files.get(num(fs_.root_id))?.reg).name).toBe(d.before.root);
}

/** [lo, hi] u32 words of a Cap* hex mask of /proc/PID/status. */
const capWords = (hexMask: string | undefined) => {
  const v = BigInt(`0x${hexMask}`);
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
};

/** core-TID.img: creds from status, ip inside an executable mapping. */
function checkCore(d: Dumped, pid: number, tid: number): void {
  const core = d.img(`core-${tid}.img`)[0]!;
  expect(core.mtype).toBe('X86_64');
  const st = tid === pid ? d.before.status : procStatus(tid);
  const creds = obj(obj(core.thread_core).creds);
  const [uid, euid, suid, fsuid] = (st.Uid ?? '').split(/\s+/).map(Number);
  const [gid, egid, sgid, fsgid] = (st.Gid ?? '').split(/\s+/).map(Number);
  expect({
    uid: num(creds.uid),
    euid: num(creds.euid),
    suid: num(creds.suid),
    fsuid: num(creds.fsuid),
    gid: num(creds.gid),
    egid: num(creds.egid),
    sgid: num(creds.sgid),
    fsgid: num(creds.fsgid),
    cap_inh: (creds.cap_inh as number[]).map(Number),
    cap_prm: (creds.cap_prm as number[]).map(Number),
    cap_eff: (creds.cap_eff as number[]).map(Number),
    cap_bnd: (creds.cap_bnd as number[]).map(Number),
    groups: ((creds.groups as number[] | undefined) ?? []).map(Number),
  }).toEqual({
    uid,
    euid,
    suid,
    fsuid,
    gid,
    egid,
    sgid,
    fsgid,
    cap_inh: capWords(st.CapInh),
    cap_prm: capWords(st.CapPrm),
    cap_eff: capWords(st.CapEff),
    cap_bnd: capWords(st.CapBnd),
    groups: (st.Groups ?? '').split(/\s+/).filter(Boolean).map(Number),
  });
  const ip = big(obj(obj(core.thread_info).gpregs).ip);
  const vma = d.before.maps.find((m) => m.start <= ip && ip < m.end);
  expect(vma, `ip ${hex(ip)} of ${tid} is in no mapping`).toBeDefined();
  expect(vma!.prot & 4, `ip ${hex(ip)} of ${tid} is in ${vma!.path} without PROT_EXEC`).toBe(4);
  if (tid === pid) {
    const tc = obj(core.tc);
    expect(tc.comm).toBe(d.before.stat.comm);
    // TASK_STOPPED for a task in a group stop, else TASK_ALIVE
    expect(num(tc.task_state)).toBe(d.before.stat.f(3) === 'T' ? 3 : 1);
  } else {
    expect(core.tc).toBeUndefined();
  }
}

/** pagemap-PID.img: the runs cover pages_written pages, which pages-N.img holds back to back. */
function checkPages(
  d: Dumped,
  pid: number,
): { runs: Array<{ vaddr: bigint; pages: number; offset: number }> } {
  const pm = d.img(`pagemap-${pid}.img`);
  const pagesId = num(pm[0]!.pages_id);
  let offset = 0;
  const runs = pm.slice(1).map((e) => {
    expect(num(e.flags)).toBe(4); // PE_PRESENT
    const pages = num(e.nr_pages ?? e.compat_nr_pages);
    const run = { vaddr: big(e.vaddr), pages, offset };
    offset += pages * PAGE;
    return run;
  });
  expect(fs.statSync(path.join(d.dir, `pages-${pagesId}.img`)).size).toBe(offset);
  const stats = obj(d.img('stats-dump')[0]!.dump);
  expect(num(stats.pages_written)).toBe(offset / PAGE);
  expect(d.pagesWritten).toBe(offset / PAGE);
  // every run lies inside one dumped private VMA
  const vmas = d.img(`mm-${pid}.img`)[0]!.vmas as Obj[];
  for (const r of runs) {
    const end = r.vaddr + BigInt(r.pages * PAGE);
    const inside = vmas.some((v) => big(v.start) <= r.vaddr && end <= big(v.end));
    const spans = vmas.filter((v) => big(v.start) < end && r.vaddr < big(v.end));
    expect(inside || spans.length > 1, `run ${hex(r.vaddr)}+${r.pages} outside any VMA`).toBe(true);
  }
  return { runs };
}

function checkSingleTaskTree(d: Dumped, pid: number): void {
  expect(d.img('pstree.img')).toEqual([
    {
      pid,
      ppid: 0,
      pgid: Number(d.before.stat.f(5)),
      sid: Number(d.before.stat.f(6)),
      threads: fs
        .readdirSync(`/proc/${pid}/task`)
        .map(Number)
        .sort((a, b) => a - b),
    },
  ]);
  const inv = d.img('inventory.img')[0]!;
  expect(inv.img_version).toBe(2);
  // root_ids are criu-ts's own (CRIU's rule): its namespaces, which the workload shares here, and an
  // address space, fd table, fs and signal handlers no task of the tree has.
  const rootIds = obj(inv.root_ids);
  const ids = d.img(`ids-${pid}.img`)[0]!;
  for (const k of ['vm_id', 'files_id', 'fs_id', 'sighand_id']) expect(rootIds[k], k).not.toBe(ids[k]);
  const ns = (o: Obj) => Object.fromEntries(Object.entries(o).filter(([k]) => k.endsWith('_ns_id')));
  expect(ns(rootIds)).toEqual(ns(ids));
}

/** All the checks of a single-threaded, single-task dump. */
function checkAll(d: Dumped, pid: number): void {
  checkSingleTaskTree(d, pid);
  checkMm(d, pid);
  checkFds(d, pid);
  checkCore(d, pid, pid);
  checkPages(d, pid);
}

describe.skipIf(!haveCrit)('dump images, decoded by crit, agree with /proc', () => {
  it('memhog: VMAs, fds, creds, registers; pages match RssAnon, live memory and its own SUM', async () => {
    const MIB = 8;
    const w = startWorkload('memhog', [String(MIB)]);
    const sum = (await waitForLine(w.report, /^SUM /, { pid: w.pid })).slice(4);
    await waitInPause(w.pid); // quiet: its memory must not change while we compare
    const d = await dumpLive(w.pid);
    checkAll(d, w.pid);

    // Pages written against the anonymous RSS of the private VMAs, read just before the dump.
    let anonKb = 0;
    let rssKb = 0;
    for (const m of d.before.maps) {
      if (m.shared) continue;
      const c = d.before.smaps.get(m.start) ?? {};
      anonKb += c.Anonymous ?? 0;
      rssKb += c.Rss ?? 0;
    }
    expect(d.pagesWritten).toBeGreaterThanOrEqual(anonKb / 4);
    expect(d.pagesWritten).toBeLessThanOrEqual(rssKb / 4 + 4);
    expect(d.pagesWritten).toBeGreaterThanOrEqual((MIB << 20) / PAGE);

    // The dumped pages are the task's memory: equal to a fresh read of the (paused) task, except the
    // rseq area (struct rseq, 32 bytes): the kernel rewrites its cpu_id fields whenever the task goes
    // back to user space on another CPU, which the resume after the dump may well do.
    const { runs } = checkPages(d, w.pid);
    const rseqEntry = obj(obj(d.img(`core-${w.pid}.img`)[0]!.thread_core).rseq_entry);
    const rseq = rseqEntry.rseq_abi_pointer === undefined ? -1n : big(rseqEntry.rseq_abi_pointer);
    const RSEQ_SIZE = 32n;
    const pagesFile = fs.readFileSync(path.join(d.dir, 'pages-1.img'));
    const differ: string[] = [];
    for (const r of runs) {
      const live = Buffer.alloc(r.pages * PAGE);
      expect(processVmReadv(w.pid, [{ local: live, remote: r.vaddr, len: live.length }])).toBe(live.length);
      for (let p = 0; p < r.pages; p++) {
        const a = pagesFile.subarray(r.offset + p * PAGE, r.offset + (p + 1) * PAGE);
        const b = Buffer.from(live.subarray(p * PAGE, (p + 1) * PAGE));
        const at = r.vaddr + BigInt(p * PAGE);
        if (rseq >= at && rseq < at + BigInt(PAGE)) {
          const o = Number(rseq - at);
          a.copy(b, o, o, o + Number(RSEQ_SIZE));
        }
        if (!a.equals(b)) {
          const vma = d.before.maps.find((m) => m.start <= at && at < m.end);
          let off = 0;
          while (a[off] === b[off]) off++;
          differ.push(`${hex(at)} (${vma?.path || 'anon'}) first at +${off}`);
        }
      }
    }
    expect(differ).toEqual([]);

    // memhog's area, found by its first word, has the checksum memhog printed.
    const first = memhogFirstWord(1n);
    let area: { run: (typeof runs)[number]; page: number } | undefined;
    for (const run of runs) {
      for (let p = 0; p < run.pages && !area; p++) {
        if (pagesFile.readBigUInt64LE(run.offset + p * PAGE) === first) area = { run, page: p };
      }
    }
    expect(area, 'memhog area not found in the dumped pages').toBeDefined();
    const start = area!.run.offset + area!.page * PAGE;
    expect(area!.run.pages - area!.page).toBeGreaterThanOrEqual((MIB << 20) / PAGE);
    const words = new BigUint64Array(pagesFile.buffer, pagesFile.byteOffset + start, (MIB << 20) / 8);
    expect(memhogChecksum(words).toString(16).padStart(16, '0')).toBe(sum);

    // It runs on and its own check passes.
    const n = readLines(w.report).length;
    kill(w.pid, SIGUSR1);
    expect(await waitForLine(w.report, /^SUM /, { pid: w.pid, fromLine: n })).toBe(`SUM ${sum}`);
    expect(tracerPid(w.pid)).toBe(0);
  });

  it('reader: a half-read file keeps its position and flags; the reader reads on', async () => {
    const dir = tempDir('criu-ts-core-reader-');
    const file = path.join(dir, 'numbers');
    fs.writeFileSync(file, `${Array.from({ length: 20000 }, (_, i) => i + 1).join('\n')}\n`);
    const w = startWorkload('reader', [file]);
    await waitForLine(w.report, /^LINE 5$/, { pid: w.pid });
    const d = await dumpLive(w.pid);
    checkAll(d, w.pid);
    // fd 4 is the file, O_RDONLY|O_CLOEXEC: partly read.
    const fd4 = d.before.fds.find((f) => f.fd === 4)!;
    expect(fd4.link).toBe(file);
    const ids = d.img(`ids-${w.pid}.img`)[0]!;
    const e = d.img(`fdinfo-${num(ids.files_id)}.img`).find((x) => num(x.fd) === 4)!;
    expect(num(e.flags)).toBe(1);
    const reg = obj(filesById(d).get(num(e.id))?.reg);
    expect(num(reg.flags) & 3).toBe(0); // O_RDONLY
    const pos = big(reg.pos);
    expect(pos).toBeGreaterThan(0n);
    expect(pos).toBeLessThan(BigInt(fs.statSync(file).size));
    expect(big(reg.size)).toBe(BigInt(fs.statSync(file).size));
    await waitForMoreLines(w.report, 3, w.pid);
    expect(failLines(w.report)).toEqual([]);
  });

  it('tree: pstree has the 5 tasks with ppid, pgid and sid as TASK lines and /proc say', async () => {
    const w = startWorkload('tree');
    await waitForLine(w.report, /^TREE /, { pid: w.pid });
    const tasks = readLines(w.report)
      .filter((l) => l.startsWith('TASK '))
      .map((l) => l.split(' ').slice(1).map(Number) as [number, number, number, number]);
    expect(tasks).toHaveLength(5);
    track(...tasks.map((t) => t[0]));
    const befores = new Map(tasks.map(([pid]) => [pid, readBefore(pid)]));
    const dir = path.join(tempDir('criu-ts-core-img-'), 'images');
    const result = await dump({ pid: w.pid, imagesDir: dir, leaveRunning: true });
    expect(result.tasks).toBe(5);
    const { decoded, failures } = critDecodeAll(dir);
    expect(failures).toEqual([]);
    const pstree = entries(decoded.get('pstree.img'));
    const byPid = new Map(pstree.map((e) => [num(e.pid), e]));
    expect([...byPid.keys()].sort()).toEqual(tasks.map((t) => t[0]).sort());
    expect(num(pstree[0]!.pid)).toBe(w.pid); // the root first
    for (const [pid, ppid, pgid, sid] of tasks) {
      const e = byPid.get(pid)!;
      const stat = befores.get(pid)!.stat;
      expect([num(e.ppid), num(e.pgid), num(e.sid)], `pid ${pid}`).toEqual([
        pid === w.pid ? 0 : ppid,
        pgid,
        sid,
      ]);
      // The root was re-parented to us after its TASK line (startTraceable's double fork).
      const ppidNow = pid === w.pid ? Number(stat.f(4)) : ppid;
      expect([Number(stat.f(4)), Number(stat.f(5)), Number(stat.f(6))]).toEqual([ppidNow, pgid, sid]);
      expect((e.threads as number[]).map(Number)).toEqual([pid]);
      for (const img of [
        `core-${pid}.img`,
        `mm-${pid}.img`,
        `ids-${pid}.img`,
        `fs-${pid}.img`,
        `pagemap-${pid}.img`,
      ]) {
        expect(decoded.has(img), img).toBe(true);
      }
      const d: Dumped = {
        dir,
        before: befores.get(pid)!,
        afterFds: readFds(pid),
        img: (f) => entries(decoded.get(f)),
        images: [...decoded.keys()],
        pagesWritten: 0,
      };
      checkMm(d, pid);
      checkFds(d, pid);
      checkCore(d, pid, pid);
    }
    // Parents and their children agree in the image.
    for (const [pid, ppid] of tasks) if (pid !== w.pid) expect(byPid.has(ppid)).toBe(true);
    // All five run on, untraced, asleep in pause() as before.
    await waitFor(
      () => tasks.every(([pid]) => procState(pid) === 'S' && tracerPid(pid) === 0),
      () => `tree tasks asleep and untraced: ${tasks.map(([p]) => `${p}:${procState(p)}`).join(' ')}`,
    );
    expect(failLines(w.report)).toEqual([]);
  });

  it('threads: every thread alive across the dump has a core image with its registers', async () => {
    const N = 3;
    const w = startWorkload('threads', [String(N)]);
    await waitForLine(w.report, /^TICK /, { pid: w.pid });
    const tidsBefore = fs.readdirSync(`/proc/${w.pid}/task`).map(Number);
    const before = readBefore(w.pid);
    const dir = path.join(tempDir('criu-ts-core-img-'), 'images');
    const result = await dump({ pid: w.pid, imagesDir: dir, leaveRunning: true });
    const tidsAfter = new Set(fs.readdirSync(`/proc/${w.pid}/task`).map(Number));
    // Stop the busy workers' load early; the images are all we need from now on.
    const ticks = readLines(w.report).length;
    await waitForLine(w.report, /^TICK /, { pid: w.pid, fromLine: ticks });
    expect(failLines(w.report)).toEqual([]);
    kill(w.pid, 9);

    const { decoded, failures } = critDecodeAll(dir);
    expect(failures).toEqual([]);
    const [task] = entries(decoded.get('pstree.img'));
    const threads = (task!.threads as number[]).map(Number);
    expect(threads[0]).toBe(w.pid);
    expect(result.threads).toBe(threads.length);
    // main + N workers always; at most one short-lived child per worker besides.
    expect(threads.length).toBeGreaterThanOrEqual(N + 1);
    expect(threads.length).toBeLessThanOrEqual(2 * N + 1);
    // A thread alive before and after the dump was alive while it was frozen.
    const stable = tidsBefore.filter((t) => tidsAfter.has(t));
    expect(stable.filter((t) => !threads.includes(t))).toEqual([]);
    const d: Dumped = {
      dir,
      before,
      afterFds: before.fds,
      img: (f) => entries(decoded.get(f)),
      images: [...decoded.keys()],
      pagesWritten: result.pagesWritten,
    };
    for (const tid of threads) {
      expect(decoded.has(`core-${tid}.img`), `core-${tid}.img`).toBe(true);
      const core = d.img(`core-${tid}.img`)[0]!;
      const ip = big(obj(obj(core.thread_info).gpregs).ip);
      const vma = before.maps.find((m) => m.start <= ip && ip < m.end);
      expect(vma && vma.prot & 4, `ip ${hex(ip)} of thread ${tid}`).toBe(4);
      expect(core.tc === undefined, `tc only in the leader's core (${tid})`).toBe(tid !== w.pid);
    }
  });

  it('sleep and a python3 loop: every image decodes and agrees with /proc', async () => {
    const sleepPid = await startCommand(['/usr/bin/sleep', '1000']);
    await waitFor(() => procState(sleepPid) === 'S', 'sleep asleep');
    const ds = await dumpLive(sleepPid);
    checkAll(ds, sleepPid);
    expect(procState(sleepPid)).toBe('S');

    const py = await startPythonCounter();
    await waitForLine(py.report, /^3$/, { pid: py.pid });
    const dp = await dumpLive(py.pid);
    checkAll(dp, py.pid);
    await waitForMoreLines(py.report, 3, py.pid);
    expect(isConsecutiveFromOne(counterNumbers(py.report))).toBe(true);
  });
});

describe.skipIf(!haveCrit)('dump images of stopped tasks and zombies', () => {
  it('a stopped task: TASK_STOPPED, and it stays stopped after -R; SIGCONT resumes it', async () => {
    const w = startWorkload('stopper');
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'T', 'stopper stopped');
    const d = await dumpLive(w.pid);
    checkAll(d, w.pid);
    await waitFor(
      () => procState(w.pid) === 'T' && tracerPid(w.pid) === 0,
      'stopper stopped again, untraced',
    );
    expect(readLines(w.report)).toEqual([`READY ${w.pid}`]);
    kill(w.pid, SIGCONT);
    await waitForLine(w.report, /^ALIVE 3$/, { pid: w.pid });
    expect(failLines(w.report)).toEqual([]);
  });

  it('a zombie child: TASK_DEAD (as CRIU writes a zombie) with its raw wait status; it stays a zombie after -R', async () => {
    const w = startWorkload('zombie');
    const zpid = Number((await waitForLine(w.report, /^ZOMBIE /, { pid: w.pid })).split(' ')[1]);
    track(zpid);
    await waitInPause(w.pid);
    const d = await dumpLive(w.pid);
    checkMm(d, w.pid);
    checkFds(d, w.pid);
    checkCore(d, w.pid, w.pid);
    const pstree = d.img('pstree.img');
    expect(pstree.map((e) => [num(e.pid), num(e.ppid), (e.threads as number[]).map(Number)])).toEqual([
      [w.pid, 0, [w.pid]],
      [zpid, w.pid, [zpid]],
    ]);
    const tc = obj(d.img(`core-${zpid}.img`)[0]!.tc);
    expect(num(tc.task_state)).toBe(2); // TASK_DEAD: CRIU's restore knows a zombie by it
    expect(num(tc.exit_code)).toBe(42 << 8); // as CRIU keeps it: the raw wait status
    expect(d.images.includes(`mm-${zpid}.img`)).toBe(false);
    expect(procState(zpid)).toBe('Z');
    kill(w.pid, SIGUSR1);
    await waitForLine(w.report, new RegExp(`^REAPED ${zpid} 42$`), { pid: w.pid });
  });
});

describe('a counter dumped with -R', () => {
  it('has, in its dumped .bss, the last number it wrote before the freeze or the next one (5 dumps)', async () => {
    const w = startWorkload('counter', ['2']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    // bss_count's address: the exe's load base + its st_value (a PIE).
    const nm = execFileSync('nm', [workloadPath('counter')], { encoding: 'utf8' });
    const sym = /^([0-9a-f]+) b bss_count$/m.exec(nm);
    expect(sym, 'bss_count in nm output').not.toBeNull();
    const exe = fs.readlinkSync(`/proc/${w.pid}/exe`);
    const base = readMaps(w.pid).find((m) => m.path === exe && m.pgoff === 0n)!.start;
    const addr = base + BigInt(`0x${sym![1]}`);
    for (let i = 0; i < 5; i++) {
      const dir = path.join(tempDir('criu-ts-core-bss-'), 'images');
      await dump({ pid: w.pid, imagesDir: dir, leaveRunning: true });
      const img = ImageDir.open(dir);
      const pm = img.pageMap(w.pid);
      const value = Number(pm.read(addr, 8).readBigUInt64LE(0));
      pm.close();
      // The report (fd 3, O_APPEND) as far as it was written when the task was frozen.
      const fd3 = img.fdinfo(img.ids(w.pid).files_id).find((e) => e.fd === 3)!;
      const pos = img.files().find((f) => f.id === fd3.id)!.reg!.pos;
      const written = fs.readFileSync(w.report, 'utf8').slice(0, Number(pos)).trimEnd().split('\n');
      const last = Number(written[written.length - 1]);
      expect([last, last + 1], `dump ${i}: .bss ${value}, last line ${last}`).toContain(value);
    }
    await waitForMoreLines(w.report, 3, w.pid);
    expect(failLines(w.report)).toEqual([]);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });
});
