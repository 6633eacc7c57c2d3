// A parasite: compel's scratch mapping inside a seized task, and the means to run syscalls there.
//
// infect():
//   1. `syscall; int3` is poked over the first word of an executable mapping of the task (code-address.ts);
//   2. two syscalls run there: mmap of the scratch area (RW, placed in a free hole with at least a page of
//      distance to any mapping, so it never merges with a neighbour) and, after the code page was written
//      with process_vm_writev, mprotect of that page to R-X;
//   3. the task's word is put back. From then on every syscall runs in the scratch code page.
// Scratch layout:  base            code page, R-X   batch loop at 0x00, `syscall; int3` stub at 0x38
//                  base + 4 KiB    table, RW        (tableEntries + 1) x 64 bytes, page-rounded
//                  after the table data, RW         `scratch`: dataSize bytes for the caller
// cure() pokes the stub over the task's code again for the munmap (code cannot unmap itself and return),
// puts the word back and loads the thread's original registers. The task stays seized and stopped.
import type { MapsEntry } from '@criu-ts/bfd';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  ptraceSetRegs,
  SIGTRAP,
  type Siginfo,
  SYS,
  SysError,
  sigmaskBit,
  syscallName,
  vmRead,
  vmWrite,
} from '@criu-ts/sys';
import { CompelError } from '../errors.js';
import { readMemory, writeMemory } from '../memory/index.js';
import type { SeizedTree } from '../tree/seize.js';
import type { TracedThread } from '../tree/task.js';
import { mapsOf, readStatus } from '../util/proc.js';
import { type BatchEntry, type BatchResult, BatchRunner } from './batch.js';
import { codePage, ENTRY_SIZE, STUB_OFFSET } from './batch-code.js';
import { findCodeAddress } from './code-address.js';
import { remoteSyscall, remoteSyscallNoTrap, type SyscallArg, TextPatch } from './remote-syscall.js';

export interface InfectOptions {
  /** Entries of the syscall table (a larger batch runs in chunks). Default 1024. */
  tableEntries?: number;
  /** Bytes of the RW data area (`scratch`). Default 1 MiB. */
  dataSize?: number;
  /** Thread to run in (default: the thread-group leader, or the first live thread). */
  tid?: number;
}

const PAGE = BigInt(PAGE_SIZE);
const pageUp = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
/** Lowest address compel places its scratch at: above the first 4 GiB (32-bit pointers, low mappings). */
const PLACE_FROM = 0x1_0000_0000n;
/** End of the x86_64 user address space (47 bits) minus a page. */
const USER_TOP = 0x7fff_ffff_f000n;
/** Room left below a stack that grows down (the kernel keeps a guard gap there, 1 MiB by default). */
const STACK_GAP = 2n * 1024n * 1024n;

/** A free address for `size` bytes with at least one free page on either side, or undefined. */
export function chooseScratchAddress(maps: readonly MapsEntry[], size: bigint): bigint | undefined {
  const sorted = [...maps]
    .filter((m) => m.path !== '[vsyscall]')
    .sort((a, b) => (a.start < b.start ? -1 : 1));
  let lo = PLACE_FROM;
  const fits = (from: bigint, to: bigint) => to > from && to - from >= size + 2n * PAGE;
  for (const m of sorted) {
    const top = m.path === '[stack]' ? m.start - STACK_GAP : m.start;
    if (fits(lo, top)) return lo + PAGE;
    if (m.end > lo) lo = m.end;
  }
  return fits(lo, USER_TOP) ? lo + PAGE : undefined;
}

/** Result of a remote syscall as an errno, or undefined when it succeeded. */
function errnoOf(r: bigint): number | undefined {
  return r < 0n && r >= -4095n ? Number(-r) : undefined;
}

export class Parasite {
  readonly pid: number;
  /** The thread the syscalls run in. */
  readonly tid: number;
  /** Start of the scratch mapping (the code page) and its total size. */
  readonly base: bigint;
  readonly size: number;
  /** The task's own code address used to map and unmap the scratch area. */
  readonly codeAddress: bigint;
  /** The RW data area for the caller's buffers. */
  readonly scratch: { readonly addr: bigint; readonly size: number };
  /** Table entries of one batch chunk. */
  readonly tableEntries: number;
  private readonly tree: SeizedTree;
  private readonly thread: TracedThread;
  private readonly stub: bigint;
  private readonly batch: BatchRunner;
  private isCured = false;
  /** The task's SIGTRAP action when it ignored SIGTRAP (restored by cure()). */
  private trapAction: Buffer | undefined;

