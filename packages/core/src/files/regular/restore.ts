// Regular files (and directories, device nodes, O_PATH fds) on restore, as a task's fd: opened again by
// their name with the fd's flags (through the file's remap when its name was gone at the dump: see
// remap-restore.ts) and moved to their position. files/node-files.ts opens the same entries for other uses
// (mappings, the exe, cwd and root) and checks each is still the kind of file it was.
import {
  close,
  lseek,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOCTTY,
  O_PATH,
  O_TMPFILE,
  O_TRUNC,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

/** O_TMPFILE without its O_DIRECTORY bit: an unnamed temporary file, which comes back as a ghost. */
const O_TMPFILE_ONLY = O_TMPFILE & ~O_DIRECTORY;
/** Flags that only matter when a file is created, or that we set ourselves. */
const OPEN_ONLY = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC;

export const regularRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.REG,
  kind: 'regular file',
  open(entry, ctx) {
    const reg = entry.reg;
    if (!reg) throw new RestoreError(`file id ${entry.id} is not a regular file of files.img`);
    let flags = reg.flags & ~OPEN_ONLY;
    // An unnamed temporary file (O_TMPFILE) is opened by the name its ghost got.
    if (flags & O_TMPFILE_ONLY) flags &= ~O_TMPFILE;
    const fd = ctx.openPath(entry.id, flags);
    if (reg.pos !== 0n && (reg.flags & O_PATH) === 0) {
      try {
        lseek(fd, reg.pos, 0);
      } catch (e) {
        close(fd);
        throw new RestoreError(`cannot seek ${reg.name} to ${reg.pos}: ${(e as Error).message}`);
      }
    }
    return fd;
  },
};
