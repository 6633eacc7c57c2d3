// FIFOs are opened by their path again. Opening one end blocks until the other exists, so criu-ts first
// holds the FIFO open read-write (a helper fd, kept until the restore ends), which also lets it put the
// bytes in flight back before any task runs.
import { fstatSync } from 'node:fs';
import type { FileEntry, RegFileEntry } from '@criu-ts/images';
import { close, O_ACCMODE, O_NONBLOCK, O_RDWR, S_IFIFO } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import { fillPipe, setSizeAtLeast } from '../pipe/data.js';
import { pipeData } from '../pipe/restore.js';
import type { FdCheckContext, FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

function pathOf(entry: FileEntry, ctx: FdCheckContext): RegFileEntry {
  const f = entry.fifo;
  if (!f) throw new RestoreError(`files.img: entry ${entry.id} is a FIFO without its fifo field`);
  const reg = f.regf_id === undefined ? undefined : ctx.files.get(f.regf_id)?.reg;
  if (!reg) throw new RestoreError(`files.img: FIFO ${entry.id} names file ${f.regf_id}, which is not there`);
  return reg;
}

/** The FIFO opened by its path (through its ghost when it was unlinked: see FdRestoreContext.openPath). */
function openFifo(ctx: FdRestoreContext, regId: number, path: string, flags: number): number {
  const fd = ctx.openPath(regId, flags);
  if ((fstatSync(fd).mode & 0o170000) !== S_IFIFO) {
    close(fd);
    throw new RestoreError(`${path} is not a FIFO any more`);
  }
  return fd;
}

export const fifoRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.FIFO,
  kind: 'fifo',
  check: (entry, ctx) => {
    pathOf(entry, ctx);
  },
  open(entry, ctx) {
    const reg = pathOf(entry, ctx);
    const pipeId = entry.fifo!.pipe_id;
    ctx.shared(`fifo:${pipeId}`, () => {
      const helper = openFifo(ctx, reg.id, reg.name, O_RDWR | O_NONBLOCK);
      ctx.closeLater(helper);
      const d = pipeData(ctx, 'fifo-data').get(pipeId);
      if (d?.size) setSizeAtLeast(helper, d.size, d.data.length);
      if (d?.data.length) fillPipe(helper, d.data);
      return helper;
    });
    // With the helper holding both sides, a non-blocking open of either end succeeds at once.
    return withFlags(openFifo(ctx, reg.id, reg.name, (reg.flags & O_ACCMODE) | O_NONBLOCK), reg.flags);
  },
};
