import { statSync } from 'node:fs';
import { ProcDir } from '@criu-ts/bfd';
import type { FdinfoEntry } from '@criu-ts/images';
import { DumpError } from '../dump/errors.js';
import { dumpFileLocks } from '../file-locks/dump.js';
import { eventfdDriver } from './eventfd/dump.js';
import { eventpollDriver } from './eventpoll/dump.js';
import { fanotifyDriver } from './fanotify/dump.js';
import { fifoDriver } from './fifo/dump.js';
import { inetSocketDriver } from './inet/dump.js';
import { inotifyDriver } from './inotify/dump.js';
import { netlinkSocketDriver } from './netlink/dump.js';
import { nsFileDriver } from './nsfile/dump.js';
import { packetSocketDriver } from './packet/dump.js';
import { pidfdDriver } from './pidfd/dump.js';
import { pipeDriver } from './pipe/dump.js';
import { regularFileDriver } from './regular/dump.js';
import { signalfdDriver } from './signalfd/dump.js';
import type { FdDumpDriver, FileTable, OpenFile } from './table.js';
import { timerfdDriver } from './timerfd/dump.js';
import { unixSocketDriver } from './unix/dump.js';

/**
 * The fd drivers, one per kind of file. A new kind of fd is one folder under files/ and
 * one line here.
 */
export const FD_DRIVERS: FdDumpDriver[] = [
  regularFileDriver,
  pipeDriver,
  fifoDriver,
  eventfdDriver,
  eventpollDriver,
  signalfdDriver,
  timerfdDriver,
  unixSocketDriver,
  inotifyDriver,
  fanotifyDriver,
  inetSocketDriver,
  netlinkSocketDriver,
  packetSocketDriver,
  pidfdDriver,
  nsFileDriver,
];

const O_CLOEXEC = 0o2000000;
const FD_CLOEXEC = 1;

/**
 * Every fd of a task: its files.img entry (shared with other fds and tasks holding the same
 * open file) and its fdinfo entry. An fd no driver handles stops the dump with its name.
 */
export function dumpFds(pid: number, proc: ProcDir, files: FileTable, drivers = FD_DRIVERS): FdinfoEntry[] {
  files.ownFdDumper ??= (fd) => dumpOwnFd(fd, files, drivers);
  const out: FdinfoEntry[] = [];
  for (const fd of proc.fds()) {
    const file = openFile(pid, proc, fd);
    const { id, type } = dumpFile(file, files, drivers);
    dumpFileLocks(file, files);
    out.push({ id, flags: file.flags & O_CLOEXEC ? FD_CLOEXEC : 0, type, fd });
  }
  return out;
}

function dumpFile(file: OpenFile, files: FileTable, drivers: FdDumpDriver[]): { id: number; type: number } {
  const driver = drivers.find((d) => d.claims(file));
  if (!driver) {
    throw new DumpError(
      `pid ${file.pid} fd ${file.fd} (${file.link}) is a kind of file criu-ts cannot dump yet`,
    );
  }
  return driver.dump({ ...file, flags: file.flags & ~O_CLOEXEC }, files);
}

/**
 * A file criu-ts holds itself (received in flight from a socket queue): dumped by the same drivers,
 * as an fd of criu-ts's own process. Its files.img id.
 */
function dumpOwnFd(fd: number, files: FileTable, drivers: FdDumpDriver[]): number {
  return dumpFile(openFile(process.pid, ProcDir.self(), fd), files, drivers).id;
}

function openFile(pid: number, proc: ProcDir, fd: number): OpenFile {
  const link = proc.readlink(`fd/${fd}`);
  const info = proc.fdinfo(fd);
  const stat = statSync(`/proc/${pid}/fd/${fd}`, { bigint: true });
  return { pid, fd, link, pos: info.pos, flags: info.flags, mntId: info.mntId, stat, info };
}
