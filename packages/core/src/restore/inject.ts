// Restore's helpers for running code in the tasks it creates. The engine is compel's: Tracee (a thread
// traced from its first instruction: the stub, and every task and thread cloned from it), its batch
// runner and its stop waiting; the scratch area every restored task carries (mapped in the stub before
// the first clone3, so every fork inherits it at the same address) is a compel ScratchLayout holding
// codePage(), a syscall table and a data area. Injector adds what restore wants on top: a bump allocator
// for the data area, and errors that name the failing call.
//
// Everything here is synchronous and runs on the thread that owns the ptrace attachments.
import {
  type SyscallArg as Arg,
  type BatchEntry as Call,
  type ScratchLayout,
  STUB_OFFSET,
  type Tracee,
} from '@criu-ts/compel';
import { SysError, syscallName, vmRead, vmWrite } from '@criu-ts/sys';
import { RestoreError } from './errors.js';

// The names restore code imports, all defined in compel (Arg: a syscall argument, a number or a bigint;
// Call: one table entry, the syscall number and up to six arguments).
export {
  type BatchResult,
  type PendingBatch,
  type ScratchLayout,
  Tracee,
  waitForStop as waitStop,
} from '@criu-ts/compel';
export type { Arg, Call };

/**
 * Injection in one restored task: a tracee plus the scratch layout, with a bump allocator for the data
 * area (reset by `resetData`) and helpers that name the failing call.
 */
export class Injector {
  private dataUsed = 0;
  constructor(
    readonly t: Tracee,
    readonly s: ScratchLayout,
  ) {}

  get tid(): number {
    return this.t.tid;
  }

  /** Copy `bytes` into the data area (8-byte aligned); returns their address in the task. */
  put(bytes: Buffer): bigint {
    const at = (this.dataUsed + 7) & ~7;
    if (at + bytes.length > this.s.dataSize)
      throw new RestoreError(`scratch data area full (${at + bytes.length} > ${this.s.dataSize} bytes)`);
    this.dataUsed = at + bytes.length;
    const addr = this.s.data + BigInt(at);
    if (bytes.length > 0) vmWrite(this.t.tid, addr, bytes);
    return addr;
  }

  /** Reserve `len` zeroed bytes (out-parameters). */
  reserve(len: number): bigint {
    return this.put(Buffer.alloc(len));
  }

  read(addr: bigint, len: number): Buffer {
    const b = Buffer.alloc(len);
    vmRead(this.t.tid, addr, b);
    return b;
  }

  resetData(): void {
    this.dataUsed = 0;
  }

  /** One syscall; throws a SysError naming it on failure. */
  call(what: string, nr: number, ...args: Arg[]): bigint {
    const r = this.t.syscallAt(this.s.code + BigInt(STUB_OFFSET), nr, args);
    if (r < 0n && r >= -4095n) throw new SysError(`${what} in pid ${this.t.tid}`, Number(-r));
    return r;
  }

  /** One syscall; returns rax (signed, -errno on failure). */
  syscall(nr: number, ...args: Arg[]): bigint {
    return this.t.syscallAt(this.s.code + BigInt(STUB_OFFSET), nr, args);
  }

  /**
   * A batch that must succeed entirely; `what(i)` names entry i for the error. Returns the results.
   * The data area is reset afterwards.
   */
  batch(calls: readonly Call[], what: (i: number) => string): bigint[] {
    try {
      const r = this.t.runBatch(this.s, calls);
      if (!r.ok) {
        const i = r.failIndex ?? 0;
        const nr = calls[i]?.[0] ?? -1;
        throw new SysError(`${what(i)} (${syscallName(nr) ?? nr}) in pid ${this.t.tid}`, r.errno ?? 0);
      }
      return r.results;
    } finally {
      this.resetData();
    }
  }

  /** A batch whose failures are tolerated: every entry runs; returns each result (-errno on failure). */
  batchTolerant(calls: readonly Call[]): bigint[] {
    const out: bigint[] = [];
    try {
      let from = 0;
      while (from < calls.length) {
        const r = this.t.runBatch(this.s, calls.slice(from));
        out.push(...r.results);
        if (r.ok) break;
        from += r.results.length;
      }
      return out;
    } finally {
      this.resetData();
    }
  }
}
