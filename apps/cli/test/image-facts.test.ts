// Image facts that let images cross between CRIU 4.2 and criu-ts both ways, pinned on real C workloads
// dumped and restored by the CLI: the registers of a task blocked in a syscall (they resume as they are,
// as CRIU stores them), the auxv CRIU can read, root_ids (the dumper's own), the whole vDSO, a periodic
// itimer whose signal is pending, zombies; and what criu-ts reads of CRIU's images (PE_LAZY|PE_PRESENT
// pagemaps, CRIU's registers of an interrupted sleep, its zombie entries) and of its own older images.
// Each fact is checked in the images and then by restoring them: the workload goes on as it would have.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import {
  type CoreEntry,
  type FileEntry,
  ImageDir,
  type InventoryEntry,
  type MmEntry,
  type PagemapHead,
  type PagemapRun,
  PE_LAZY,
  PE_PRESENT,
  type PstreeEntry,
  type TaskKobjIdsEntry,
  type UserX86RegsEntry,
} from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  cliDump,
  counterNumbers,
  failLines,
  isConsecutiveFromOne,
  PYTHON,
  procState,
  procSyscall,
  readLines,
  readMaps,
  restoreDetached,
  runCli,
  startCommand,
  startWorkload,
  tempDir,
  waitFor,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const NR = { read: 0n, pause: 34n, futex: 202n, restartSyscall: 219n, clockNanosleep: 230n } as const;
const SYSCALL_INSN = Buffer.from([0x0f, 0x05]);
const EINTR = BigInt.asUintN(64, -4n);
const ERESTARTSYS = BigInt.asUintN(64, -512n);
const SIGALRM = 14;
const TASK_DEAD = 2;
const TASK_ZOMBIE = 6;
/** The most auxv words CRIU reads from mm.img (its AT_VECTOR_SIZE). */
const AUXV_MAX_WORDS = 44;
/** VmaEntry status bits (CRIU's vma.h), as mm.img has them. */
const VMA = { AREA_REGULAR: 1 << 0, AREA_VDSO: 1 << 3, ANON_PRIVATE: 1 << 9, AREA_VVAR: 1 << 12 } as const;

/** Kill the dumped tree's leftovers (a -R dump leaves it running) and wait for the pids to be free. */
function gone(...pids: number[]): void {
  for (const p of pids) killAndReap(p);
  for (const p of pids) expect(procState(p)).toBe('gone');
}

const gpregs = (dir: string, tid: number): UserX86RegsEntry =>
  ImageDir.open(dir).core(tid).thread_info!.gpregs;

function editCore(dir: string, tid: number, edit: (c: CoreEntry) => void): void {
  const img = ImageDir.open(dir);
  const core = img.core(tid);
  edit(core);
  img.write('core-%u', tid, [core]);
}

/** Bytes of a live task's memory, through /proc/PID/mem (code pages too). */
function memAt(pid: number, addr: bigint, len: number): Buffer {
  const b = Buffer.alloc(len);
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  try {
    expect(fs.readSync(fd, b, 0, len, addr)).toBe(len);
  } finally {
    fs.closeSync(fd);
  }
  return b;
}

/** The user-mode ip /proc/PID/syscall reports for a task blocked in a syscall (just past the `syscall`). */
function syscallPc(pid: number): bigint {
  return BigInt(fs.readFileSync(`/proc/${pid}/syscall`, 'utf8').trim().split(' ').at(-1)!);
}

/** Wait until `pid` sleeps in syscall `nr`. */
async function blockedIn(pid: number, nr: bigint): Promise<void> {
  await waitFor(
    () => procState(pid) === 'S' && procSyscall(pid) === Number(nr),
    () => `pid ${pid} asleep in syscall ${nr} (${procState(pid)}, ${procSyscall(pid)})`,
  );
}

/**
 * A task blocked in syscall `nr`: its registers in the images resume as they are (rip on the `syscall`
 * instruction, rax = orig_rax = nr), checked against the live task that a -R dump left running.
 */
async function expectResumesInSyscall(pid: number, nr: bigint): Promise<string> {
  await blockedIn(pid, nr);
  const pc = syscallPc(pid);
  const dir = await cliDump(pid, ['-R']);
  const r = gpregs(dir, pid);
  expect({ orig_ax: r.orig_ax, ax: r.ax, ip: r.ip }).toEqual({ orig_ax: nr, ax: nr, ip: pc - 2n });
  expect(memAt(pid, r.ip, 2)).toEqual(SYSCALL_INSN);
  return dir;
}

