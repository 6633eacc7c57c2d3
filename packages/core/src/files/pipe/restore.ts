// Pipes come back made by criu-ts, one per pipe_id, filled with their bytes in flight before any task
// runs; each files.img entry gets its end as a description of its own, with the task's flags.
import { procPath } from '@criu-ts/bfd';
import type { FileEntry } from '@criu-ts/images';
import { F_DUPFD_CLOEXEC, fcntl, O_ACCMODE, O_CLOEXEC, O_WRONLY, open } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import type { FdCheckContext, FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';
import { makePipe } from './data.js';

interface PipeEnds {
  ends: [read: number, write: number];
  handedOut: [boolean, boolean];
}

/** pipes-data.img / fifo-data.img by pipe_id: the size and the bytes in flight. */
export function pipeData(
  ctx: FdCheckContext & Pick<FdRestoreContext, 'shared'>,
  image: 'pipes-data' | 'fifo-data',
) {
  return ctx.shared(`image:${image}`, () => {
    const out = new Map<number, { size: number | undefined; data: Buffer }>();
    if (!ctx.dir.has(image)) return out;
    for (const e of ctx.dir.read(image)) {
      const m = e.message as { pipe_id: number; bytes: number; size?: number };
      if (out.has(m.pipe_id)) throw new RestoreError(`${image}.img: pipe ${m.pipe_id} twice`);
      out.set(m.pipe_id, { size: m.size, data: (e.extra as Buffer | undefined) ?? Buffer.alloc(0) });
    }
    return out;
  });
}

/**
 * criu-ts's fd for one description of one end: the first description of an end is a duplicate of the
 * end itself; a second one (the task had reopened the pipe through /proc) is a new open of it.
 */
const dupCloexec = (fd: number) => fcntl(fd, F_DUPFD_CLOEXEC, 0);

export function describeEnd(ends: PipeEnds, flags: number): number {
  const which = (flags & O_ACCMODE) === O_WRONLY ? 1 : 0;
  let fd: number;
  if (!ends.handedOut[which] && (flags & O_ACCMODE) !== 2) {
    fd = dupCloexec(ends.ends[which]);
    ends.handedOut[which] = true;
  } else {
    fd = open(procPath('self', 'fd', ends.ends[which]!), (flags & O_ACCMODE) | O_CLOEXEC);
  }
  return withFlags(fd, flags);
}

export const pipeRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.PIPE,
  kind: 'pipe',
  check(entry: FileEntry) {
    if (!entry.pipe) throw new RestoreError(`files.img: entry ${entry.id} is a pipe without its pipe field`);
  },
  open(entry, ctx) {
    const p = entry.pipe!;
    const ends = ctx.shared<PipeEnds>(`pipe:${p.pipe_id}`, () => {
      const d = pipeData(ctx, 'pipes-data').get(p.pipe_id);
      const made = makePipe(d?.size, d?.data);
      for (const fd of made) ctx.closeLater(fd);
      ctx.log(`pipe ${p.pipe_id}: ${d?.data.length ?? 0} bytes in flight`);
      return { ends: made, handedOut: [false, false] };
    });
    return describeEnd(ends, p.flags);
  },
};
