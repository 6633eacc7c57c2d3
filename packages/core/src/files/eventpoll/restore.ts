import type { FdinfoEntry, FileEntry, ImageDir } from '@criu-ts/images';
import {
  close,
  EPOLL_CTL_ADD,
  epollCreate1,
  epollEvent,
  F_SETFL,
  fcntl,
  O_CLOEXEC,
  O_NONBLOCK,
  SYS,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import type { Call, FdRestoreDriver, InTaskContext } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

/** The fds of every live task of the images, in pstree order (read once per image directory). */
type TaskFds = Array<{ pid: number; fds: FdinfoEntry[] }>;
const taskFdsByDir = new WeakMap<ImageDir, TaskFds>();

function taskFds(dir: ImageDir): TaskFds {
  let all = taskFdsByDir.get(dir);
  if (!all) {
    all = [];
    for (const t of dir.pstree()) {
      // Zombies have neither ids nor fds.
      if (!dir.has('ids-%u', t.pid)) continue;
      const filesId = dir.ids(t.pid).files_id;
      if (dir.has('fdinfo-%u', filesId)) all.push({ pid: t.pid, fds: dir.fdinfo(filesId) });
    }
    taskFdsByDir.set(dir, all);
  }
  return all;
}

/** Which task adds which targets of one epoll, and the tasks that did. */
interface EpollPlan {
  byPid: Map<number, number[]>;
  done: Set<number>;
  /** No task holds the epoll (it is only in flight in a socket queue): the adding tasks borrow it. */
  lent: boolean;
}

// Keyed by the files.img entry object, which lives as long as one restore.
const plans = new WeakMap<FileEntry, EpollPlan>();

/**
 * The kernel keys an epoll target by its file and the fd number the task used, so a target can only be
 * added back by a task that has the target's file at that number (dump wrote, for each target, a number
 * under which the first task holding the epoll with such a number has that file). Each target goes to
 * the first such task in pstree order: once, even when the epoll is shared by several tasks. An epoll no
 * task holds (only in flight) is lent to the first task of the tree with the number.
 */
function planTargets(entry: FileEntry, dir: ImageDir): EpollPlan {
  const targets = entry.epfd!.tfd ?? [];
  const byPid = new Map<number, number[]>();
  const left = new Set(targets.map((_t, i) => i));
  const all = taskFds(dir);
  const holders = all.filter((task) => task.fds.some((f) => f.id === entry.id));
  const lent = holders.length === 0;
  for (const task of lent ? all : holders) {
    if (left.size === 0) break;
    const numbers = new Set(task.fds.map((f) => f.fd));
    for (const i of [...left]) {
      if (!numbers.has(targets[i]!.tfd)) continue;
      left.delete(i);
      const mine = byPid.get(task.pid);
      if (mine) mine.push(i);
      else byPid.set(task.pid, [i]);
    }
  }
  for (const i of left)
    throw new RestoreError(
      `files.img: epoll ${entry.id} watches fd ${targets[i]!.tfd} (epfd.tfd[${i}]), which no task ${lent ? 'of the tree' : 'holding it'} has in its fdinfo`,
    );
  return { byPid, done: new Set(), lent };
}

/**
 * epoll_ctl(EPOLL_CTL_ADD) of the targets task `pid` adds to the epoll it has at fd `efd`. Their
 * struct epoll_event go into the task in one piece (one write for an epoll of 1,000 connections).
 */
function addTargets(entry: FileEntry, plan: EpollPlan, efd: number, task: InTaskContext): Call[] {
  const targets = entry.epfd!.tfd ?? [];
  const mine = plan.byPid.get(task.pid) ?? [];
  if (mine.length === 0) return [];
  const events = Buffer.concat(mine.map((i) => epollEvent(targets[i]!.events, targets[i]!.data)));
  const size = BigInt(events.length / mine.length);
  const at = task.put(events);
  return mine.map((i, k) => [SYS.epoll_ctl, efd, EPOLL_CTL_ADD, targets[i]!.tfd, at + BigInt(k) * size]);
}

/**
 * epoll: the description is made in criu-ts; its targets are added by the tasks themselves once all
 * their fds are in place (epoll_ctl with the task's own fd numbers, which is what the epoll records).
 */
export const eventpollRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.EVENTPOLL,
  kind: 'epoll',
  check(entry, ctx) {
    if (!entry.epfd) throw new RestoreError(`files.img: eventpoll entry ${entry.id} has no epfd`);
    if (!plans.has(entry)) plans.set(entry, planTargets(entry, ctx.dir));
  },
  open(entry, ctx) {
    // An epoll only in flight in a socket queue is in no fdinfo: check() did not see it.
    if (!plans.has(entry)) plans.set(entry, planTargets(entry, ctx.dir));
    const fd = epollCreate1(O_CLOEXEC);
    if (entry.epfd!.flags & O_NONBLOCK) {
      try {
        fcntl(fd, F_SETFL, O_NONBLOCK);
      } catch (e) {
        close(fd);
        throw e;
      }
    }
    return fd;
  },
  inTask(entry, fd, task): Call[] {
    const plan = plans.get(entry);
    if (!plan) throw new RestoreError(`files.img: epoll ${entry.id} was not checked before restore`);
    // A task holding the epoll at several fds adds its targets once.
    if (plan.done.has(task.pid)) return [];
    plan.done.add(task.pid);
    return addTargets(entry, plan, fd.fd, task);
  },
  inAnyTask(entry, task): Call[] {
    const plan = plans.get(entry);
    if (!plan?.lent || !plan.byPid.has(task.pid) || plan.done.has(task.pid)) return [];
    plan.done.add(task.pid);
    const lent = task.lend(entry.id);
    return [lent.get, ...addTargets(entry, plan, lent.fd, task), lent.put];
  },
};