describe('registers of a task blocked in a syscall resume as they are (as CRIU stores them)', () => {
  it('read(): rip on its syscall instruction, rax = orig_rax = 0; restored, it reads what comes', async () => {
    const fifo = path.join(tempDir('criu-ts-facts-fifo-'), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const w = startWorkload('pipe_reader', [fifo]);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    const dir = await expectResumesInSyscall(w.pid, NR.read);
    gone(w.pid);
    await restoreDetached(dir);
    await blockedIn(w.pid, NR.read);
    fs.writeFileSync(fifo, 'after\n');
    await waitForLine(w.report, /^READ after$/, { pid: w.pid });
  });

  it('pause(): rax = orig_rax = 34; restored, it waits on until SIGUSR1', async () => {
    const w = startWorkload('waiter', ['pause']);
    await waitForLine(w.report, /^WAITING pause$/, { pid: w.pid });
    const dir = await expectResumesInSyscall(w.pid, NR.pause);
    gone(w.pid);
    await restoreDetached(dir);
    await blockedIn(w.pid, NR.pause);
    expect(readLines(w.report).at(-1)).toBe('WAITING pause');
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^WOKE pause$/, { pid: w.pid });
  });

  it('nanosleep: clock_nanosleep runs again for what it had left (req = rem, rem filled in); never short', async () => {
    const w = startWorkload('sleeper', ['3000']);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await blockedIn(w.pid, NR.clockNanosleep);
    const t0 = Date.now();
    await waitFor(() => Date.now() - t0 >= 300, '300 ms of sleep');
    const dir = await expectResumesInSyscall(w.pid, NR.clockNanosleep);
    const r = gpregs(dir, w.pid);
    // clock_nanosleep(clock, flags, req = rdx, rem = r10): req is now rem, which holds the time left.
    expect(r.r10).not.toBe(0n);
    expect(r.dx).toBe(r.r10);
    const rem = ImageDir.open(dir).pageMap(w.pid).read(r.r10, 16);
    const leftMs = Number(rem.readBigInt64LE(0)) * 1000 + Number(rem.readBigInt64LE(8)) / 1e6;
    expect(leftMs).toBeGreaterThan(0);
    expect(leftMs).toBeLessThanOrEqual(2700);
    gone(w.pid);
    await restoreDetached(dir);
    const slept = await waitForLine(w.report, /^SLEPT /, { pid: w.pid, timeoutMs: 15_000 });
    expect(Number(slept.split(' ')[1])).toBeGreaterThanOrEqual(3000);
    expect(failLines(w.report)).toEqual([]);
  });

  it('restart_syscall: rax = -EINTR where it stopped (as CRIU has it); the sleeper sleeps on what is left', async () => {
    const w = startWorkload('sleeper', ['4000']);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await blockedIn(w.pid, NR.clockNanosleep);
    // A stop and a resume leave the sleep in restart_syscall (the kernel's restart block).
    await cliDump(w.pid, ['-R']);
    await blockedIn(w.pid, NR.restartSyscall);
    const pc = syscallPc(w.pid);
    const dir = await cliDump(w.pid, ['-R']);
    const r = gpregs(dir, w.pid);
    expect({ orig_ax: r.orig_ax, ax: r.ax, ip: r.ip }).toEqual({
      orig_ax: NR.restartSyscall,
      ax: EINTR,
      ip: pc,
    });
    expect(memAt(w.pid, r.ip - 2n, 2)).toEqual(SYSCALL_INSN);
    gone(w.pid);
    await restoreDetached(dir);
    const slept = await waitForLine(w.report, /^SLEPT /, { pid: w.pid, timeoutMs: 15_000 });
    expect(Number(slept.split(' ')[1])).toBeGreaterThanOrEqual(4000);
    expect(failLines(w.report)).toEqual([]);
  });

  it('a futex wait: run again, no EINTR seen; restored, the SIGUSR1 handler wakes it', async () => {
    const w = startWorkload('waiter', ['futex']);
    await waitForLine(w.report, /^WAITING futex$/, { pid: w.pid });
    const dir = await expectResumesInSyscall(w.pid, NR.futex);
    gone(w.pid);
    await restoreDetached(dir);
    await blockedIn(w.pid, NR.futex);
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^WOKE futex eintr=0$/, { pid: w.pid });
  });

  it('a futex wait with a timeout (ERESTART_RESTARTBLOCK): run again with its timeout, no EINTR seen', async () => {
    const w = startWorkload('waiter', ['futex-timed', '1500']);
    await waitForLine(w.report, /^WAITING futex-timed$/, { pid: w.pid });
    await blockedIn(w.pid, NR.futex);
    const dir = await cliDump(w.pid);
    gone(w.pid);
    const r = gpregs(dir, w.pid);
    expect([r.orig_ax, r.ax]).toEqual([NR.futex, NR.futex]);
    await restoreDetached(dir);
    await blockedIn(w.pid, NR.futex);
    const l = await waitForLine(w.report, /^TIMEDOUT /, { pid: w.pid, timeoutMs: 15_000 });
    expect(l).toMatch(/ eintr=0$/);
    expect(failLines(w.report)).toEqual([]);
  });
});

