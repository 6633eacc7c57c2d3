// Connections a listening unix socket has not accepted yet. Each sits in the listener's queue as an
// "embryo" socket that no fd names; sock_diag lists them for the listener (UNIX_DIAG_ICONS) by the inode
// of their other end: the client socket that called connect(), which a task still holds. As CRIU does,
// the client is what gets dumped: its entry names the listener as its peer (the embryo has no inode of
// its own), and restore connects it to the listener's name again, so that the task's next accept()
// returns the connection. Clients of one listener are written to files.img in the order of its queue
// and connected in that order, so accept() returns them in the order it would have.
//
// Refused, as CRIU refuses them: a client that has sent data (it is in the embryo's queue, which cannot
// be read without accepting it), a client closed since it connected (inode 0). A client no task of the
// tree holds cannot come back either: refused, unless --skip-in-flight leaves it behind (its peer sees
// the connection reset), as for TCP.
import type { FileEntry, UnixSkEntry } from '@criu-ts/images';
import {
  connect,
  F_GETFL,
  F_SETFL,
  fcntl,
  isSysError,
  O_NONBLOCK,
  SOCK_DGRAM,
  TCP_ESTABLISHED,
  TCP_LISTEN,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { RestoreError } from '../../restore/errors.js';
import type { FdRestoreContext } from '../restore-driver.js';
import type { FileTable } from '../table.js';

/** What dump knows of a unix socket from sock_diag (see dump.ts). */
interface Diag {
  type: number;
  state: number;
  peer?: number;
  icons?: number[];
  rqlen?: { rqueue: number; wqueue: number };
}

/** Client inode -> the listener whose queue it waits in, for every listener of the namespace. */
function queuedIn(files: FileTable, all: Map<number, Diag>): Map<number, number> {
  return files.cached('unix-icons', () => {
    const out = new Map<number, number>();
    for (const [ino, sk] of all)
      if (sk.state === TCP_LISTEN) for (const icon of sk.icons ?? []) if (icon) out.set(icon, ino);
    return out;
  });
}

/**
 * The peer a socket's entry names: its own peer, or for the client end of a connection not accepted
 * yet (sock_diag gives it peer 0, the embryo having no inode) the listener it waits on.
 */
export function peerOf(
  files: FileTable,
  where: string,
  ino: number,
  sk: Diag,
  all: Map<number, Diag>,
): number {
  if (sk.peer || sk.type === SOCK_DGRAM || sk.state !== TCP_ESTABLISHED) return sk.peer ?? 0;
  const listener = queuedIn(files, all).get(ino);
  if (listener === undefined) return 0;
  // What the client sent is in the embryo's queue, charged to the client's send queue (CRIU's words).
  if ((sk.rqlen?.wqueue ?? 0) !== 0)
    throw new DumpError(`${where}: Non-empty write queue on an in-flight socket 0x${ino.toString(16)}`);
  return listener;
}

/**
 * A listener with connections waiting: each client must be one the tree holds (checked once every
 * task is dumped); their entries are then put in the queue's order.
 */
export function checkQueue(
  files: FileTable,
  where: string,
  ino: number,
  name: string,
  sk: Diag,
  held: ReadonlySet<number>,
): void {
  const icons = sk.icons ?? [];
  if (icons.length === 0) return;
  const skip = files.options.skipInFlight === true;
  if (icons.includes(0) && !skip)
    throw new DumpError(`${where}: Found a closed in-flight socket to 0x${ino.toString(16)}`);
  files.later(() => {
    for (const icon of icons) {
      if (icon === 0 || held.has(icon) || skip) continue;
      throw new DumpError(
        `${where}: listening unix socket ${name} has a connection not accepted yet from socket ${icon}, which no task of the tree holds: it cannot come back (--skip-in-flight leaves it behind)`,
      );
    }
    inQueueOrder(
      files.entries,
      icons.filter((i) => held.has(i)),
    );
  });
}

/** Reorder the entries of `clients` (socket inodes) among the places they already hold. */
function inQueueOrder(entries: FileEntry[], clients: number[]): void {
  const rank = new Map(clients.map((c, i) => [c, i]));
  const at: number[] = [];
  entries.forEach((e, i) => {
    if (e.usk && rank.has(e.usk.ino)) at.push(i);
  });
  const sorted = at.map((i) => entries[i]!).sort((a, b) => rank.get(a.usk!.ino)! - rank.get(b.usk!.ino)!);
  at.forEach((i, k) => {
    entries[i] = sorted[k]!;
  });
}

// ---- restore --------------------------------------------------------------------------------------

type UnixEntry = FileEntry & { usk: UnixSkEntry };

const isClientOf = (f: FileEntry, listener: number) =>
  f.usk !== undefined &&
  f.usk.peer === listener &&
  f.usk.type !== SOCK_DGRAM &&
  f.usk.state === TCP_ESTABLISHED;

/** Whether `peer` is a listener: the socket connecting to it waits in its queue. */
export const isListener = (peer: UnixEntry) => peer.usk.state === TCP_LISTEN;

/**
 * Once a listener listens: its waiting clients, opened (each connects) in files.img order, the order
 * of its queue at the dump.
 */
export function connectQueued(ctx: FdRestoreContext, listener: UnixEntry): void {
  for (const f of ctx.files.values()) if (isClientOf(f, listener.usk.ino)) ctx.fd(f.id);
}

/** connect() to a listener without waiting: a full queue is an error, not a restore that hangs. */
export function connectToListener(fd: number, addr: Buffer, listener: UnixEntry): void {
  const flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  try {
    connect(fd, addr);
  } catch (e) {
    if (isSysError(e, 'EAGAIN'))
      throw new RestoreError(
        `the queue of listening socket ${listener.usk.ino} is full (backlog ${listener.usk.backlog})`,
      );
    throw e;
  } finally {
    fcntl(fd, F_SETFL, flags);
  }
}
