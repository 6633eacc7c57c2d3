// A parasite: compel's scratch mapping inside a seized task, and the means to run syscalls there. Every
// step is safe against the death of the tracer at any moment (DESIGN in safe-code.ts).
//
// infect():
//   1. the text patch of safe-code.ts (`syscall`, an unmap step, the epilogue, the thread's register
//      block) is poked over zero padding at the end of an executable file mapping of the task
//      (code-address.ts), which the task never executes;
//   2. two syscalls run there, driven by syscall stops (no int3): mmap of the scratch area (RW, placed in
//      a free hole with at least a page of distance to any mapping, so it never merges with a neighbour)
//      and, after the code page was written with process_vm_writev, mprotect of that page to R-X;
//   3. the thread is parked on the code page's way out (see safe-code.ts). From then on every syscall runs
//      in the scratch code page, whose batch loop ends in a marker syscall and that way out through the
//      text patch (which stays until cure()).
// Scratch layout:  base            code page, R-X   batch loop at 0x00, marker, epilogue, register block
//                  base + 4 KiB    table, RW        (tableEntries + 1) x 64 bytes, page-rounded
//                  after the table data, RW         `scratch`: dataSize bytes for the caller
// cure() runs the munmap from the text patch (code cannot unmap itself and return), loads the thread's
// own registers and puts the padding back. The task stays seized and stopped.
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
  ptraceGetSigmask,
  ptraceSetRegs,
  type Siginfo,
  SYS,
  SysError,
  syscallName,
  vmRead,
  vmWrite,
} from '@criu-ts/sys';
import { CompelError } from '../errors.js';
import { writeMemory } from '../memory/index.js';
import type { SeizedTree } from '../tree/seize.js';
import type { TracedThread } from '../tree/task.js';
import { mapsOf, readStatus } from '../util/proc.js';
import { type BatchEntry, type BatchResult, BatchRunner } from './batch.js';
import { ENTRY_SIZE } from './batch-code.js';
import { findCodeAddress, findPadding } from './code-address.js';
import { remoteSyscallNoTrap, type SyscallArg, workRegs } from './remote-syscall.js';
import {
  MARKER_RIP,
  type Marker,
  markerSignal,
  registerBlock,
  safeCodePage,
  TEXT_BASE_SLOT,
  TEXT_ENTRY,
  TEXT_MMAP_ENTRY,
  TEXT_PATCH_SIZE,
  TEXT_SIGNATURE_SIZE,
  TEXT_UNMAP,
  textPatch,
} from './safe-code.js';
import { MarkerDriver, WordsPatch } from './safe-run.js';

export interface InfectOptions {
  /** Entries of the syscall table (a larger batch runs in chunks). Default 1024. */
  tableEntries?: number;
  /** Bytes of the RW data area (`scratch`). Default 1 MiB. */
  dataSize?: number;
  /** Thread to run in (default: the thread-group leader, or the first live thread). */
  tid?: number;
  /**
   * End every run with the getpid marker caught by syscall stops, even when the task ignores a signal
   * that could mark it (safe-code.ts). Slower; for tests of that path.
   */
  syscallMarker?: boolean;
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
  private readonly batch: BatchRunner;
  private isCured = false;
  /** The text patch, in place while the parasite lives (the way out of its code page goes through it). */
  private text: WordsPatch | undefined;