describe('registers of other images are loaded as they are', () => {
  it('an older criu-ts image (rax = -ERESTARTSYS, rip past the syscall) still restarts the read', async () => {
    const fifo = path.join(tempDir('criu-ts-facts-fifo-'), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const w = startWorkload('pipe_reader', [fifo]);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await blockedIn(w.pid, NR.read);
    const dir = await cliDump(w.pid);
    gone(w.pid);
    editCore(dir, w.pid, (c) => {
      const g = c.thread_info!.gpregs;
      g.ax = ERESTARTSYS;
      g.ip += 2n;
    });
    await restoreDetached(dir);
    await blockedIn(w.pid, NR.read);
    fs.writeFileSync(fifo, 'old\n');
    await waitForLine(w.report, /^READ old$/, { pid: w.pid });
  });

  it("CRIU's image of an interrupted sleep (rax = -EINTR, rip past the syscall): the task sees EINTR and sleeps on", async () => {
    const w = startWorkload('sleeper', ['2500']);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await blockedIn(w.pid, NR.clockNanosleep);
    const dir = await cliDump(w.pid);
    gone(w.pid);
    editCore(dir, w.pid, (c) => {
      const g = c.thread_info!.gpregs;
      g.ax = EINTR;
      g.ip += 2n;
    });
    await restoreDetached(dir);
    const slept = await waitForLine(w.report, /^SLEPT /, { pid: w.pid, timeoutMs: 15_000 });
    expect(Number(slept.split(' ')[1])).toBeGreaterThanOrEqual(2500);
    expect(failLines(w.report)).toEqual([]);
  });
});

describe('mm, inventory and vDSO as CRIU reads and writes them', () => {
  it('auxv: the pairs before AT_NULL, at most 44 words; restored, /proc/PID/auxv is as it was (also from an image with AT_NULL)', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^10$/, { pid: w.pid });
    const auxv = fs.readFileSync(`/proc/${w.pid}/auxv`);
    const words = Array.from({ length: auxv.length / 8 }, (_, i) => auxv.readBigUInt64LE(i * 8));
    const dir = await cliDump(w.pid);
    gone(w.pid);
    const saved = ImageDir.open(dir).mm(w.pid).mm_saved_auxv ?? [];
    const end = words.findIndex((v, i) => i % 2 === 0 && v === 0n);
    expect(saved.length % 2).toBe(0);
    expect(saved.length).toBeLessThanOrEqual(AUXV_MAX_WORDS);
    expect(saved.map((v) => BigInt.asUintN(64, v))).toEqual(words.slice(0, end));
    await restoreDetached(dir);
    await waitForMoreLines(w.report, 5, w.pid);
    expect(fs.readFileSync(`/proc/${w.pid}/auxv`).equals(auxv)).toBe(true);
    // criu-ts's older images kept the AT_NULL pair (46 words here): read as well.
    gone(w.pid);
    const img = ImageDir.open(dir);
    const mm: MmEntry = img.mm(w.pid);
    mm.mm_saved_auxv = [...saved, 0n, 0n];
    img.write('mm-%u', w.pid, [mm]);
    await restoreDetached(dir);
    await waitForMoreLines(w.report, 5, w.pid);
    expect(fs.readFileSync(`/proc/${w.pid}/auxv`).equals(auxv)).toBe(true);
  });

  it("root_ids: the dumper's own (no task shares its mm, fds, fs, sighand), its namespaces; images with the root task's ids restore too", async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^10$/, { pid: w.pid });
    // the workload runs in the test's namespaces, which are criu-ts's
    for (const k of ['pid', 'net', 'mnt', 'ipc', 'uts', 'user'])
      expect(fs.readlinkSync(`/proc/self/ns/${k}`)).toBe(fs.readlinkSync(`/proc/${w.pid}/ns/${k}`));
    const dir = await cliDump(w.pid);
    gone(w.pid);
    const img = ImageDir.open(dir);
    const inv: InventoryEntry = img.inventory();
    const ids: TaskKobjIdsEntry = img.ids(w.pid);
    const rootIds = inv.root_ids!;
    // CRIU's restore: a root task with the same files_id as root_ids is "Image corruption on kIDs data".
    for (const k of ['vm_id', 'files_id', 'fs_id', 'sighand_id'] as const)
      expect(rootIds[k], k).not.toBe(ids[k]);
    const ns = (o: TaskKobjIdsEntry) => Object.entries(o).filter(([k]) => k.endsWith('_ns_id'));
    expect(ns(rootIds)).toEqual(ns(ids));
    // criu-ts's older images: root_ids = the root task's own.
    inv.root_ids = ids;
    img.write('inventory', undefined, [inv]);
    await restoreDetached(dir);
    await waitForMoreLines(w.report, 10, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });

  it('the vDSO is dumped whole, also the page a task never used (CRIU reads its ELF); [vvar] is one area without pages', async () => {
    // waiter has not called into the vDSO: glibc read its ELF header page at start, not its code page.
    const w = startWorkload('waiter', ['pause']);
    await waitForLine(w.report, /^WAITING pause$/, { pid: w.pid });
    await blockedIn(w.pid, NR.pause);
    const maps = readMaps(w.pid);
    const vdso = maps.find((m) => m.path === '[vdso]')!;
    const vvars = maps.filter((m) => m.path === '[vvar]' || m.path === '[vvar_vclock]');
    // Its bytes, as this kernel maps them in every process (ours too): reading the task's own would
    // fault its pages in.
    const ours = readMaps(process.pid).find((m) => m.path === '[vdso]')!;
    expect(ours.end - ours.start).toBe(vdso.end - vdso.start);
    const code = memAt(process.pid, ours.start, Number(ours.end - ours.start));
    expect(code.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    const dir = await cliDump(w.pid);
    gone(w.pid);
    const img = ImageDir.open(dir);
    const vmas = img.mm(w.pid).vmas ?? [];
    const v = vmas.find((x) => x.status & VMA.AREA_VDSO)!;
    expect([v.start, v.end, v.status]).toEqual([
      vdso.start,
      vdso.end,
      VMA.AREA_REGULAR | VMA.ANON_PRIVATE | VMA.AREA_VDSO,
    ]);
    const vv = vmas.filter((x) => x.status & VMA.AREA_VVAR);
    expect(vv.map((x) => [x.start, x.end, x.status])).toEqual([
      [vvars[0]!.start, vvars.at(-1)!.end, VMA.AREA_REGULAR | VMA.ANON_PRIVATE | VMA.AREA_VVAR],
    ]);
    const pm = img.pageMap(w.pid);
    const covered = (at: bigint) =>
      pm.runs.some((r) => r.flags === PE_PRESENT && r.vaddr <= at && at < r.vaddr + r.pages * 4096n);
    for (let at = vdso.start; at < vdso.end; at += 4096n) expect(covered(at), `vDSO page ${at}`).toBe(true);
    expect(pm.read(v.start, code.length).equals(code)).toBe(true);
    expect(pm.runs.some((r) => r.vaddr < vv[0]!.end && vv[0]!.start < r.vaddr + r.pages * 4096n)).toBe(false);
    // restore takes this kernel's vDSO (the same): the dumped pages are not written over it
    await restoreDetached(dir);
    await blockedIn(w.pid, NR.pause);
    expect(memAt(w.pid, vdso.start, code.length).equals(code)).toBe(true);
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^WOKE pause$/, { pid: w.pid });
  });

  it('busy reads the clock through the vDSO after restore, from images that hold all of it', async () => {
    const w = startWorkload('busy');
    await waitForLine(w.report, /^TICK 2$/, { pid: w.pid });
    const dir = await cliDump(w.pid);
    gone(w.pid);
    await restoreDetached(dir);
    const n = readLines(w.report).length;
    await waitForLine(w.report, (_l, i) => i >= n + 3, { pid: w.pid, fromLine: n });
    expect(failLines(w.report)).toEqual([]);
  });
});

