import { isSysError, O_EXCL, O_NONBLOCK, pidfdOpen } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import type { FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';
import { DEAD_PID } from './dump.js';

/** PIDFD_THREAD: a pidfd of one thread, not of its whole process (Linux 6.9+). */
const PIDFD_THREAD = O_EXCL;
/** The open flags pidfd_open takes (PIDFD_NONBLOCK is O_NONBLOCK); O_RDWR and O_CLOEXEC it sets itself. */
const PIDFD_OPEN_FLAGS = O_NONBLOCK | PIDFD_THREAD;

/**
 * pidfd: pidfd_open of the process it named, with its flags. That process must exist when it is opened:
 *  - a task of the tree is opened once the tree exists ('tree');
 *  - a process that had died is opened on a helper that then dies and is reaped ('dying'), so the new
 *    pidfd reports a dead process too (readable, fdinfo Pid -1);
 *  - a process outside the tree is opened at once, by its pid, if it still lives.
 */
export const pidfdRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.PIDFD,
  kind: 'pidfd',
  check(entry) {
    const p = entry.pidfd;
    if (!p) throw new RestoreError(`files.img: pidfd entry ${entry.id} has no pidfd`);
    if (p.nspid <= 0 && p.nspid !== DEAD_PID)
      throw new RestoreError(`files.img: pidfd ${entry.id} names pid ${p.nspid}`);
  },
  openLate(entry, treeIds) {
    const pid = entry.pidfd!.nspid;
    if (pid === DEAD_PID) return 'dying';
    return treeIds.has(pid) ? 'tree' : undefined;
  },
  open(entry, ctx) {
    const p = entry.pidfd!;
    const flags = p.flags & PIDFD_OPEN_FLAGS;
    if (p.nspid === DEAD_PID) return deadPidfds(ctx, p.ino).get(entry.id)!;
    try {
      return pidfdOpen(p.nspid, flags);
    } catch (e) {
      if (isSysError(e, 'ESRCH'))
        throw new RestoreError(`files.img: pidfd ${entry.id} names pid ${p.nspid}, which no longer exists`);
      throw new RestoreError(`files.img: pidfd ${entry.id} of pid ${p.nspid}: ${(e as Error).message}`);
    }
  },
};

/**
 * Every pidfd of one dead process (one pidfs inode), opened on one helper while it lives: after the
 * restore they name one process again, as they did.
 */
function deadPidfds(ctx: FdRestoreContext, ino: number): Map<number, number> {
  return ctx.shared(`dead-pidfd:${ino}`, () =>
    ctx.whileHelperLives((helper) => {
      const fds = new Map<number, number>();
      for (const f of ctx.files.values())
        if (f.pidfd?.nspid === DEAD_PID && f.pidfd.ino === ino)
          fds.set(f.id, pidfdOpen(helper, f.pidfd.flags & PIDFD_OPEN_FLAGS));
      return fds;
    }),
  );
}
