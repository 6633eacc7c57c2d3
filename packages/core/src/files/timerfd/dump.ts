import { ProcDir, type TimerfdInfo } from '@criu-ts/bfd';
import { timerfdGettime } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

const SETTLE_TRIES = 5;

const isZero = (t: { sec: bigint; nsec: bigint }) => t.sec === 0n && t.nsec === 0n;

/**
 * A periodic timer that expired and was not read yet: the kernel has not moved it to its next period
 * (that happens on read), so fdinfo shows 0 time left and counts one tick for all the periods missed.
 */
export function expiredPeriodic(t: TimerfdInfo): boolean {
  return isZero(t.itValue) && !isZero(t.itInterval);
}

/**
 * The timer's state with an expired periodic timer brought up to date: timerfd_gettime (on our own
 * duplicate of the task's fd) moves it past now and adds the missed periods to its ticks, as a read
 * would, without taking the ticks; fdinfo then shows the true tick count and the time to the next
 * period. A very short period may expire again in between: a few tries, then what fdinfo says (restore
 * keeps such a timer periodic).
 */
function settled(file: OpenFile, files: FileTable, t: TimerfdInfo): TimerfdInfo {
  let now = t;
  for (let i = 0; i < SETTLE_TRIES && expiredPeriodic(now); i++) {
    const mine = files.steal(file.pid, file.fd);
    timerfdGettime(mine);
    const info = ProcDir.self().fdinfo(mine).timerfd;
    if (!info) throw new DumpError(`pid ${file.pid} fd ${file.fd}: timerfd without timer lines in fdinfo`);
    now = info;
  }
  return now;
}

/**
 * timerfd: clock, settime flags, the time left (fdinfo's it_value, relative even for an absolute
 * timer), the interval and the expirations not read yet (ticks; reading them would consume them).
 */
export const timerfdDriver: FdDumpDriver = {
  kind: 'timerfd',
  dump(file: OpenFile, files: FileTable) {
    const first = file.info.timerfd;
    if (!first) throw new DumpError(`pid ${file.pid} fd ${file.fd}: timerfd without timer lines in fdinfo`);
    const id = files.add(files.descriptionKey(file), (id) => {
      const t = settled(file, files, first);
      return {
        id,
        type: FD_TYPE.TIMERFD,
        tfd: {
          id,
          flags: file.flags,
          fown: files.owner(file),
          clockid: t.clockid,
          ticks: t.ticks,
          settime_flags: t.settimeFlags,
          vsec: t.itValue.sec,
          vnsec: t.itValue.nsec,
          isec: t.itInterval.sec,
          insec: t.itInterval.nsec,
        },
      };
    });
    return { id, type: FD_TYPE.TIMERFD };
  },
};
