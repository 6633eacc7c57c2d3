// The parasite's pieces one by one: batch semantics, chunking, scratch area, remote errors, memory access
// (including read-only pages) and fd copies.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMaps } from '@criu-ts/bfd';
import {
  close,
  kill,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  ptraceGetRegs,
  SIGUSR1,
  SYS,
  SysError,
  write,
} from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  copyFd,
  ENTRY_SIZE,
  Parasite,
  readMemory,
  readProcMem,
  readRuns,
  type SeizedTree,
  seizeTree,
  startTraceable,
  writeMemory,
} from '../src/index.js';
import {
  buildWorkloads,
  cleanup,
  failLines,
  onCleanup,
  procSyscall,
  readLines,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** Seize `pid` and infect it; the tree is released at cleanup. */
function infect(
  pid: number,
  opts?: Parameters<typeof Parasite.infect>[2],
): { tree: SeizedTree; p: Parasite } {
  const tree = seizeTree(pid);
  onCleanup(() => tree.release());
  return { tree, p: Parasite.infect(tree, pid, opts) };
}

const maps = (pid: number) => parseMaps(fs.readFileSync(`/proc/${pid}/maps`));

/** memhog's fill: xorshift64 from seed*0x9e3779b97f4a7c15 + 0x2545f4914f6cdd1d. */
function memhogWords(seed: bigint, n: number): BigUint64Array {
  const M = (1n << 64n) - 1n;
  let x = (seed * 0x9e3779b97f4a7c15n + 0x2545f4914f6cdd1dn) & M;
  const out = new BigUint64Array(n);
  for (let i = 0; i < n; i++) {
    x ^= (x << 13n) & M;
    x ^= x >> 7n;
    x ^= (x << 17n) & M;
    out[i] = x;
  }
  return out;
}

describe('batches', () => {
  it('stop at the first failure, with its index and errno; later entries do not run', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    const { p } = infect(w.pid);
    const e = Array.from({ length: 1000 }, () => [SYS.getpid] as [number, ...number[]]);
    e[500] = [SYS.close, -1];
    const r = p.runBatch(e);
    expect(r.ok).toBe(false);
    expect(r.failIndex).toBe(500);
    expect(r.errno).toBe(9); // EBADF
    expect(r.results).toHaveLength(501);
    expect(r.results[500]).toBe(-9n);
    expect(r.results.slice(0, 500).every((x) => x === BigInt(w.pid))).toBe(true);
    expect(p.runBatch([]).ok).toBe(true);
  });

  it('run in table-sized chunks; a failure in a later chunk has its global index', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    const { p } = infect(w.pid, { tableEntries: 64 });
    const all = p.runBatch(Array.from({ length: 1000 }, () => [SYS.getppid]));
    expect(all.ok).toBe(true);
    expect(all.results).toHaveLength(1000);
    expect(new Set(all.results).size).toBe(1);
    const e = Array.from({ length: 300 }, () => [SYS.getpid] as [number, ...number[]]);
    e[200] = [SYS.close, -1];
    const r = p.runBatch(e);
    expect([r.ok, r.failIndex, r.results.length]).toEqual([false, 200, 201]);
  });

  it('mmap and munmap 100 pages in one batch: the maps come back identical', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    const before = fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8');
    const { p } = infect(w.pid);
    const flags = MAP_PRIVATE | MAP_ANONYMOUS;
    const r = p.runBatch(
      Array.from({ length: 100 }, () => [SYS.mmap, 0, 4096, PROT_READ | PROT_WRITE, flags, -1, 0]),
    );
    expect(r.ok).toBe(true);
    const addrs = r.results.map((a) => BigInt.asUintN(64, a));
    const now = maps(w.pid);
    expect(addrs.every((a) => now.some((m) => m.start <= a && a < m.end))).toBe(true);
    const u = p.runBatch(addrs.map((a) => [SYS.munmap, a, 4096]));
    expect(u.ok && u.results.every((x) => x === 0n)).toBe(true);
    p.cure();
    expect(fs.readFileSync(`/proc/${w.pid}/maps`, 'utf8')).toBe(before);
  });

  it('syscalls with pointers into the scratch area (openat + pread64 + close)', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    const file = path.join(w.dir, 'data');
    const content = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7) & 0xff));
    fs.writeFileSync(file, content);
    const { p } = infect(w.pid, { dataSize: 256 * 1024 });
    const pathAddr = p.writeScratch(0, Buffer.from(`${file}\0`));
    const fd = p.call(SYS.openat, -100, pathAddr, 0, 0);
    const r = p.runBatch(
      Array.from({ length: 16 }, (_, i) => [
        SYS.pread64,
        fd,
        p.scratch.addr + 4096n + BigInt(i * 4096),
        4096,
        i * 4096,
      ]),
    );
    expect(r.ok && r.results.every((x) => x === 4096n)).toBe(true);
    expect(p.readScratch(4096, 64 * 1024).equals(content)).toBe(true);
    expect(p.call(SYS.close, fd)).toBe(0n);
    expect(() => p.writeScratch(p.scratch.size - 1, Buffer.alloc(2))).toThrow(RangeError);
  });

  it('call() throws a SysError naming the syscall and the pid; syscall() returns -errno', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    const { tree, p } = infect(w.pid);
    expect(p.syscall(SYS.close, 12345)).toBe(-9n);
    let err: unknown;
    try {
      p.call(SYS.close, 12345);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).code).toBe('EBADF');
    expect((err as Error).message).toContain('remote close');
    expect((err as Error).message).toContain(`pid ${w.pid}`);
    // The scratch sits apart from every other mapping (a free page on both sides: nothing merges).
    const m = maps(w.pid);
    const i = m.findIndex((x) => x.start === p.base);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(m[i]?.prot).toBe(5); // r-x code page
    if (i > 0) expect(m[i - 1]!.end < p.base).toBe(true);
    expect(m[i + 1]!.start).toBe(p.base + 4096n); // the table and data mapping
    expect(m[i + 1]!.end).toBe(p.base + BigInt(p.size));
    if (m[i + 2] !== undefined) expect(m[i + 2]!.start > p.base + BigInt(p.size)).toBe(true);
    p.cure();
    expect(ptraceGetRegs(w.pid).buffer.equals(tree.task(w.pid).threads[0]!.regs.buffer)).toBe(true);
  });
});

