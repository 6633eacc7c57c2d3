// Bounded waiting without timers: everything in this package runs synchronously on the thread that owns
// the ptrace attachments, so a wait is a poll with a growing pause (Atomics.wait), never an await.

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Block the calling thread for `ms` milliseconds (fractions allowed). */
export function sleepMs(ms: number): void {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * A deadline plus an exponential backoff: the first few polls are immediate (most events of interest
 * take tens of microseconds), then the pause doubles from 50 us up to `maxPauseMs`.
 */
export class Backoff {
  private readonly deadline: number;
  private tries = 0;
  private pause = 0.05;

  constructor(
    readonly timeoutMs: number,
    private readonly maxPauseMs = 5,
    private readonly spins = 8,
  ) {
    this.deadline = process.uptime() * 1000 + timeoutMs;
  }

  get expired(): boolean {
    return process.uptime() * 1000 >= this.deadline;
  }

  /** Pause before the next poll. Returns false (without pausing) once the deadline has passed. */
  wait(): boolean {
    if (this.expired) return false;
    if (this.tries++ < this.spins) return true;
    sleepMs(Math.min(this.pause, Math.max(0, this.deadline - process.uptime() * 1000)));
    this.pause = Math.min(this.pause * 2, this.maxPauseMs);
    return true;
  }

  /** Start the pauses over (something progressed). */
  reset(): void {
    this.tries = 0;
    this.pause = 0.05;
  }
}
