// The death guard. Threads are let go one PTRACE_DETACH at a time: from the first detach to the last,
// part of the tree runs and the rest is still traced. If criu-ts died there (a SIGKILL), PTRACE_O_EXITKILL
// would kill only the traced part and leave half a tree running. The guard closes that window: the stub
// ELF started once more (early, so that its exec costs nothing at the end), then given the tree's pids,
// waiting on a pidfd of criu-ts. Once every thread is let go, criu-ts kills it; if criu-ts dies first, it
// kills every task of its table. Either the whole tree runs or none of it.

import { killAndReap } from '@criu-ts/compel';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  ptraceDetach,
  ptraceSetRegs,
  SYS,
  vmWrite,
} from '@criu-ts/sys';
import { RestoreError } from './errors.js';
import { STUB_BASE, STUB_SYSCALL, seizeStub, spawnStub, WATCH_OFFSET } from './stub.js';

export class DeathGuard {
  private constructor(
    /** The guard's process (criu-ts's child). */
    readonly pid: number,
  ) {}

  /**
   * A guard started and waiting, its table empty: a criu-ts that dies now leaves it nothing to do (the
   * tasks are all traced: PTRACE_O_EXITKILL kills them). None of `avoid` (pids the restore needs) is its.
   */
  static start(avoid: ReadonlySet<number> = new Set()): DeathGuard {
    return new DeathGuard(spawnStub(avoid));
  }

  /**
   * Give it `pids` (thread-group leaders, in the order they are let go: the running ones come first in its
   * table, so that a kill that fails on a task already reaped never matters). It runs untraced again once
   * this returns; a failure kills it.
   */
  arm(pids: readonly number[]): void {
    if (pids.length === 0) return; // nothing to guard (a tree of zombies): it waits, empty, to be disarmed
    try {
      const guard = seizeStub(this.pid);
      const table = Buffer.from(Uint32Array.from(pids).buffer);
      const prot = PROT_READ | PROT_WRITE;
      const at = guard.syscallAt(STUB_SYSCALL, SYS.mmap, [
        0,
        table.length,
        prot,
        MAP_PRIVATE | MAP_ANONYMOUS,
        -1,
        0,
      ]);
      if (at < 0n && at >= -4095n) throw new RestoreError(`the death guard: mmap of its table: errno ${-at}`);
      vmWrite(this.pid, at, table);
      // Back to the wait, with the table: rbx and ebp are what the stub's kill loop reads.
      const regs = guard.regs.clone();
      regs
        .set('rip', STUB_BASE + BigInt(WATCH_OFFSET))
        .set('rbx', at)
        .set('rbp', BigInt(pids.length));
      regs.set('orig_rax', -1n);
      ptraceSetRegs(this.pid, regs);
      ptraceDetach(this.pid, 0);
    } catch (e) {
      this.disarm();
      throw e;
    }
  }

  /** The tree runs whole (or the restore failed and cleans up): the guard goes, killed and reaped. */
  disarm(): void {
    if (this.gone) return; // never a kill by a pid that may have been reused since
    this.gone = true;
    killAndReap(this.pid);
  }

  private gone = false;
}