describe('memory', () => {
  it('readRuns gathers many runs of a 64 MiB area; it matches the content memhog wrote', async () => {
    const MIB = 64;
    const w = startWorkload('memhog', [String(MIB), '7']);
    await waitForLine(w.report, /^SUM /, { pid: w.pid });
    const area = maps(w.pid).find((m) => m.end - m.start === BigInt(MIB << 20) && m.path === '');
    expect(area).toBeDefined();
    const tree = seizeTree(w.pid);
    onCleanup(() => tree.release());
    const run = 64 * 1024;
    const runs = Array.from({ length: (MIB << 20) / run }, (_, i) => ({
      addr: area!.start + BigInt(i * run),
      len: run,
    }));
    const buf = Buffer.alloc(MIB << 20);
    expect(readRuns(w.pid, runs, buf)).toBe(buf.length);
    const want = memhogWords(7n, 4096);
    const got = new BigUint64Array(buf.buffer, buf.byteOffset, 4096);
    expect(got).toEqual(want);
    // every other 4 KiB page, into a packed buffer
    const sparse = Array.from({ length: 2048 }, (_, i) => ({
      addr: area!.start + BigInt(i * 8192),
      len: 4096,
    }));
    const packed = Buffer.alloc(2048 * 4096);
    expect(readRuns(w.pid, sparse, packed)).toBe(packed.length);
    expect(packed.subarray(4096, 8192).equals(buf.subarray(8192, 12288))).toBe(true);
    const one = Buffer.alloc(4096);
    expect(readProcMem(w.pid, area!.start + 8192n, one)).toBe(4096);
    expect(one.equals(buf.subarray(8192, 12288))).toBe(true);
  });

  it('writeMemory writes read-only pages through /proc/PID/mem', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^2$/, { pid: w.pid });
    const ro = maps(w.pid).find((m) => m.prot === PROT_READ && m.path.endsWith('/counter'));
    expect(ro).toBeDefined();
    const tree = seizeTree(w.pid);
    onCleanup(() => tree.release());
    const orig = Buffer.alloc(16);
    expect(readMemory(w.pid, ro!.start, orig)).toBe(16);
    const patched = Buffer.from('compel was here!');
    expect(writeMemory(w.pid, ro!.start, patched)).toBe(16);
    const back = Buffer.alloc(16);
    readMemory(w.pid, ro!.start, back);
    expect(back.equals(patched)).toBe(true);
    expect(writeMemory(w.pid, ro!.start, orig)).toBe(16);
    readMemory(w.pid, ro!.start, back);
    expect(back.equals(orig)).toBe(true);
  });
});