  private constructor(
    tree: SeizedTree,
    thread: TracedThread,
    codeAddress: bigint,
    base: bigint,
    tableEntries: number,
    dataSize: number,
    markerSignal: number | undefined,
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
    const driver = new MarkerDriver(thread, base + BigInt(MARKER_RIP), markerSignal);
    this.batch = new BatchRunner(driver, base, base + PAGE, tableEntries);
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
    const block = registerBlock(thread.finalRegs());
    const signature = textPatch(block, size).subarray(0, TEXT_SIGNATURE_SIZE);
    const padding = findPadding(pid, maps, TEXT_PATCH_SIZE, signature);
    // Without padding (none seen on x86_64 so far), the start of the text, as before: safe while the
    // tracer lives, but a tracer killed while the parasite lives leaves it patched.
    const codeAddress = padding?.addr ?? findCodeAddress(pid, maps);
    const text = new WordsPatch(thread.tid, codeAddress, textPatch(block, size), padding?.stale);
    // The marker's tgkill() names the task by the ids it has in its own pid namespace: where those are
    // not ours (a nested pid namespace), the syscall-stop marker instead.
    const status = opts.syscallMarker ? undefined : readStatus(pid);
    const ownIds = status !== undefined && status.nsTgid.length <= 1;
    const signal = ownIds
      ? markerSignal(status.sigIgn, status.sigCgt, ptraceGetSigmask(thread.tid))
      : undefined;
    const marker: Marker = signal === undefined ? { signal } : { signal, pid, tid: thread.tid };
    const entry = codeAddress + BigInt(TEXT_ENTRY);
    let base: bigint | undefined;
    try {
      text.apply();
      const at = chooseScratchAddress(maps, BigInt(size));
      const flags = MAP_PRIVATE | MAP_ANONYMOUS | (at === undefined ? 0 : MAP_FIXED_NOREPLACE);
      const prot = PROT_READ | PROT_WRITE;
      const mmapAt = codeAddress + BigInt(TEXT_MMAP_ENTRY);
      const r = remoteSyscallNoTrap(thread, mmapAt, SYS.mmap, [at ?? 0n, size, prot, flags, -1, 0]);
      const err = errnoOf(r);
      if (err !== undefined) throw new SysError('remote mmap', err, `pid ${pid}, ${size} bytes`);
      base = BigInt.asUintN(64, r);
      text.poke(TEXT_BASE_SLOT, base);
      if (at !== undefined && base !== at)
        throw new CompelError(`remote mmap at 0x${at.toString(16)} moved`, pid);
      const code = safeCodePage(base, codeAddress + BigInt(TEXT_UNMAP), marker, PAGE_SIZE);
      installCode(thread, entry, base, code);
      // Parked on the code page's way out until the next run: a tracer that dies before cure() leaves
      // a thread that unmaps the scratch area and goes back to its own registers.
      const out = workRegs(thread).set('rip', base + BigInt(MARKER_RIP));
      ptraceSetRegs(thread.tid, out);
      thread.dirty = true;
    } catch (e) {
      try {
        if (base !== undefined) {
          text.poke(TEXT_BASE_SLOT, 0n);
          remoteSyscallNoTrap(thread, entry, SYS.munmap, [base, size]);
        }
        ptraceSetRegs(thread.tid, thread.finalRegs());
        thread.dirty = false;
        text.restore();
      } catch {
        // the original error is the one to report; release() tries the registers again
      }
      throw e;
    }
    const p = new Parasite(tree, thread, codeAddress, base, tableEntries, dataSize, marker.signal);
    p.text = text;
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
    const r = this.batch.run([[nr, ...args]]);
    return r.results[0] ?? 0n;
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
    const text = this.text as WordsPatch;
    let err: number | undefined;
    try {
      text.poke(TEXT_BASE_SLOT, 0n);
      const entry = this.codeAddress + BigInt(TEXT_ENTRY);
      err = errnoOf(remoteSyscallNoTrap(this.thread, entry, SYS.munmap, [this.base, this.size]));
    } finally {
      ptraceSetRegs(this.thread.tid, this.thread.finalRegs());
      this.thread.dirty = false;
      text.restore();
    }
    if (err !== undefined)
      throw new SysError('remote munmap', err, `pid ${this.pid}, scratch 0x${this.base.toString(16)}`);
  }
}

// The code page: written while RW, then made R-X. Under memory-deny-write-execute (PR_SET_MDWE) a page
// that was not executable may not become executable: then a fresh R-X page replaces it (allowed, it was
// never writable) and the code is written through /proc/PID/mem, which can write read-only private pages.
function installCode(thread: TracedThread, codeAddress: bigint, base: bigint, code: Buffer): void {
  vmWrite(thread.pid, base, code);
  const rx = PROT_READ | PROT_EXEC;
  const r = remoteSyscallNoTrap(thread, codeAddress, SYS.mprotect, [base, PAGE_SIZE, rx]);
  if (errnoOf(r) === undefined) return;
  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
  const m = remoteSyscallNoTrap(thread, codeAddress, SYS.mmap, [base, PAGE_SIZE, rx, flags, -1, 0]);
  const err = errnoOf(m);
  if (err !== undefined) throw new SysError('remote mmap (code page)', err, `pid ${thread.pid}`);
  writeMemory(thread.pid, base, code);
}
