import { close, EFD_SEMAPHORE, eventfd2, O_CLOEXEC, O_NONBLOCK, writeAll } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';
import { EFD_SEMAPHORE_FLAG } from './dump.js';

/** The largest value an eventfd counter holds (write() blocks or fails beyond it). */
const MAX_COUNT = 0xffff_ffff_ffff_fffen;

/**
 * eventfd: made in criu-ts with the mode and O_NONBLOCK, then the counter is written into it (eventfd2
 * only takes a 32-bit initial value; a write adds a full u64 to a zero counter without blocking).
 */
export const eventfdRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.EVENTFD,
  kind: 'eventfd',
  check(entry) {
    const efd = entry.efd;
    if (!efd) throw new RestoreError(`files.img: eventfd entry ${entry.id} has no efd`);
    if (efd.counter > MAX_COUNT)
      throw new RestoreError(`files.img: eventfd ${entry.id} counter ${efd.counter} is beyond the maximum`);
  },
  open(entry) {
    const efd = entry.efd!;
    const mode = efd.flags & EFD_SEMAPHORE_FLAG ? EFD_SEMAPHORE : 0;
    const fd = eventfd2(0, mode | (efd.flags & O_NONBLOCK) | O_CLOEXEC);
    try {
      if (efd.counter > 0n) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(efd.counter, 0);
        writeAll(fd, b);
      }
    } catch (e) {
      close(fd);
      throw e;
    }
    return fd;
  },
};