describe('pagemap flags', () => {
  it('PE_LAZY|PE_PRESENT (CRIU 4.2 on every private anonymous run) is present data; PE_LAZY alone is refused before any task exists', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^10$/, { pid: w.pid });
    const dir = await cliDump(w.pid);
    gone(w.pid);
    const img = ImageDir.open(dir);
    const entries = img.read('pagemap-%lu', w.pid).map((e) => e.message);
    const [head, ...runs] = entries as [PagemapHead, ...PagemapRun[]];
    const anon = (img.mm(w.pid).vmas ?? []).filter(
      (v) => v.status & VMA.ANON_PRIVATE && !(v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR)),
    );
    const inAnon = (r: PagemapRun) => anon.some((v) => v.start <= r.vaddr && r.vaddr < v.end);
    const lazy = runs.map((r) => (inAnon(r) ? { ...r, flags: PE_LAZY | PE_PRESENT } : r));
    expect(lazy.filter((r) => r.flags === (PE_LAZY | PE_PRESENT)).length).toBeGreaterThan(0);
    img.write('pagemap-%lu', w.pid, [head, ...lazy]);
    await restoreDetached(dir);
    await waitForMoreLines(w.report, 10, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
    expect(failLines(w.report)).toEqual([]);
    gone(w.pid);
    // One run whose data is on a page server: refused, nothing created.
    const i = lazy.findIndex((r) => r.flags === (PE_LAZY | PE_PRESENT));
    img.write('pagemap-%lu', w.pid, [head, ...lazy.map((r, j) => (j === i ? { ...r, flags: PE_LAZY } : r))]);
    const r = await runCli(['restore', '-D', dir, '-d']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`criu-ts: pagemap-${w.pid}.img: lazy pages need a page server\n`);
    expect(procState(w.pid)).toBe('gone');
  });
});

