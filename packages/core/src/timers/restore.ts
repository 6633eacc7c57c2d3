// Timers on restore: the interval timers (setitimer) and POSIX timers (timer_create with their dumped
// ids, timer_settime), run in the task. timerfds are fds: files/timerfd/.
import type { ItimerEntry, PosixTimerEntry, TaskTimersEntry } from '@criu-ts/images';
import { PR_TIMER_CREATE_RESTORE_IDS, SIGEV_THREAD_ID, SYS } from '@criu-ts/sys';
import type { Calls } from '../restore/calls.js';
import { RestoreError } from '../restore/errors.js';
import type { Injector } from '../restore/inject.js';

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

/** The interval timers (real, virtual, profiling): one setitimer each that was armed. */
export function itimerCalls(inj: Injector, timers: TaskTimersEntry | undefined, c: Calls): void {
  if (!timers) return;
  const its = [timers.real, timers.virt, timers.prof];
  its.forEach((t, which) => {
    const b = itimerval(t);
    if (b) c.add(`setitimer(${which})`, [SYS.setitimer, which, inj.put(b), 0]);
  });
}

/**
 * POSIX timers get their dumped ids: with PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15+) timer_create takes
 * the id we ask for; on older kernels timers are created in id order, deleting the ones we don't need,
 * until the kernel's counter reaches each wanted id (what CRIU does).
 */
export function restorePosixTimers(inj: Injector, pid: number, timers: PosixTimerEntry[]): void {
  const sorted = [...timers].sort((a, b) => a.it_id - b.it_id);
  const byId = inj.syscall(SYS.prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) === 0n;
  for (const t of sorted) {
    inj.resetData();
    const ev = Buffer.alloc(64);
    ev.writeBigUInt64LE(BigInt.asUintN(64, t.sival_ptr), 0);
    ev.writeInt32LE(t.si_signo, 8);
    ev.writeInt32LE(t.it_sigev_notify, 12);
    if (t.it_sigev_notify === SIGEV_THREAD_ID) ev.writeInt32LE(t.notify_thread_id ?? pid, 16);
    const evAt = inj.put(ev);
    const idb = Buffer.alloc(8);
    idb.writeInt32LE(t.it_id, 0);
    const idAt = inj.put(idb);
    for (let tries = 0; ; tries++) {
      inj.call(`timer_create(id ${t.it_id})`, SYS.timer_create, t.clock_id, evAt, idAt);
      const got = inj.read(idAt, 4).readInt32LE(0);
      if (got === t.it_id) break;
      if (byId) throw new RestoreError(`pid ${pid}: timer_create gave id ${got}, not ${t.it_id}`);
      inj.call('timer_delete', SYS.timer_delete, got);
      if (got > t.it_id || tries > 65536)
        throw new RestoreError(`pid ${pid}: cannot get POSIX timer id ${t.it_id} (the kernel gave ${got})`);
    }
    if (t.vsec !== 0n || t.vnsec !== 0n) {
      const spec = Buffer.alloc(32);
      spec.writeBigInt64LE(t.isec, 0);
      spec.writeBigInt64LE(t.insec, 8);
      spec.writeBigInt64LE(t.vsec, 16);
      spec.writeBigInt64LE(t.vnsec, 24);
      inj.call(`timer_settime(${t.it_id})`, SYS.timer_settime, t.it_id, 0, inj.put(spec), 0);
    }
  }
  inj.resetData();
  if (byId)
    inj.call('prctl(PR_TIMER_CREATE_RESTORE_IDS, off)', SYS.prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
}
