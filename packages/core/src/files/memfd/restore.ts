// memfd fds on restore: each files.img MEMFD entry is a new description of its inode's memfd (made
// once, with its contents, by shmem/restore.ts), reopened with the fd's flags and moved to its position.
import type { FileEntry } from '@criu-ts/images';
import { lseek } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { ShmemRestore } from '../../shmem/restore.js';
import type { FdCheckContext, FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

export const memfdRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.MEMFD,
  kind: 'memfd',
  check(entry: FileEntry, ctx: FdCheckContext) {
    if (!entry.memfd) throw new RestoreError(`files.img: entry ${entry.id} of type MEMFD has no memfd`);
    ShmemRestore.for(ctx.dir).inode(entry.memfd.inode_id, `files.img entry ${entry.id}`);
  },
  open(entry: FileEntry, ctx: FdRestoreContext) {
    const m = entry.memfd!;
    const fd = ShmemRestore.for(ctx.dir).openMemfd(m.inode_id, m.flags);
    if (m.pos !== 0n) {
      try {
        lseek(fd, m.pos, 0);
      } catch (e) {
        throw new RestoreError(
          `files.img: memfd ${entry.id}: cannot seek to ${m.pos}: ${(e as Error).message}`,
        );
      }
    }
    return fd;
  },
};
