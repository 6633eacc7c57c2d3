// The fd drivers: one per kind of fd, both directions (see FdDriver in driver.ts for adding one).
import type { FileEntry } from '@criu-ts/images';
import type { FdDriver } from './driver.js';
import { eventfdDriver } from './eventfd/dump.js';
import { eventfdRestoreDriver } from './eventfd/restore.js';
import { eventpollDriver } from './eventpoll/dump.js';
import { eventpollRestoreDriver } from './eventpoll/restore.js';
import { fanotifyDriver } from './fanotify/dump.js';
import { fanotifyRestoreDriver } from './fanotify/restore.js';
import { fifoDriver } from './fifo/dump.js';
import { fifoRestoreDriver } from './fifo/restore.js';
import { inetSocketDriver } from './inet/dump.js';
import { inetSocketRestoreDriver } from './inet/restore.js';
import { inotifyDriver } from './inotify/dump.js';
import { inotifyRestoreDriver } from './inotify/restore.js';
import type { FdKind } from './kinds.js';
import { memfdDumpDriver } from './memfd/dump.js';
import { memfdRestoreDriver } from './memfd/restore.js';
import { netlinkSocketDriver } from './netlink/dump.js';
import { netlinkSocketRestoreDriver } from './netlink/restore.js';
import { nsFileDriver } from './nsfile/dump.js';
import { nsFileRestoreDriver } from './nsfile/restore.js';
import { packetSocketDriver } from './packet/dump.js';
import { packetSocketRestoreDriver } from './packet/restore.js';
import { pidfdDriver } from './pidfd/dump.js';
import { pidfdRestoreDriver } from './pidfd/restore.js';
import { pipeDriver } from './pipe/dump.js';
import { pipeRestoreDriver } from './pipe/restore.js';
import { regularFileDriver } from './regular/dump.js';
import { regularRestoreDriver } from './regular/restore.js';
import type { FdRestoreDriver } from './restore-driver.js';
import { signalfdDriver } from './signalfd/dump.js';
import { signalfdRestoreDriver } from './signalfd/restore.js';
import { timerfdDriver } from './timerfd/dump.js';
import { timerfdRestoreDriver } from './timerfd/restore.js';
import { ttyDumpDriver } from './tty/dump.js';
import { consoleRestoreDriver } from './tty/restore.js';
import { unixSocketDriver } from './unix/dump.js';
import { unixSocketRestoreDriver } from './unix/restore.js';

/** One driver per kind of fd. A new kind is one folder under files/ and one line here. */
export const FD_DRIVERS: { readonly [K in FdKind]: FdDriver } = {
  regular: { dump: regularFileDriver, restore: regularRestoreDriver },
  // Terminals other than the shell's (files/node-files.ts hands out criu-ts's own for that one): the console.
  tty: { dump: ttyDumpDriver, restore: consoleRestoreDriver },
  memfd: { dump: memfdDumpDriver, restore: memfdRestoreDriver },
  pipe: { dump: pipeDriver, restore: pipeRestoreDriver },
  fifo: { dump: fifoDriver, restore: fifoRestoreDriver },
  eventfd: { dump: eventfdDriver, restore: eventfdRestoreDriver },
  eventpoll: { dump: eventpollDriver, restore: eventpollRestoreDriver },
  signalfd: { dump: signalfdDriver, restore: signalfdRestoreDriver },
  timerfd: { dump: timerfdDriver, restore: timerfdRestoreDriver },
  unix: { dump: unixSocketDriver, restore: unixSocketRestoreDriver },
  inotify: { dump: inotifyDriver, restore: inotifyRestoreDriver },
  fanotify: { dump: fanotifyDriver, restore: fanotifyRestoreDriver },
  inet: { dump: inetSocketDriver, restore: inetSocketRestoreDriver },
  netlink: { dump: netlinkSocketDriver, restore: netlinkSocketRestoreDriver },
  packet: { dump: packetSocketDriver, restore: packetSocketRestoreDriver },
  pidfd: { dump: pidfdDriver, restore: pidfdRestoreDriver },
  nsfile: { dump: nsFileDriver, restore: nsFileRestoreDriver },
};

/** The kind of each files.img fd type: every kind writes a type of its own (checked below). */
const KIND_OF_TYPE = new Map<number, FdKind>();
for (const [kind, d] of Object.entries(FD_DRIVERS) as Array<[FdKind, FdDriver]>) {
  const other = KIND_OF_TYPE.get(d.restore.type);
  if (other) throw new Error(`fd kinds ${other} and ${kind} both restore fd type ${d.restore.type}`);
  KIND_OF_TYPE.set(d.restore.type, kind);
}

/** The kind of a files.img entry, from its fd type; undefined for a type criu-ts does not restore. */
export function fdKindOfEntry(entry: Pick<FileEntry, 'type'>): FdKind | undefined {
  return KIND_OF_TYPE.get(entry.type);
}

/** The restore driver of files.img fd type `type`, if criu-ts restores that type. */
export function restoreDriverFor(type: number): FdRestoreDriver | undefined {
  const kind = KIND_OF_TYPE.get(type);
  return kind === undefined ? undefined : FD_DRIVERS[kind].restore;
}
