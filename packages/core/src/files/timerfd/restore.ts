// timerfd: made by criu-ts, armed with the time it had left and its interval, and given back the
// expirations nobody had read (TFD_IOC_SET_TICKS).
//
// fdinfo shows the time left relative to now even for a TFD_TIMER_ABSTIME timer, so the timer is
// re-armed relative: it fires as long after the restore as it had left at the dump. A periodic timer
// that had expired without being read shows 0 left; arming it with 0 would disarm it (CRIU 4.2 does
// that): it is armed with one interval instead, so it stays periodic.

import type { TimerfdEntry } from '@criu-ts/images';
import { close, raw, SYS } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { orThrow, withFlags } from '../fd-flags.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

const TFD_CLOEXEC = 0o2000000;
const TFD_IOC_SET_TICKS = 0x40085400;

/** struct itimerspec { it_interval, it_value } for a relative timerfd_settime. */
export function armingOf(t: TimerfdEntry): Buffer | undefined {
  let [vsec, vnsec] = [t.vsec, t.vnsec];
  const periodic = t.isec !== 0n || t.insec !== 0n;
  if (vsec === 0n && vnsec === 0n) {
    if (!periodic) return undefined; // disarmed (or a one-shot that fired: only its ticks remain)
    [vsec, vnsec] = [t.isec, t.insec];
  }
  const b = Buffer.alloc(32);
  b.writeBigInt64LE(t.isec, 0);
  b.writeBigInt64LE(t.insec, 8);
  b.writeBigInt64LE(vsec, 16);
  b.writeBigInt64LE(vnsec, 24);
  return b;
}

export const timerfdRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.TIMERFD,
  kind: 'timerfd',
  check(entry) {
    if (!entry.tfd) throw new RestoreError(`files.img: entry ${entry.id} is a timerfd without its tfd field`);
  },
  open(entry) {
    const t = entry.tfd!;
    const fd = withFlags(
      orThrow('timerfd_create', Number(raw.syscall(SYS.timerfd_create, t.clockid, TFD_CLOEXEC))),
      t.flags,
    );
    try {
      const arm = armingOf(t);
      if (arm) orThrow('timerfd_settime', Number(raw.syscall(SYS.timerfd_settime, fd, 0, arm, 0)));
      if (t.ticks > 0n) {
        const ticks = Buffer.alloc(8);
        ticks.writeBigUInt64LE(t.ticks);
        orThrow('TFD_IOC_SET_TICKS', Number(raw.syscall(SYS.ioctl, fd, TFD_IOC_SET_TICKS, ticks)));
      }
    } catch (e) {
      close(fd);
      throw new RestoreError(`timerfd ${entry.id}: ${(e as Error).message}`);
    }
    return fd;
  },
};
