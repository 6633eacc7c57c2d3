// eventfd: made by criu-ts with its counter. eventfd2() takes only 32 bits of initial value, so the
// counter is written into it instead (a write adds to the counter).
import { close, raw, SYS, write } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { orThrow, withFlags } from '../fd-flags.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

const EFD_CLOEXEC = 0o2000000;

export const eventfdRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.EVENTFD,
  kind: 'eventfd',
  check(entry) {
    if (!entry.efd)
      throw new RestoreError(`files.img: entry ${entry.id} is an eventfd without its efd field`);
  },
  open(entry) {
    const e = entry.efd!;
    const fd = orThrow('eventfd2', Number(raw.syscall(SYS.eventfd2, 0, EFD_CLOEXEC)));
    try {
      if (e.counter > 0n) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(e.counter);
        write(fd, b);
      }
    } catch (err) {
      close(fd);
      throw new RestoreError(
        `eventfd ${entry.id}: cannot set its counter ${e.counter}: ${(err as Error).message}`,
      );
    }
    return withFlags(fd, e.flags);
  },
};
