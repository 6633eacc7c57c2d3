// Syscall batches: a table of syscalls written into the task with one process_vm_writev, run by the loop
// of batch-code.ts with one PTRACE_CONT / int3 round trip, results read back with one process_vm_readv.
// A batch larger than the table runs in table-sized chunks; it stops at the first failed syscall. The loop
// ends in the marker syscall of safe-code.ts, not in an int3: a tracer killed meanwhile harms nothing.
import { vmRead, vmWrite } from '@criu-ts/sys';
import { CompelError } from '../errors.js';
import type { TracedThread } from '../tree/task.js';
import { BATCH_ENTRY, ENTRY_SIZE, RESULT_OFFSET } from './batch-code.js';
import { type SyscallArg, workRegs } from './remote-syscall.js';
import { MARKER_RIP } from './safe-code.js';
import { runToMarker } from './safe-run.js';

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

const TWO32 = 0x1_0000_0000;

/** Runs batches in one thread with the loop at `code` and a table of `capacity` entries at `table`. */
export class BatchRunner {
  private readonly buf: Buffer;
  private readonly view: DataView;
  private readonly words: BigInt64Array;
  private readonly markerRip: bigint;

  constructor(
    private readonly thread: TracedThread,
    private readonly code: bigint,
    private readonly table: bigint,
    readonly capacity: number,
    private readonly markerSignal: number | undefined,
  ) {
    const ab = new ArrayBuffer((capacity + 1) * ENTRY_SIZE);
    this.buf = Buffer.from(ab);
    this.view = new DataView(ab);
    this.words = new BigInt64Array(ab);
    this.markerRip = code + BigInt(MARKER_RIP);
  }

  /** Run every entry (in chunks of `capacity`), stopping at the first failure. */
  run(entries: readonly BatchEntry[]): BatchResult {
    const results: bigint[] = [];
    for (let from = 0; from < entries.length; from += this.capacity) {
      const n = Math.min(this.capacity, entries.length - from);
      const r = this.runChunk(entries, from, n, results);
      if (r !== undefined) return { ok: false, results, failIndex: from + r.index, errno: r.errno };
    }
    return { ok: true, results };
  }

  // Returns undefined when the chunk completed, else the failing index within it and its errno.
  private runChunk(
    entries: readonly BatchEntry[],
    from: number,
    n: number,
    results: bigint[],
  ): { index: number; errno: number } | undefined {
    const v = this.view;
    for (let i = 0; i < n; i++) {
      const e = entries[from + i] as BatchEntry;
      const o = i * ENTRY_SIZE;
      for (let j = 0; j < 7; j++) this.put(o + j * 8, e[j] ?? 0);
      v.setUint32(o + RESULT_OFFSET, 0, true);
      v.setUint32(o + RESULT_OFFSET + 4, 0, true);
    }
    this.put(n * ENTRY_SIZE, -1); // terminator
    const bytes = (n + 1) * ENTRY_SIZE;
    vmWrite(this.thread.tid, this.table, this.buf, bytes);

    const w = workRegs(this.thread);
    w.set('rip', this.code + BigInt(BATCH_ENTRY));
    w.set('rbx', this.table);
    const out = runToMarker(this.thread, w, this.markerRip, this.markerSignal);
    const index = Number((out.rbx - this.table) / BigInt(ENTRY_SIZE));
    const ok = index === n;
    const ran = ok ? n : index + 1;
    if (index < 0 || index > n) {
      throw new CompelError(
        `batch in ${this.thread.tid}: stopped at entry ${index} of ${n}`,
        this.thread.tid,
      );
    }
    if (ran > 0) vmRead(this.thread.tid, this.table, this.buf, ran * ENTRY_SIZE);
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