describe('seccomp', () => {
  it('PTRACE_O_SUSPEND_SECCOMP: syscalls denied by the task filter still work when injected', async () => {
    const dir = tempDir();
    const bin = path.join(dir, 'seccomp_deny');
    execFileSync('gcc', ['-O1', '-Wall', '-o', bin, path.join(here, 'fixtures', 'seccomp_deny.c')]);
    const report = path.join(dir, 'report');
    const pid = startTraceable([bin, report]);
    track(pid);
    await waitForLine(report, /^FILTERED /, { pid });
    expect(fs.readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Seccomp:\s+2$/m);
    const { tree, p } = infect(pid); // mmap + mprotect of the scratch area: both denied to the task itself
    expect(p.call(SYS.getpid)).toBe(BigInt(pid));
    expect(p.runBatch([[SYS.getpid], [SYS.getpid]]).results).toEqual([BigInt(pid), BigInt(pid)]);
    p.cure(); // munmap, denied too
    tree.release();
    kill(pid, SIGUSR1); // the filter is in force again once the task is no longer traced
    expect(await waitForLine(report, /^STILL_FILTERED$/, { pid })).toBe('STILL_FILTERED');
  });
});

describe('SIGTRAP state of the task', () => {
  for (const mode of ['ignore', 'block', 'both']) {
    it(`${mode}: ${mode === 'block' ? 'a blocked' : 'an ignored'} SIGTRAP stays so through injections`, async () => {
      const dir = tempDir();
      const bin = path.join(dir, 'trap_state');
      execFileSync('gcc', ['-O1', '-Wall', '-o', bin, path.join(here, 'fixtures', 'trap_state.c')]);
      const report = path.join(dir, 'report');
      const pid = startTraceable([bin, report, mode]);
      track(pid);
      const before = await waitForLine(report, /^TRAP /, { pid });
      expect(before).toContain(mode === 'block' ? 'handler=DFL' : 'handler=IGN flags=0x10000000');
      await waitFor(() => procSyscall(pid) === SYS.pause, 'pause()');
      for (let i = 0; i < 10; i++) {
        const tree = seizeTree(pid);
        try {
          const p = Parasite.infect(tree, pid);
          expect(p.call(SYS.getpid)).toBe(BigInt(pid));
          expect(p.runBatch([[SYS.getpid]]).ok).toBe(true);
          if (i % 2 === 0) p.cure(); // odd rounds: release() cures
        } finally {
          tree.release();
        }
      }
      kill(pid, SIGUSR1);
      await waitFor(() => readLines(report).length === 2, 'second TRAP line');
      expect(readLines(report)[1]).toBe(before);
    });
  }
});

describe('fds', () => {
  it('copyFd duplicates the FIFO fd of pipe_reader: data written to the copy is what it reads', async () => {
    const fifo = path.join(fs.mkdtempSync('/tmp/criu-ts-compel-fifo-'), 'fifo');
    onCleanup(() => fs.rmSync(path.dirname(fifo), { recursive: true, force: true }));
    execFileSync('mkfifo', [fifo]);
    const w = startWorkload('pipe_reader', [fifo]);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await waitFor(() => procSyscall(w.pid) === SYS.read, 'read()');
    const fifoFd = fs
      .readdirSync(`/proc/${w.pid}/fd`)
      .find((f) => fs.readlinkSync(`/proc/${w.pid}/fd/${f}`) === fifo);
    expect(fifoFd).toBeDefined();
    const fd = copyFd(w.pid, Number(fifoFd));
    try {
      expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toBe(fifo);
      const flags = Number.parseInt(
        /^flags:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!,
        8,
      );
      expect(flags & 3).toBe(2); // O_RDWR, as the task opened it
      expect(flags & 0o2000000).toBe(0o2000000); // O_CLOEXEC on the copy
      write(fd, Buffer.from('through a copy\n'));
    } finally {
      close(fd);
    }
    expect(await waitForLine(w.report, /^READ /)).toBe('READ through a copy');
    expect(failLines(w.report)).toEqual([]);
    expect(readLines(w.report)).toHaveLength(2);
  });

  it('table entries are 64 bytes', () => {
    expect(ENTRY_SIZE).toBe(64);
  });
});
