import type { TimerfdEntry } from '@criu-ts/images';
import {
  clockGettime,
  close,
  isSysError,
  O_CLOEXEC,
  O_NONBLOCK,
  TFD_TIMER_ABSTIME,
  type Timespec,
  timerfdCreate,
  timerfdSetTicks,
  timerfdSettime,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

const NS = 1_000_000_000n;
const isZero = (t: Timespec) => t.sec === 0n && t.nsec === 0n;

/**
 * What timerfd_settime gets for a dumped timer, `now` being the timer's clock at restore (only read for
 * an absolute timer). The image holds the time that was left (relative, as fdinfo shows it):
 *  - an absolute timer is armed at now + that time, so it keeps TFD_TIMER_ABSTIME (and CANCEL_ON_SET);
 *  - a periodic timer that had expired unread has 0 left (CRIU writes fdinfo's 0 as is): arming it with
 *    0 would disarm it, so it is armed for its next period (one interval, or at once if no tick was
 *    counted yet) and stays periodic; its unread ticks come back separately.
 */
export function timerSettings(
  t: TimerfdEntry,
  now: () => Timespec,
): { flags: number; value: Timespec; interval: Timespec } {
  const interval = { sec: t.isec, nsec: t.insec };
  let value = { sec: t.vsec, nsec: t.vnsec };
  if (isZero(value) && !isZero(interval)) value = t.ticks > 0n ? interval : { sec: 0n, nsec: 1n };
  if (t.settime_flags & TFD_TIMER_ABSTIME && !isZero(value)) {
    const n = now();
    const total = (n.sec + value.sec) * NS + n.nsec + value.nsec;
    value = { sec: total / NS, nsec: total % NS };
  }
  return { flags: t.settime_flags, value, interval };
}

/** timerfd: made in criu-ts on its clock, armed with the time that was left, its unread ticks set back. */
export const timerfdRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.TIMERFD,
  kind: 'timerfd',
  check(entry) {
    const t = entry.tfd;
    if (!t) throw new RestoreError(`files.img: timerfd entry ${entry.id} has no tfd`);
    if (t.vnsec >= NS || t.insec >= NS)
      throw new RestoreError(`files.img: timerfd ${entry.id}: vnsec/insec beyond one second`);
  },
  open(entry) {
    const t = entry.tfd!;
    const fail = (what: string, e: unknown) =>
      new RestoreError(
        `files.img: timerfd ${entry.id} (clockid ${t.clockid}): ${what}: ${(e as Error).message}`,
      );
    let fd: number;
    try {
      fd = timerfdCreate(t.clockid, (t.flags & O_NONBLOCK) | O_CLOEXEC);
    } catch (e) {
      throw fail('timerfd_create', e);
    }
    try {
      const s = timerSettings(t, () => clockGettime(t.clockid));
      if (!isZero(s.value) || s.flags !== 0) timerfdSettime(fd, s.flags, s.value, s.interval);
      if (t.ticks > 0n) timerfdSetTicks(fd, t.ticks);
    } catch (e) {
      close(fd);
      if (isSysError(e, 'ENOTTY'))
        throw fail('ticks cannot be set (a kernel without CONFIG_CHECKPOINT_RESTORE)', e);
      throw fail('timerfd_settime', e);
    }
    return fd;
  },
};
