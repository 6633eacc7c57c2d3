import type { EpollTfd } from '@criu-ts/bfd';
import type { EventpollTfdEntry } from '@criu-ts/images';
import { isSysError, KCMP_EPOLL_TFD, kcmp } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { isAnon } from '../fd-flags.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

/** One epoll description seen in the tree: its targets and, per task holding it, which it can re-add. */
interface EpollSeen {
  pid: number;
  fd: number;
  targets: EpollTfd[];
  /** present[i]: some task holding the epoll has target i open at fd number targets[i].tfd */
  present: boolean[];
}

const seenByTable = new WeakMap<FileTable, Map<string, EpollSeen>>();

/**
 * Which of the epoll's entries with this fd number a target is (the kernel keys targets by file and fd
 * number, so one number can appear more than once): 0 for the first fdinfo line with that number...
 */
function offsets(targets: EpollTfd[]): number[] {
  const count = new Map<number, number>();
  return targets.map((t) => {
    const n = count.get(t.tfd) ?? 0;
    count.set(t.tfd, n + 1);
    return n;
  });
}

/**
 * Is fd `t.tfd` of task `pid` the very file its epoll `efd` watches as that number? kcmp(KCMP_EPOLL_TFD)
 * compares the files themselves: eventfds, timerfds and the like share one anonymous inode, so the
 * ino/sdev of fdinfo cannot tell them apart. undefined: the task has no fd with that number.
 */
function holdsTarget(pid: number, efd: number, t: EpollTfd, toff: number): boolean | undefined {
  const slot = Buffer.alloc(12);
  slot.writeUInt32LE(efd, 0);
  slot.writeUInt32LE(t.tfd, 4);
  slot.writeUInt32LE(toff, 8);
  try {
    return kcmp(pid, pid, KCMP_EPOLL_TFD, t.tfd, slot) === 0;
  } catch (e) {
    if (isSysError(e, 'EBADF')) return undefined;
    throw new DumpError(
      `pid ${pid} epoll fd ${efd}: cannot check its target fd ${t.tfd}: ${(e as Error).message}`,
    );
  }
}

/**
 * Restore adds each target back with epoll_ctl, in a task holding the epoll that has the target's fd
 * number (the number is half of the target's key). So in every such task, that number must be the target
 * itself: a number closed and reused for another file would make restore watch the wrong file.
 */
function checkHolder(file: OpenFile, seen: EpollSeen): void {
  const toffs = offsets(seen.targets);
  seen.targets.forEach((t, i) => {
    const same = holdsTarget(file.pid, file.fd, t, toffs[i]!);
    if (same === false)
      throw new DumpError(
        `pid ${file.pid} epoll fd ${file.fd} watches a file as fd ${t.tfd}, but fd ${t.tfd} of the task is another file now: cannot restore`,
      );
    if (same) seen.present[i] = true;
  });
}

function tfdEntry(epollId: number, t: EpollTfd): EventpollTfdEntry {
  return { id: epollId, tfd: t.tfd, events: t.events, data: t.data, dev: t.sdev, inode: t.ino, pos: t.pos };
}

/**
 * epoll: the description with its targets inside files.img's epfd entry (one tfd per fdinfo `tfd:` line:
 * fd number, events, data). Every task holding it is checked against the targets; once all tasks are
 * dumped, each target must be open in at least one of them.
 */
export const eventpollDriver: FdDumpDriver = {
  kind: 'epoll',
  claims: (file: OpenFile) => isAnon(file.link, 'eventpoll'),
  dump(file: OpenFile, files: FileTable) {
    const key = files.descriptionKey(file);
    let table = seenByTable.get(files);
    if (!table) {
      table = new Map();
      seenByTable.set(files, table);
    }
    let seen = table.get(key);
    if (!seen) {
      const targets = file.info.epoll ?? [];
      seen = { pid: file.pid, fd: file.fd, targets, present: targets.map(() => false) };
      table.set(key, seen);
      const s = seen;
      files.later(() => checkAllTargetsHeld(s));
    }
    checkHolder(file, seen);
    const s = seen;
    const id = files.add(key, (id) => ({
      id,
      type: FD_TYPE.EVENTPOLL,
      epfd: { id, flags: file.flags, fown: files.owner(file), tfd: s.targets.map((t) => tfdEntry(id, t)) },
    }));
    return { id, type: FD_TYPE.EVENTPOLL };
  },
};

/** A target whose fd every holder closed lives on in the epoll (its file is open elsewhere): refused. */
function checkAllTargetsHeld(seen: EpollSeen): void {
  seen.targets.forEach((t, i) => {
    if (!seen.present[i])
      throw new DumpError(
        `pid ${seen.pid} epoll fd ${seen.fd} watches fd ${t.tfd}, which no task holding the epoll has open any more (closed after EPOLL_CTL_ADD): cannot restore`,
      );
  });
}
