// Every open file is classified once into exactly one kind, and each kind has exactly one driver
// (files/drivers.ts): no driver asks "is this mine?", so the order of the drivers does not matter.
//
// At dump the kind comes from what /proc says of the fd: its link ("pipe:[..]", "anon_inode:[eventfd]",
// "socket:[..]", a path) and, where links look alike, the one fact that tells the kinds apart: a path
// is a terminal when its device number is a terminal's (the kernel's tty majors), a memfd when its name
// is "/memfd:...", a FIFO when its inode is one; a socket's address family. At restore the kind comes
// from files.img's fd type (each kind writes one type).
import {
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  AF_PACKET,
  O_PATH,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFMT,
  S_IFREG,
} from '@criu-ts/sys';
import { isAnon } from './fd-flags.js';
import { isMemfdLink } from './memfd/dump.js';
import { isNamespaceLink } from './nsfile/dump.js';
import { socketDomain } from './socket/domain.js';
import type { OpenFile } from './table.js';
import { isTerminal } from './tty/dump.js';
import { isUnixSocket } from './unix/dump.js';

/** The kinds of fd criu-ts dumps and restores; files/drivers.ts has one driver for each. */
export type FdKind =
  | 'regular'
  | 'tty'
  | 'memfd'
  | 'pipe'
  | 'fifo'
  | 'eventfd'
  | 'eventpoll'
  | 'signalfd'
  | 'timerfd'
  | 'unix'
  | 'inotify'
  | 'fanotify'
  | 'inet'
  | 'netlink'
  | 'packet'
  | 'pidfd'
  | 'nsfile';

/** Anonymous-inode files: the kind is the name in their link ("anon_inode:[eventfd]"). */
const ANON_KINDS = ['eventfd', 'eventpoll', 'signalfd', 'timerfd', 'inotify', 'fanotify', 'pidfd'] as const;

/** The kind of a task's open file, or undefined for one criu-ts cannot dump (the caller says so). */
export function fdKindOf(file: OpenFile): FdKind | undefined {
  const { link } = file;
  // A terminal is a character device like /dev/null, and an O_PATH fd on it still names a terminal:
  // its device number decides first.
  if (isTerminal(file)) return 'tty';
  // memfds have a path-like link ("/memfd:NAME (deleted)") but are shared memory.
  if (isMemfdLink(link)) return 'memfd';
  if (link.startsWith('/')) {
    // An O_PATH fd only names its file, whatever kind it is (a symlink, a FIFO, a socket): opened
    // again by path with O_PATH, never as a FIFO's or a socket's end.
    if (file.flags & O_PATH) return 'regular';
    const type = Number(file.stat.mode) & S_IFMT;
    if (type === S_IFREG || type === S_IFDIR || type === S_IFCHR || type === S_IFBLK) return 'regular';
    if (type === S_IFIFO) return 'fifo';
    return undefined;
  }
  if (link.startsWith('pipe:')) return 'pipe';
  for (const kind of ANON_KINDS) if (isAnon(link, kind)) return kind;
  if (link.startsWith('socket:[')) {
    // unix sockets are found by inode in sock_diag; the others by SO_DOMAIN of a copy.
    if (isUnixSocket(file)) return 'unix';
    const domain = socketDomain(file);
    if (domain === AF_INET || domain === AF_INET6) return 'inet';
    if (domain === AF_NETLINK) return 'netlink';
    if (domain === AF_PACKET) return 'packet';
    return undefined;
  }
  if (isNamespaceLink(link)) return 'nsfile';
  return undefined;
}