  private constructor(
    tree: SeizedTree,
    thread: TracedThread,
    codeAddress: bigint,
    base: bigint,
    tableEntries: number,
    dataSize: number,
  ) {
    this.tree = tree;
    this.thread = thread;
    this.pid = thread.pid;
    this.tid = thread.tid;
    this.codeAddress = codeAddress;
    this.base = base;
    this.tableEntries = tableEntries;
    const tableBytes = pageUp((tableEntries + 1) * ENTRY_SIZE);
    this.size = PAGE_SIZE + tableBytes + dataSize;
    this.scratch = { addr: base + PAGE + BigInt(tableBytes), size: dataSize };
    this.stub = base + BigInt(STUB_OFFSET);
    this.batch = new BatchRunner(thread, base, base + PAGE, tableEntries);
  }

  /** Map compel's scratch area into task `pid` of a seized tree (see the file comment). */
  static infect(tree: SeizedTree, pid: number, opts: InfectOptions = {}): Parasite {
    tree.assertSeized();
    const task = tree.traced(pid);
    if (task.state === 'zombie') throw new CompelError(`task ${pid} is a zombie: nothing to infect`, pid);
    const thread =
      opts.tid === undefined ? task.mainThread() : task.threads.find((t) => t.tid === opts.tid && !t.gone);
    if (thread === undefined) throw new CompelError(`thread ${opts.tid} of ${pid} is not seized`, pid);
    thread.prepare();
    const tableEntries = opts.tableEntries ?? 1024;
    const dataSize = pageUp(opts.dataSize ?? 1024 * 1024);
    if (!Number.isInteger(tableEntries) || tableEntries < 1)
      throw new RangeError('tableEntries must be >= 1');
    const size = PAGE_SIZE + pageUp((tableEntries + 1) * ENTRY_SIZE) + dataSize;

    const maps = mapsOf(pid);
    const codeAddress = findCodeAddress(pid, maps);
    const text = new TextPatch(thread.tid, codeAddress);
    // An ignored SIGTRAP would be reset to SIG_DFL by our first int3: make it SIG_DFL ourselves (without
    // an int3) and put the saved action back in cure().
    const trapIgnored = ((readStatus(pid)?.sigIgn ?? 0n) & TRAP_BIT) !== 0n;
    let trapAction: Buffer | undefined;
    let base: bigint | undefined;
    try {
      text.apply();
      if (trapIgnored) trapAction = swapTrapAction(thread, codeAddress, null);
      const at = chooseScratchAddress(maps, BigInt(size));
      const flags = MAP_PRIVATE | MAP_ANONYMOUS | (at === undefined ? 0 : MAP_FIXED_NOREPLACE);
      const prot = PROT_READ | PROT_WRITE;
      const r = remoteSyscall(thread, codeAddress, SYS.mmap, [at ?? 0n, size, prot, flags, -1, 0]);
      const err = errnoOf(r);
      if (err !== undefined) throw new SysError('remote mmap', err, `pid ${pid}, ${size} bytes`);
      base = BigInt.asUintN(64, r);
      if (at !== undefined && base !== at)
        throw new CompelError(`remote mmap at 0x${at.toString(16)} moved`, pid);
      installCode(thread, codeAddress, base);
      text.restore();
    } catch (e) {
      try {
        if (base !== undefined) remoteSyscall(thread, codeAddress, SYS.munmap, [base, size]);
        if (trapAction !== undefined) swapTrapAction(thread, codeAddress, trapAction);
        text.restore();
        ptraceSetRegs(thread.tid, thread.regs);
        thread.dirty = false;
      } catch {
        // the original error is the one to report; release() tries the registers again
      }
      throw e;
    }
    const p = new Parasite(tree, thread, codeAddress, base, tableEntries, dataSize);
    p.trapAction = trapAction;
    tree.attach(p);
    return p;
  }

  get cured(): boolean {
    return this.isCured;
  }

  /** Signals that arrived while this task ran injected code (delivered again at release). */
  get suppressedSignals(): readonly Siginfo[] {
    return this.thread.signals;
  }

  private live(): void {
    if (this.isCured) throw new CompelError(`parasite in ${this.pid} was already cured`, this.pid);
    this.tree.assertSeized();
  }

  /** Run one syscall in the task; returns rax (signed: -errno on failure). */
  syscall(nr: number, ...args: SyscallArg[]): bigint {
    this.live();
    return remoteSyscall(this.thread, this.stub, nr, args);
  }

  /** Run one syscall in the task; throws a SysError naming the syscall and the pid on failure. */
  call(nr: number, ...args: SyscallArg[]): bigint {
    const r = this.syscall(nr, ...args);
    const err = errnoOf(r);
    if (err !== undefined)
      throw new SysError(`remote ${syscallName(nr) ?? `syscall ${nr}`}`, err, `pid ${this.pid}`);
    return r;
  }

  /** Run a table of syscalls with one ptrace round trip per `tableEntries`; stops at the first failure. */
  runBatch(entries: readonly BatchEntry[]): BatchResult {
    this.live();
    return this.batch.run(entries);
  }

