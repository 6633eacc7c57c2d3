import { O_CLOEXEC, O_NONBLOCK, signalfd4 } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

/**
 * signalfd: made in criu-ts with the dumped mask. A signalfd reads the signals of the task that reads
 * it, not of the one that made it, so criu-ts can make it for the task.
 */
export const signalfdRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.SIGNALFD,
  kind: 'signalfd',
  check(entry) {
    if (!entry.sgfd) throw new RestoreError(`files.img: signalfd entry ${entry.id} has no sgfd`);
  },
  open(entry) {
    const s = entry.sgfd!;
    return signalfd4(-1, s.sigmask, (s.flags & O_NONBLOCK) | O_CLOEXEC);
  },
};
