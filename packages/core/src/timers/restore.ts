import type { ItimerEntry } from '@criu-ts/images';

/**
 * The struct itimerval setitimer() gets for an itimer of the images, or undefined when the timer was
 * not armed. A periodic timer that had fired with its signal still pending (blocked, or the task stopped
 * before taking it) reads 0 from getitimer(): the kernel re-arms it only when the signal is taken. CRIU
 * stores it so and, at restore, arms it for one interval; so does criu-ts (its pending signal comes
 * back with the task's signal queue).
 */
export function itimerval(t: ItimerEntry | undefined): Buffer | undefined {
  if (!t) return undefined;
  const periodic = t.isec !== 0n || t.iusec !== 0n;
  const running = t.vsec !== 0n || t.vusec !== 0n;
  if (!periodic && !running) return undefined;
  const b = Buffer.alloc(32);
  b.writeBigInt64LE(t.isec, 0);
  b.writeBigInt64LE(t.iusec, 8);
  b.writeBigInt64LE(running ? t.vsec : t.isec, 16);
  b.writeBigInt64LE(running ? t.vusec : t.iusec, 24);
  return b;
}
