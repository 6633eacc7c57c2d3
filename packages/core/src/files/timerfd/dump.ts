// timerfd: clock, settime flags, time left, interval and the expirations not read yet (fdinfo; reading
// the fd would consume them).
import { DumpError } from '../../dump/errors.js';
import { isAnon } from '../fd-flags.js';
import { FD_TYPE, type FdDumpDriver, noOwner } from '../table.js';

export const timerfdDriver: FdDumpDriver = {
  kind: 'timerfd',
  claims: (file) => isAnon(file.link, 'timerfd'),
  dump(file, files) {
    const t = file.info.timerfd;
    if (!t) throw new DumpError(`pid ${file.pid} fd ${file.fd}: timerfd without its timer in fdinfo`);
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.TIMERFD,
      tfd: {
        id,
        flags: file.flags,
        fown: noOwner(),
        clockid: t.clockid,
        ticks: t.ticks,
        settime_flags: t.settimeFlags,
        vsec: t.itValue.sec,
        vnsec: t.itValue.nsec,
        isec: t.itInterval.sec,
        insec: t.itInterval.nsec,
      },
    }));
    return { id, type: FD_TYPE.TIMERFD };
  },
};
