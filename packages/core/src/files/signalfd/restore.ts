// signalfd: made by criu-ts. A signalfd reads the signals of whichever task reads it, not of its
// creator, so the one criu-ts makes serves the restored task as well.
import { raw, SYS } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { orThrow, withFlags } from '../fd-flags.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

const SFD_CLOEXEC = 0o2000000;

export const signalfdRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.SIGNALFD,
  kind: 'signalfd',
  check(entry) {
    if (!entry.sgfd)
      throw new RestoreError(`files.img: entry ${entry.id} is a signalfd without its sgfd field`);
  },
  open(entry) {
    const s = entry.sgfd!;
    const mask = Buffer.alloc(8);
    mask.writeBigUInt64LE(s.sigmask);
    const fd = orThrow('signalfd4', Number(raw.syscall(SYS.signalfd4, -1, mask, 8, SFD_CLOEXEC)));
    return withFlags(fd, s.flags);
  },
};
