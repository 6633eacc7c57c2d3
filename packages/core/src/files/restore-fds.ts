import { eventfdRestoreDriver } from './eventfd/restore.js';
import { eventpollRestoreDriver } from './eventpoll/restore.js';
import { fanotifyRestoreDriver } from './fanotify/restore.js';
import { fifoRestoreDriver } from './fifo/restore.js';
import { inetSocketRestoreDriver } from './inet/restore.js';
import { inotifyRestoreDriver } from './inotify/restore.js';
import { memfdRestoreDriver } from './memfd/restore.js';
import { netlinkSocketRestoreDriver } from './netlink/restore.js';
import { nsFileRestoreDriver } from './nsfile/restore.js';
import { packetSocketRestoreDriver } from './packet/restore.js';
import { pidfdRestoreDriver } from './pidfd/restore.js';
import { pipeRestoreDriver } from './pipe/restore.js';
import type { FdRestoreDriver } from './restore-driver.js';
import { signalfdRestoreDriver } from './signalfd/restore.js';
import { timerfdRestoreDriver } from './timerfd/restore.js';
import { consoleRestoreDriver } from './tty/restore.js';
import { unixSocketRestoreDriver } from './unix/restore.js';

/**
 * The restore drivers of the fd kinds other than regular files and the shell's terminal
 * (restore/files.ts opens those). A new kind of fd is one folder under files/ and one line here.
 */
export const FD_RESTORE_DRIVERS: FdRestoreDriver[] = [
  pipeRestoreDriver,
  fifoRestoreDriver,
  eventfdRestoreDriver,
  eventpollRestoreDriver,
  signalfdRestoreDriver,
  timerfdRestoreDriver,
  unixSocketRestoreDriver,
  inotifyRestoreDriver,
  fanotifyRestoreDriver,
  inetSocketRestoreDriver,
  memfdRestoreDriver,
  netlinkSocketRestoreDriver,
  packetSocketRestoreDriver,
  consoleRestoreDriver,
  pidfdRestoreDriver,
  nsFileRestoreDriver,
];

export function restoreDriverFor(type: number): FdRestoreDriver | undefined {
  return FD_RESTORE_DRIVERS.find((d) => d.type === type);
}
