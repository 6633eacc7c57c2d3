import type { FileEntry } from '@criu-ts/images';
import {
  F_DUPFD_CLOEXEC,
  fcntl,
  O_ACCMODE,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  O_WRONLY,
  open,
  pipe2,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import type { FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';
import { type PipeData, readPipeData, refillPipe, setStatusFlags } from './data.js';

/** A pipe made again: both ends (criu-ts's, closed when the restore ends), and which were handed out. */
interface RestoredPipe {
  read: number;
  write: number;
  given: Set<'read' | 'write'>;
}

/**
 * Pipes: each pipe_id is made once, with its size and bytes, before any task runs. The first
 * description of each end is that end itself; another description of the same end (a task that
 * reopened it through /proc) is a fresh open of /proc/self/fd/<end>. Ends no task held are closed
 * when the restore ends, so readers see EOF when they should.
 */
export const pipeRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.PIPE,
  kind: 'pipe',
  check(entry: FileEntry) {
    if (!entry.pipe) throw new RestoreError(`files.img: PIPE entry ${entry.id} has no pipe field`);
  },
  open(entry: FileEntry, ctx: FdRestoreContext) {
    const p = entry.pipe!;
    const pipe = ctx.shared(`pipe:${p.pipe_id}`, () => makePipe(p.pipe_id, ctx));
    const mode = p.flags & O_ACCMODE;
    const end = mode === O_WRONLY ? 'write' : 'read';
    let fd: number;
    try {
      if (mode !== O_RDWR && !pipe.given.has(end)) {
        pipe.given.add(end);
        fd = fcntl(pipe[end], F_DUPFD_CLOEXEC, 0);
      } else {
        fd = open(`/proc/self/fd/${pipe[end]}`, mode | O_CLOEXEC);
      }
      setStatusFlags(fd, p.flags);
    } catch (e) {
      throw new RestoreError(
        `files.img: pipe ${p.pipe_id} (entry ${entry.id}, flags 0x${p.flags.toString(16)}): ${(e as Error).message}`,
      );
    }
    return fd;
  },
};

function makePipe(pipeId: number, ctx: FdRestoreContext): RestoredPipe {
  const data = ctx.shared<Map<number, PipeData>>('pipes-data.img', () => readPipeData(ctx.dir, 'pipes-data'));
  // Non-blocking while criu-ts fills it; each description gets the task's flags afterwards.
  const [read, write] = pipe2(O_CLOEXEC | O_NONBLOCK);
  ctx.closeLater(read);
  ctx.closeLater(write);
  const bytes = data.get(pipeId);
  refillPipe(write, bytes, `pipes-data.img: pipe_id ${pipeId}`);
  ctx.log(`pipe ${pipeId}: ${bytes?.data.length ?? 0} bytes, size ${bytes?.size ?? 'default'}`);
  return { read, write, given: new Set() };
}
