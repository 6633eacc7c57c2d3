// Running compel's code page in a seized thread so that the tracer's death at any moment leaves it
// unharmed (see safe-code.ts): resumed with PTRACE_CONT and caught in the marker signal's delivery stop,
// or resumed with PTRACE_SYSCALL, caught at the entry of the marker syscall and parked in a
// PTRACE_INTERRUPT stop. The batch loop itself is batch.ts's BatchRunner, driven by MarkerDriver.
import {
  PTRACE_EVENT_STOP,
  ptraceCont,
  ptraceGetRegs,
  ptraceInterrupt,
  ptracePeekData,
  ptracePokeData,
  ptraceSetRegs,
  ptraceSyscall,
  SIGTRAP,
  type UserRegs,
} from '@criu-ts/sys';
import { holdSignal } from '../tree/signals.js';
import type { TracedThread } from '../tree/task.js';
import type { BatchDriver } from './batch.js';
import { nextStopOf, outRegs, workRegs } from './remote-syscall.js';
import { MARKER_NR } from './safe-code.js';

const SYSCALL_STOP = SIGTRAP | 0x80;

/**
 * Runs of a parasite's code page in a seized thread: resumed at the loop, caught at the marker syscall at
 * `markerRip` (its signal's delivery stop, or the entry stop of getpid when `markerSignal` is undefined,
 * then parked after it). The registers returned at the marker are a buffer reused by the thread's next
 * run. Signals that arrive meanwhile are recorded on the thread and suppressed (delivered again at
 * release).
 */
export class MarkerDriver implements BatchDriver {
  readonly tid: number;
  private parking = false;

  constructor(
    private readonly th: TracedThread,
    private readonly markerRip: bigint,
    private readonly markerSignal: number | undefined,
  ) {
    this.tid = th.tid;
  }

  startRegs(): UserRegs {
    return workRegs(this.th);
  }

  launch(regs: UserRegs): void {
    const th = this.th;
    th.prepare();
    ptraceSetRegs(th.tid, regs);
    th.dirty = true;
    this.parking = this.markerSignal !== undefined;
    this.resume();
  }

  private resume(): void {
    if (this.parking) ptraceCont(this.tid, 0);
    else ptraceSyscall(this.tid, 0);
  }

  land(): UserRegs {
    const { th, markerRip, markerSignal } = this;
    const out = outRegs(th);
    for (;;) {
      const st = nextStopOf(th, 'while running injected code');
      if (st.event !== 0) {
        if (this.parking && markerSignal === undefined && st.event === PTRACE_EVENT_STOP) return out;
        this.resume();
        continue;
      }
      if (st.stopSignal === SYSCALL_STOP) {
        if (!this.parking) {
          ptraceGetRegs(th.tid, out);
          if (out.rip === markerRip && out.get('orig_rax') === BigInt(MARKER_NR)) {
            this.parking = true;
            ptraceInterrupt(th.tid);
            ptraceCont(th.tid, 0);
            continue;
          }
        }
        this.resume();
        continue;
      }
      if (st.stopSignal === markerSignal) {
        ptraceGetRegs(th.tid, out);
        if (out.rip === markerRip) return out;
      }
      holdSignal(th.signals, th.pid, th.tid);
      this.resume();
    }
  }
}

/**
 * Bytes written over the task's text with PTRACE_POKEDATA, word by word, and put back by restore(). Used
 * for the text patch of safe-code.ts, over padding that the task never executes.
 */
export class WordsPatch {
  private readonly originals: bigint[] = [];

  constructor(
    readonly tid: number,
    readonly addr: bigint,
    private readonly bytes: Buffer,
    /** What restore() writes back is zeros (the bytes hold a patch left behind), not what apply() found. */
    private readonly zeros = false,
  ) {
    if (addr % 8n !== 0n || bytes.length % 8 !== 0) throw new RangeError('WordsPatch: unaligned');
  }

  apply(): void {
    if (this.originals.length > 0) return;
    for (let i = 0; i < this.bytes.length; i += 8) {
      const at = this.addr + BigInt(i);
      this.originals.push(this.zeros ? 0n : ptracePeekData(this.tid, at));
      ptracePokeData(this.tid, at, this.bytes.readBigUInt64LE(i));
    }
  }

  /** Change the u64 at `offset` of the applied patch. */
  poke(offset: number, value: bigint): void {
    ptracePokeData(this.tid, this.addr + BigInt(offset), BigInt.asUintN(64, value));
  }

  restore(): void {
    this.originals.forEach((w, i) => {
      ptracePokeData(this.tid, this.addr + BigInt(i * 8), w);
    });
    this.originals.length = 0;
  }
}