  /** Write `data` into the data area at `offset`; returns its address in the task. */
  writeScratch(offset: number, data: Buffer): bigint {
    this.live();
    this.checkRange(offset, data.length);
    const addr = this.scratch.addr + BigInt(offset);
    if (data.length > 0) vmWrite(this.pid, addr, data);
    return addr;
  }

  /** Read `len` bytes of the data area at `offset`. */
  readScratch(offset: number, len: number): Buffer {
    this.live();
    this.checkRange(offset, len);
    const b = Buffer.alloc(len);
    if (len > 0) vmRead(this.pid, this.scratch.addr + BigInt(offset), b);
    return b;
  }

  private checkRange(offset: number, len: number): void {
    if (
      !Number.isInteger(offset) ||
      !Number.isInteger(len) ||
      offset < 0 ||
      len < 0 ||
      offset + len > this.scratch.size
    ) {
      throw new RangeError(
        `scratch: ${len} bytes at offset ${offset} exceed the ${this.scratch.size}-byte area`,
      );
    }
  }

  /**
   * Unmap the scratch area, put the task's code word and the thread's registers back. The task stays
   * seized and stopped; suppressed signals are delivered at release.
   */
  cure(): void {
    if (this.isCured) return;
    this.isCured = true;
    this.tree.detachParasite(this);
    if (this.thread.gone) return;
    const text = new TextPatch(this.thread.tid, this.codeAddress);
    let err: number | undefined;
    try {
      text.apply();
      err = errnoOf(remoteSyscall(this.thread, this.codeAddress, SYS.munmap, [this.base, this.size]));
      if (this.trapAction !== undefined) swapTrapAction(this.thread, this.codeAddress, this.trapAction);
    } finally {
      text.restore();
      ptraceSetRegs(this.thread.tid, this.thread.regs);
      this.thread.dirty = false;
    }
    if (err !== undefined)
      throw new SysError('remote munmap', err, `pid ${this.pid}, scratch 0x${this.base.toString(16)}`);
  }
}

const TRAP_BIT = sigmaskBit(SIGTRAP);
const SIGACTION_SIZE = 32; // struct kernel_sigaction on x86_64: handler, flags, restorer, mask (u64 each)

/**
 * rt_sigaction(SIGTRAP, act, &old) run with syscall stops only (no int3, which would reset an ignored
 * SIGTRAP to SIG_DFL). `act` null means SIG_DFL. The two structs go below the thread's red zone, whose
 * bytes are put back afterwards. Returns the previous action (32 bytes).
 */
function swapTrapAction(thread: TracedThread, syscallAddr: bigint, act: Buffer | null): Buffer {
  const at = ((thread.regs.rsp - 128n) & ~15n) - 2n * BigInt(SIGACTION_SIZE);
  const saved = Buffer.alloc(2 * SIGACTION_SIZE);
  if (readMemory(thread.pid, at, saved) !== saved.length) {
    throw new CompelError(`thread ${thread.tid}: no stack below rsp to pass a sigaction`, thread.tid);
  }
  try {
    vmWrite(thread.pid, at, act ?? Buffer.alloc(SIGACTION_SIZE));
    const oldAddr = at + BigInt(SIGACTION_SIZE);
    const r = remoteSyscallNoTrap(thread, syscallAddr, SYS.rt_sigaction, [SIGTRAP, at, oldAddr, 8]);
    const err = errnoOf(r);
    if (err !== undefined) throw new SysError('remote rt_sigaction(SIGTRAP)', err, `pid ${thread.pid}`);
    const old = Buffer.alloc(SIGACTION_SIZE);
    vmRead(thread.pid, oldAddr, old);
    return old;
  } finally {
    vmWrite(thread.pid, at, saved);
  }
}

// The code page: written while RW, then made R-X. Under memory-deny-write-execute (PR_SET_MDWE) a page
// that was not executable may not become executable: then a fresh R-X page replaces it (allowed, it was
// never writable) and the code is written through /proc/PID/mem, which can write read-only private pages.
function installCode(thread: TracedThread, codeAddress: bigint, base: bigint): void {
  const code = codePage(PAGE_SIZE);
  vmWrite(thread.pid, base, code);
  const rx = PROT_READ | PROT_EXEC;
  const r = remoteSyscall(thread, codeAddress, SYS.mprotect, [base, PAGE_SIZE, rx]);
  if (errnoOf(r) === undefined) return;
  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
  const m = remoteSyscall(thread, codeAddress, SYS.mmap, [base, PAGE_SIZE, rx, flags, -1, 0]);
  const err = errnoOf(m);
  if (err !== undefined) throw new SysError('remote mmap (code page)', err, `pid ${thread.pid}`);
  writeMemory(thread.pid, base, code);
}
