import { statSync } from 'node:fs';
import { type EpollTfd, ProcDir } from '@criu-ts/bfd';
import type { EventpollTfdEntry } from '@criu-ts/images';
import { isSysError, KCMP_EPOLL_TFD, kcmp } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

/** Where a target was found: the task holding the epoll that re-adds it, and the fd number it uses. */
interface Found {
  pid: number;
  tfd: number;
}

/** One epoll description seen in the tree: its targets and where each is open in the tasks holding it. */
interface EpollSeen {
  pid: number;
  fd: number;
  targets: EpollTfd[];
  /** Each target's offset among the targets with its fd number (kcmp's toff). */
  toffs: number[];
  /** found[i]: the first holder (in dump order, which is pstree order) that has target i open. */
  found: Array<Found | undefined>;
  /** Every task holding the epoll, in dump order, with its fd numbers. */
  holders: Array<{ pid: number; numbers: ReadonlySet<number> }>;
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

/** The kcmp_epoll_slot naming target `t` of epoll `efd`: { u32 efd, u32 tfd, u32 toff }. */
function slotOf(efd: number, t: EpollTfd, toff: number): Buffer {
  const slot = Buffer.alloc(12);
  slot.writeUInt32LE(efd, 0);
  slot.writeUInt32LE(t.tfd, 4);
  slot.writeUInt32LE(toff, 8);
  return slot;
}

/**
 * Is fd `fd` of task `pid` the very file the epoll `efd` of task `epid` watches as target `t`?
 * kcmp(KCMP_EPOLL_TFD) compares the files themselves: eventfds, timerfds and the like share one anonymous
 * inode, so the ino/sdev of fdinfo cannot tell them apart. undefined: the task has no fd `fd`.
 */
function isTarget(
  pid: number,
  epid: number,
  efd: number,
  t: EpollTfd,
  toff: number,
  fd: number,
): boolean | undefined {
  try {
    return kcmp(pid, epid, KCMP_EPOLL_TFD, fd, slotOf(efd, t, toff)) === 0;
  } catch (e) {
    if (isSysError(e, 'EBADF')) return undefined;
    throw new DumpError(
      `pid ${epid} epoll fd ${efd}: cannot check its target fd ${t.tfd}: ${(e as Error).message}`,
    );
  }
}

/** A task's fds by inode number (stat of /proc/PID/fd/N), to find a target that moved to another number. */
interface TaskFds {
  numbers: ReadonlySet<number>;
  byIno: Map<bigint, number[]>;
}

function taskFds(files: FileTable, pid: number): TaskFds {
  return files.cached(`epoll-task-fds:${pid}`, () => {
    const proc = ProcDir.open(pid);
    try {
      const numbers = proc.fds();
      const byIno = new Map<bigint, number[]>();
      for (const n of numbers) {
        let ino: bigint;
        try {
          ino = statSync(proc.pathOf(`fd/${n}`), { bigint: true }).ino;
        } catch {
          continue;
        }
        byIno.set(ino, [...(byIno.get(ino) ?? []), n]);
      }
      return { numbers: new Set(numbers), byIno };
    } finally {
      proc.close();
    }
  });
}

/**
 * The fd number under which task `pid` has target `t` of epoll `efd` (of task `epid`) open: its own number
 * when that fd is still the target, else another fd of the task on the same file (the target fd was
 * dup'ed and closed, or closed while a duplicate lives on). undefined: not open in this task.
 */
function findTarget(
  files: FileTable,
  pid: number,
  epid: number,
  efd: number,
  t: EpollTfd,
  toff: number,
): number | undefined {
  if (isTarget(pid, epid, efd, t, toff, t.tfd)) return t.tfd;
  for (const fd of taskFds(files, pid).byIno.get(t.ino) ?? []) {
    if (fd !== t.tfd && isTarget(pid, epid, efd, t, toff, fd)) return fd;
  }
  return undefined;
}

/**
 * Restore adds each target back with epoll_ctl in one task holding the epoll, with the number under which
 * that task has the target's file open. Like CRIU, a target whose own fd was closed or now names another
 * file is found again through kcmp among the task's other fds on the same inode, and written with that
 * number (the watch comes back on the same file). Targets still unfound are looked for in the next task
 * holding the epoll.
 */
function findTargets(pid: number, file: OpenFile, seen: EpollSeen, files: FileTable): void {
  seen.holders.push({ pid, numbers: taskFds(files, pid).numbers });
  seen.targets.forEach((t, i) => {
    if (seen.found[i]) return;
    const tfd = findTarget(files, pid, file.pid, file.fd, t, seen.toffs[i]!);
    if (tfd !== undefined) seen.found[i] = { pid, tfd };
  });
}

function tfdEntry(epollId: number, t: EpollTfd, tfd: number): EventpollTfdEntry {
  return { id: epollId, tfd, events: t.events, data: t.data, dev: t.sdev, inode: t.ino, pos: t.pos };
}

/**
 * epoll: the description with its targets inside files.img's epfd entry (one tfd per fdinfo `tfd:` line:
 * fd number, events, data). Every task holding it is searched for the targets; the entry's target numbers
 * are settled once all tasks are dumped (files.img is written after that).
 */
export const eventpollDriver: FdDumpDriver = {
  kind: 'epoll',
  dump(file: OpenFile, files: FileTable) {
    const key = files.descriptionKey(file);
    let table = seenByTable.get(files);
    if (!table) {
      table = new Map();
      seenByTable.set(files, table);
    }
    let seen = table.get(key);
    const fresh = !seen;
    if (!seen) {
      const targets = file.info.epoll ?? [];
      seen = {
        pid: file.pid,
        fd: file.fd,
        targets,
        toffs: offsets(targets),
        found: targets.map(() => undefined),
        holders: [],
      };
      table.set(key, seen);
    }
    const s = seen;
    if (file.pid === process.pid) {
      // In flight only (criu-ts received it from a socket queue): restore lends it to the first task of
      // the tree that has the targets open, which adds them.
      if (fresh) for (const pid of files.pids) findTargets(pid, file, s, files);
    } else if (!s.holders.some((h) => h.pid === file.pid)) {
      findTargets(file.pid, file, s, files);
    }
    const id = files.add(key, (id) => {
      const epfd = { id, flags: file.flags, fown: files.owner(file), tfd: [] as EventpollTfdEntry[] };
      return { id, type: FD_TYPE.EVENTPOLL, epfd };
    });
    if (fresh) {
      files.later(() => {
        const entry = files.entries.find((e) => e.id === id);
        entry!.epfd!.tfd = settleTargets(s).map((tfd, i) => tfdEntry(id, s.targets[i]!, tfd));
      });
    }
    return { id, type: FD_TYPE.EVENTPOLL };
  },
};

/**
 * The number each target is written with, once every task is dumped. Refused: a target no task holding
 * the epoll has open any more (only an fd elsewhere keeps its file alive); a number an earlier task
 * holding the epoll also has (restore would add the target there, on another file); two targets that
 * would be added under one number on one file (the kernel keeps them apart by the fd they were added
 * with, and restore has only one).
 */
function settleTargets(seen: EpollSeen): number[] {
  const what = `pid ${seen.pid} epoll fd ${seen.fd}`;
  const used = new Set<string>();
  return seen.targets.map((t, i) => {
    const found = seen.found[i];
    if (!found)
      throw new DumpError(
        `${what} watches fd ${t.tfd}, whose file no task holding the epoll has open any more (closed after EPOLL_CTL_ADD): cannot restore`,
      );
    for (const h of seen.holders) {
      if (h.pid === found.pid) break;
      if (h.numbers.has(found.tfd))
        throw new DumpError(
          `${what} watches a file task ${found.pid} has as fd ${found.tfd}, but fd ${found.tfd} of task ${h.pid}, which holds the epoll too, is another file: cannot restore`,
        );
    }
    const at = `${found.pid}:${found.tfd}`;
    if (used.has(at))
      throw new DumpError(
        `${what} watches the file of fd ${found.tfd} twice (added under two fd numbers, one since closed): cannot restore`,
      );
    used.add(at);
    return found.tfd;
  });
}