describe('timers and zombies', () => {
  it('a periodic itimer whose SIGALRM is pending: value 0, its interval, SIGALRM queued; restored, it ticks on', async () => {
    const w = startWorkload('waiter', ['itimer', '50']);
    await waitForLine(w.report, /^WAITING itimer$/, { pid: w.pid });
    await blockedIn(w.pid, NR.pause);
    const dir = await cliDump(w.pid);
    gone(w.pid);
    const tc = ImageDir.open(dir).core(w.pid).tc!;
    expect(tc.timers!.real).toEqual({ isec: 0n, iusec: 50_000n, vsec: 0n, vusec: 0n });
    const queued = (tc.signals_s?.signals ?? []).map((s) => Buffer.from(s.siginfo).readInt32LE(0));
    expect(queued).toContain(SIGALRM);
    await restoreDetached(dir);
    await blockedIn(w.pid, NR.pause);
    process.kill(w.pid, 'SIGUSR1');
    // Without the timer, it would wait for a second SIGALRM for ever.
    await waitForLine(w.report, /^TICKING 50$/, { pid: w.pid, timeoutMs: 5000 });
    const alrm = readLines(w.report).filter((l) => l.startsWith('ALRM '));
    expect(alrm.map((l) => l.split(' ')[1])).toEqual(['1', '2', '3']);
    expect(Number(alrm[0]!.split(' ')[2])).toBeLessThan(40); // the pending one, at once
    expect(failLines(w.report)).toEqual([]);
  });

  it("zombies: written TASK_DEAD as CRIU does; CRIU's entry (a stray thread id) and older TASK_ZOMBIE images restore", async () => {
    const w = startWorkload('zombie');
    const child = Number((await waitForLine(w.report, /^ZOMBIE /, { pid: w.pid })).split(' ')[1]);
    await waitFor(() => procState(w.pid) === 'S', 'zombie parent asleep');
    const dir = await cliDump(w.pid);
    gone(w.pid, child);
    const img = ImageDir.open(dir);
    expect(img.core(child).tc!.task_state).toBe(TASK_DEAD);
    const pstree: PstreeEntry[] = img.pstree();
    // What CRIU 4.2 leaves in a zombie's threads field: whatever was in memory.
    img.write(
      'pstree',
      undefined,
      pstree.map((e) => (e.pid === child ? { ...e, threads: [3834515232] } : e)),
    );
    for (const state of [TASK_DEAD, TASK_ZOMBIE]) {
      editCore(dir, child, (c) => {
        c.tc!.task_state = state;
      });
      await restoreDetached(dir);
      expect(procState(child)).toBe('Z');
      await waitFor(() => procState(w.pid) === 'S', 'restored parent asleep');
      const n = readLines(w.report).length;
      process.kill(w.pid, 'SIGUSR1');
      await waitForLine(w.report, new RegExp(`^REAPED ${child} 42$`), { pid: w.pid, fromLine: n });
      gone(w.pid);
    }
  });

  it('a zombie killed by SIGKILL comes back as one (wait status 9)', async () => {
    const w = startWorkload('zombie');
    const child = Number((await waitForLine(w.report, /^ZOMBIE /, { pid: w.pid })).split(' ')[1]);
    await waitFor(() => procState(w.pid) === 'S', 'zombie parent asleep');
    const dir = await cliDump(w.pid);
    gone(w.pid, child);
    editCore(dir, child, (c) => {
      c.tc!.exit_code = 9;
    });
    await restoreDetached(dir);
    expect(procState(child)).toBe('Z');
    const stat = fs.readFileSync(`/proc/${child}/stat`, 'utf8');
    expect(
      stat
        .slice(stat.lastIndexOf(')') + 2)
        .trim()
        .split(' ')[49],
    ).toBe('9');
  });
});

