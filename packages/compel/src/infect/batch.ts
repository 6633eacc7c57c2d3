// Syscall batches: a table of syscalls written into the task with one process_vm_writev, run by the loop
// of batch-code.ts with one resume / stop round trip, results read back with one process_vm_readv. A batch
// larger than the table runs in table-sized chunks; it stops at the first failed syscall.
//
// One runner for every kind of thread compel injects into; only how the loop is resumed and how its end
// is caught differ (BatchDriver):
//  - a seized task (Parasite): the loop ends in the marker syscall of safe-code.ts, not in an int3, so
//    that a tracer killed meanwhile harms nothing (MarkerDriver, safe-run.ts);
//  - a task traced from its first instruction (Tracee, tracee.ts: restore's): the loop of codePage()
//    ends in an int3 (TrapDriver there).
// Either way the loop stops with rbx at the entry it stopped at: the terminator (done) or the failing
// entry, whose result holds -errno.
import { type UserRegs, vmRead, vmWrite } from '@criu-ts/sys';
import { CompelError } from '../errors.js';
import { BATCH_ENTRY, ENTRY_SIZE, RESULT_OFFSET } from './batch-code.js';
import type { SyscallArg } from './remote-syscall.js';

/** One table entry: the syscall number and up to six arguments. */
export type BatchEntry = readonly [nr: number, ...args: SyscallArg[]];

export interface BatchResult {
  /** Every entry ran and none failed. */
  ok: boolean;
  /** rax of every entry that ran, in order (signed: -errno for the failed one). */
  results: bigint[];
  /** Index of the entry that failed. */
  failIndex?: number;
  /** Its errno. */
  errno?: number;
}

/** How a batch loop is started in one thread and how its end is caught. */
export interface BatchDriver {
  readonly tid: number;
  /** The registers a run starts from (the thread's own, orig_rax = -1); the runner sets rip and rbx. */
  startRegs(): UserRegs;
  /** Load `regs` and let the thread run. Returns at once. */
  launch(regs: UserRegs): void;
  /** Wait for the end of the loop: the registers there (a buffer reused by the next run). */
  land(): UserRegs;
}

/** A batch started with BatchRunner.start(), running until BatchRunner.finish(). */
export interface PendingBatch {
  readonly runner: BatchRunner;
  /** Entries in its table. */
  readonly n: number;
}

const TWO32 = 0x1_0000_0000;

/** Runs batches in one thread with the loop at `code` and a table of `capacity` entries at `table`. */
export class BatchRunner {
  private readonly buf: Buffer;
  private readonly view: DataView;
  private readonly words: BigInt64Array;
  private pending: PendingBatch | undefined;

  constructor(
    private readonly driver: BatchDriver,
    private readonly code: bigint,
    private readonly table: bigint,
    readonly capacity: number,
  ) {
    const ab = new ArrayBuffer((capacity + 1) * ENTRY_SIZE);
    this.buf = Buffer.from(ab);
    this.view = new DataView(ab);
    this.words = new BigInt64Array(ab);
  }

  /** Run every entry (in chunks of `capacity`), stopping at the first failure. */
  run(entries: readonly BatchEntry[]): BatchResult {
    const results: bigint[] = [];
    for (let from = 0; from < entries.length; from += this.capacity) {
      const n = Math.min(this.capacity, entries.length - from);
      const r = this.collect(this.start(entries, from, n), results);
      if (r !== undefined) return { ok: false, results, failIndex: from + r.index, errno: r.errno };
    }
    return { ok: true, results };
  }

  /**
   * Start a batch of at most `capacity` entries (`n` of them from `from`) and return at once, the thread
   * running it: the caller can work meanwhile. finish() waits for it.
   */
  start(entries: readonly BatchEntry[], from = 0, n = entries.length - from): PendingBatch {
    const tid = this.driver.tid;
    if (n > this.capacity)
      throw new CompelError(`batch of ${n} calls exceeds the table (${this.capacity})`, tid);
    if (this.pending !== undefined) throw new CompelError(`thread ${tid} runs a batch already`, tid);
    const v = this.view;
    for (let i = 0; i < n; i++) {
      const e = entries[from + i] as BatchEntry;
      const o = i * ENTRY_SIZE;
      for (let j = 0; j < 7; j++) this.put(o + j * 8, e[j] ?? 0);
      v.setUint32(o + RESULT_OFFSET, 0, true);
      v.setUint32(o + RESULT_OFFSET + 4, 0, true);
    }
    this.put(n * ENTRY_SIZE, -1); // terminator
    vmWrite(tid, this.table, this.buf, (n + 1) * ENTRY_SIZE);
    const w = this.driver.startRegs();
    w.set('rip', this.code + BigInt(BATCH_ENTRY));
    w.set('rbx', this.table);
    this.driver.launch(w);
    this.pending = { runner: this, n };
    return this.pending;
  }

  /** Wait for the batch start() began; its results. */
  finish(p: PendingBatch): BatchResult {
    const results: bigint[] = [];
    const r = this.collect(p, results);
    return r === undefined
      ? { ok: true, results }
      : { ok: false, results, failIndex: r.index, errno: r.errno };
  }

  // Waits for the pending batch and appends its results; undefined when it completed, else the failing
  // index within it and its errno.
  private collect(p: PendingBatch, results: bigint[]): { index: number; errno: number } | undefined {
    const tid = this.driver.tid;
    if (p !== this.pending) throw new CompelError(`thread ${tid} does not run this batch`, tid);
    this.pending = undefined;
    const n = p.n;
    const out = this.driver.land();
    const index = Number((out.rbx - this.table) / BigInt(ENTRY_SIZE));
    if (index < 0 || index > n)
      throw new CompelError(`batch in ${tid}: stopped at entry ${index} of ${n}`, tid);
    const ok = index === n;
    const ran = ok ? n : index + 1;
    if (ran > 0) vmRead(tid, this.table, this.buf, ran * ENTRY_SIZE);
    const words = this.words;
    for (let i = 0; i < ran; i++) results.push(words[i * 8 + 7] as bigint);
    if (ok) return undefined;
    return { index, errno: Number(-(words[index * 8 + 7] as bigint)) };
  }

  // Store a u64 (two's complement for negative numbers) without creating a BigInt for small numbers.
  private put(offset: number, value: SyscallArg): void {
    if (typeof value === 'number' && Number.isSafeInteger(value)) {
      const lo = value >>> 0;
      const hi = Math.floor(value / TWO32) | 0;
      this.view.setUint32(offset, lo, true);
      this.view.setInt32(offset + 4, hi, true);
    } else {
      this.view.setBigUint64(offset, BigInt.asUintN(64, BigInt(value)), true);
    }
  }
}
