// epoll: the targets it watches (fdinfo's tfd lines: the task's fd number, events, data, and the
// target's inode). A target is re-added by its fd number at restore, so the number must still name
// the same file in the task; a target whose fd was closed (epoll keeps it while the file lives) or
// reused is refused.
import { statSync } from 'node:fs';
import type { EventpollTfdEntry } from '@criu-ts/images';
import { DumpError } from '../../dump/errors.js';
import { isAnon } from '../fd-flags.js';
import { FD_TYPE, type FdDumpDriver, noOwner, type OpenFile } from '../table.js';

function targets(file: OpenFile, id: number): EventpollTfdEntry[] {
  return (file.info.epoll ?? []).map((t) => {
    let ino: bigint | undefined;
    try {
      ino = statSync(`/proc/${file.pid}/fd/${t.tfd}`, { bigint: true }).ino;
    } catch {
      ino = undefined;
    }
    if (ino !== t.ino)
      throw new DumpError(
        `pid ${file.pid} fd ${file.fd}: epoll watches a file (inode ${t.ino}) by fd ${t.tfd}, which no longer names it`,
      );
    return { id, tfd: t.tfd, events: t.events, data: t.data, dev: t.sdev, inode: t.ino, pos: t.pos };
  });
}

export const eventpollDriver: FdDumpDriver = {
  kind: 'eventpoll',
  claims: (file) => isAnon(file.link, 'eventpoll'),
  dump(file, files) {
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.EVENTPOLL,
      epfd: { id, flags: file.flags, fown: noOwner(), tfd: targets(file, id) },
    }));
    return { id, type: FD_TYPE.EVENTPOLL };
  },
};
