// epoll: the instance is made by criu-ts; its targets must be added by the task itself, since epoll
// keys a target by (file, fd number) and the number is the task's. Once all the task's fds are in place
// it runs epoll_ctl(ADD) for each target; an epoll shared by several tasks is filled once.
import { raw, SYS } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { orThrow, withFlags } from '../fd-flags.js';
import type { Call, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;

/** struct epoll_event, packed on x86-64: u32 events, u64 data. */
function epollEvent(events: number, data: bigint): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(events >>> 0, 0);
  b.writeBigUInt64LE(data, 4);
  return b;
}

export const eventpollRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.EVENTPOLL,
  kind: 'eventpoll',
  check(entry) {
    if (!entry.epfd)
      throw new RestoreError(`files.img: entry ${entry.id} is an epoll without its epfd field`);
  },
  open(entry) {
    const fd = orThrow('epoll_create1', Number(raw.syscall(SYS.epoll_create1, EPOLL_CLOEXEC)));
    return withFlags(fd, entry.epfd!.flags);
  },
  inTask(entry, fd, task) {
    if (!task.firstTime(`epoll:${entry.id}`)) return [];
    return (entry.epfd!.tfd ?? []).map(
      (t): Call => [SYS.epoll_ctl, fd.fd, EPOLL_CTL_ADD, t.tfd, task.put(epollEvent(t.events, t.data))],
    );
  },
};
