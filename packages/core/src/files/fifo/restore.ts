import { statSync } from 'node:fs';
import type { FileEntry, RegFileEntry } from '@criu-ts/images';
import { O_ACCMODE, O_CLOEXEC, O_NONBLOCK, O_RDWR, open } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { type PipeData, readPipeData, refillPipe, setStatusFlags } from '../pipe/data.js';
import type { FdCheckContext, FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;

/** The REG entry with the FIFO's path and flags. */
function fifoFile(entry: FileEntry, ctx: FdCheckContext): RegFileEntry {
  if (!entry.fifo) throw new RestoreError(`files.img: FIFO entry ${entry.id} has no fifo field`);
  const regfId = entry.fifo.regf_id;
  const reg = regfId === undefined ? undefined : ctx.files.get(regfId)?.reg;
  if (!reg) throw new RestoreError(`files.img: FIFO entry ${entry.id}: regf_id ${regfId} is not a REG entry`);
  return reg;
}

/**
 * FIFOs: opened again at their path. Opening one end alone blocks until the other end comes, so
 * criu-ts first opens each FIFO O_RDWR (a helper, kept until the restore ends, through which its
 * bytes go back in), then each description with its own access mode, non-blocking, and then the
 * task's own status flags.
 */
export const fifoRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.FIFO,
  kind: 'FIFO',
  check(entry: FileEntry, ctx: FdCheckContext) {
    const reg = fifoFile(entry, ctx);
    let mode: number;
    try {
      mode = statSync(reg.name).mode;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new RestoreError(`FIFO ${reg.name} (files.img entry ${entry.id}) is missing: ${code}`);
    }
    if ((mode & S_IFMT) !== S_IFIFO)
      throw new RestoreError(`${reg.name} (files.img entry ${entry.id}) is no longer a FIFO`);
  },
  open(entry: FileEntry, ctx: FdRestoreContext) {
    const reg = fifoFile(entry, ctx);
    const pipeId = entry.fifo!.pipe_id;
    ctx.shared(`fifo:${pipeId}`, () => openHelper(reg.name, pipeId, ctx));
    let fd: number;
    try {
      fd = open(reg.name, (reg.flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
      setStatusFlags(fd, reg.flags);
    } catch (e) {
      throw new RestoreError(
        `cannot open FIFO ${reg.name} (files.img entry ${entry.id}): ${(e as Error).message}`,
      );
    }
    return fd;
  },
};

/** criu-ts's O_RDWR fd of the FIFO (never blocks), filled with the dumped bytes. */
function openHelper(path: string, pipeId: number, ctx: FdRestoreContext): number {
  const data = ctx.shared<Map<number, PipeData>>('fifo-data.img', () => readPipeData(ctx.dir, 'fifo-data'));
  let fd: number;
  try {
    fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  } catch (e) {
    throw new RestoreError(`cannot open FIFO ${path}: ${(e as Error).message}`);
  }
  ctx.closeLater(fd);
  const bytes = data.get(pipeId);
  refillPipe(fd, bytes, `fifo-data.img: pipe_id ${pipeId} (${path})`);
  ctx.log(`FIFO ${path}: ${bytes?.data.length ?? 0} bytes, size ${bytes?.size ?? 'default'}`);
  return fd;
}