// A server bound to a pathname and to an abstract name; it answers each connection with "hi <name>".
const UNIX_SERVER_PY = `
import os, select, socket, sys
d = sys.argv[1]
p = socket.socket(socket.AF_UNIX); p.bind(d + '/s.sock'); p.listen(4)
a = socket.socket(socket.AF_UNIX); a.bind(b'\\0criu-ts-facts-%d' % os.getpid()); a.listen(4)
open(d + '/report', 'a').write('READY\\n')
while True:
    for s in select.select([p, a], [], [])[0]:
        c, _ = s.accept(); c.sendall(b'hi ' + (b'path' if s is p else b'abstract')); c.close()
`;

/** Connect to a unix stream socket (abstract when `name` starts with NUL) and read what it says. */
function askUnix(name: string): string {
  return execFileSync(
    PYTHON,
    [
      '-c',
      'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1].replace("@", "\\0", 1)); print(s.recv(100).decode())',
      name.replace('\0', '@'),
    ],
    { encoding: 'utf8' },
  ).trim();
}

describe('unix socket names', () => {
  it('a pathname with the NUL the kernel counts (as CRIU writes it and reads it as a C string), an abstract name as it is; restored over the socket file the dump left, also from images without the NUL', async () => {
    const d = tempDir('criu-ts-facts-unix-');
    const pid = await startCommand([PYTHON, '-c', UNIX_SERVER_PY, d]);
    await waitFor(() => readLines(path.join(d, 'report')).includes('READY'), 'the unix server');
    const sockPath = path.join(d, 's.sock');
    const abstract = `\0criu-ts-facts-${pid}`;
    const dir = await cliDump(pid);
    gone(pid);
    expect(fs.lstatSync(sockPath).isSocket()).toBe(true); // left behind by the killed server
    const names = () =>
      ImageDir.open(dir)
        .messages<FileEntry>('files')
        .flatMap((f) => (f.usk ? [Buffer.from(f.usk.name)] : []));
    expect(names()).toEqual(expect.arrayContaining([Buffer.from(`${sockPath}\0`), Buffer.from(abstract)]));
    expect(names()).toHaveLength(2);
    await restoreDetached(dir);
    expect(askUnix(sockPath)).toBe('hi path');
    expect(askUnix(abstract)).toBe('hi abstract');

    // Images written before the NUL was kept (or by hand) restore as well.
    const again = await cliDump(pid);
    gone(pid);
    const img = ImageDir.open(again);
    const files = img.messages<FileEntry>('files');
    for (const f of files)
      if (f.usk && f.usk.name[0] !== 0) f.usk.name = Buffer.from(f.usk.name).subarray(0, -1);
    img.write('files', undefined, files);
    await restoreDetached(again);
    expect(askUnix(sockPath)).toBe('hi path');
  });
});
