// Unix sockets, made by criu-ts before any task runs. Two sockets connected to each other come back as
// one socketpair; a named socket is bound to its name again (a socket file the killed task left
// behind is removed first) with the file's mode and owner; a listening one listens; a socket
// connected one way (a datagram client of a bound server) connects to its peer's name. Queued packets
// are sent again into the socket that was to receive them, before anyone can read, with the files
// they carried (SCM_RIGHTS). Sockets are made first and filled after: a packet may carry its own
// socket, or the other end of its pair, which must exist by then. A datagram socket without a name is
// filled through a socketpair whose other end is then closed (its peer is cleared first, as CRIU does:
// then it may be connected anew); a connected datagram socket connects after its queue is in (it would
// refuse packets from any other sender, and one connected to itself accepts only its own).

import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  renameSync,
  rmdirSync,
  unlinkSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { procPath } from '@criu-ts/bfd';
import type { FileEntry, SkPacketEntry, UnixSkEntry } from '@criu-ts/images';
import {
  AF_UNIX,
  AF_UNSPEC,
  bind,
  close,
  connect,
  encodeSockaddrUn,
  listen,
  MSG_DONTWAIT,
  O_CLOEXEC,
  O_PATH,
  open,
  SCM_RIGHTS,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  sendmsg,
  socket,
  socketpair,
  TCP_ESTABLISHED,
  TCP_LISTEN,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import type { FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { applySocketOptions } from '../socket/options.js';
import { shutdownAsDumped } from '../socket/shutdown.js';
import { FD_TYPE } from '../table.js';
import { connectQueued, connectToListener, isListener } from './icons.js';
import { isServiceClient, serviceClientSocket } from './service.js';
import { USK_EXTERN } from './uflags.js';

type Ctx = FdRestoreContext;

type UnixEntry = FileEntry & { usk: UnixSkEntry };

interface Packet {
  data: Buffer;
  /** files.img ids of the files it carries (SCM_RIGHTS). */
  rights: number[];
}

/** sk-queues.img: the packets each socket (by files.img id) had waiting, in order. */
function queues(ctx: Ctx): Map<number, Packet[]> {
  return ctx.shared('sk-queues', () => {
    const out = new Map<number, Packet[]>();
    if (!ctx.dir.has('sk-queues')) return out;
    for (const e of ctx.dir.read('sk-queues')) {
      const m = e.message as unknown as SkPacketEntry;
      const list = out.get(m.id_for) ?? [];
      list.push({ data: (e.extra as Buffer | undefined) ?? Buffer.alloc(0), rights: rightsOf(m) });
      out.set(m.id_for, list);
    }
    return out;
  });
}

function rightsOf(m: SkPacketEntry): number[] {
  const rights: number[] = [];
  for (const scm of m.scm ?? []) {
    if (scm.type !== SCM_RIGHTS)
      throw new RestoreError(`sk-queues.img: a packet of socket ${m.id_for} has scm type ${scm.type}`);
    rights.push(...(scm.rights ?? []));
  }
  return rights;
}

/** files.img unix socket entries by socket inode. */
function byInode(ctx: Ctx): Map<number, UnixEntry> {
  return ctx.shared('unix-by-ino', () => {
    const out = new Map<number, UnixEntry>();
    for (const f of ctx.files.values()) if (f.usk) out.set(f.usk.ino, f as UnixEntry);
    return out;
  });
}

/**
 * A pathname from files.img without the NUL that ends it there (CRIU and criu-ts write the name as the
 * kernel reports it, NUL included; older criu-ts images have none). Abstract names are left alone.
 */
export const pathName = (name: Uint8Array): Buffer => {
  let end = name.length;
  if (name[0] !== 0) while (end > 0 && name[end - 1] === 0) end--;
  return Buffer.from(name.subarray(0, end));
};

export const sockaddrOf = (name: Uint8Array): Buffer =>
  name[0] === 0 ? encodeSockaddrUn(Buffer.from(name.subarray(1)), true) : encodeSockaddrUn(pathName(name));

/**
 * Send `packets` from `from` into its peer, without waiting (the options made room for them), each
 * with the files it carried, opened (or found already open) by criu-ts.
 */
function refill(ctx: Ctx, from: number, packets: Packet[] | undefined, to?: Buffer): void {
  for (const p of packets ?? []) {
    const fds = p.rights.map((id) => ctx.fd(id));
    sendmsg(from, { iov: [p.data], fds, ...(to ? { name: to } : {}) }, MSG_DONTWAIT);
  }
}

/**
 * Sockets made, by inode, and how to fill them: their queues and then their shutdown state. Filling
 * is separate so that a packet may carry a socket of the same pair (made by then, not yet filled).
 */
interface Made {
  fds: Map<number, number>;
  fill(): void;
  filled: boolean;
}

/** Both sockets of a connected pair. */
function makePair(ctx: Ctx, a: UnixEntry, b: UnixEntry): Made {
  const [fa, fb] = socketpair(AF_UNIX, a.usk.type | SOCK_CLOEXEC);
  const what = `unix socket pair ${a.usk.ino}/${b.usk.ino}`;
  try {
    applySocketOptions(fa, a.usk.opts);
    applySocketOptions(fb, b.usk.opts);
    // Datagram sockets bound and connected to each other: their names too. (Of a stream connection,
    // the accepted end shows its listener's name, which no bind can give.)
    if (a.usk.type === SOCK_DGRAM) {
      bindName(ctx, fa, a.usk);
      bindName(ctx, fb, b.usk);
    }
  } catch (e) {
    close(fa);
    close(fb);
    throw new RestoreError(`${what}: ${(e as Error).message}`);
  }
  ctx.log(`unix socketpair ${a.usk.ino} <-> ${b.usk.ino}`);
  const fill = () =>
    failingAs(what, () => {
      refill(ctx, fb, queues(ctx).get(a.id));
      refill(ctx, fa, queues(ctx).get(b.id));
      shutdownAsDumped(fa, a.usk.shutdown);
      shutdownAsDumped(fb, b.usk.shutdown);
    });
  return {
    fds: new Map([
      [a.usk.ino, fa],
      [b.usk.ino, fb],
    ]),
    fill,
    filled: false,
  };
}

function failingAs(what: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    throw e instanceof RestoreError ? e : new RestoreError(`${what}: ${(e as Error).message}`);
  }
}

/** criu-ts's O_PATH fds of the socket files it bound, by socket inode: peers connect through them. */
const socketFiles = (ctx: Ctx) => ctx.shared('unix-socket-files', () => new Map<number, number>());

/** Make the missing directories of `dir` (deepest last); returns those made, to remove them again. */
function makeDirs(dir: string): string[] {
  const made: string[] = [];
  for (let d = dir; d !== '/' && !existsSync(d); d = dirname(d)) made.unshift(d);
  for (const d of made) mkdirSync(d, 0o700);
  return made.reverse();
}

/** `fn` run in directory `dir` (a relative name is bound from the directory it names a file in). */
function inDir<T>(dir: string | undefined, fn: () => T): T {
  if (dir === undefined) return fn();
  const back = process.cwd();
  process.chdir(dir);
  try {
    return fn();
  } finally {
    process.chdir(back);
  }
}

/**
 * Bind to the dumped name, from the directory a relative name was bound in. A socket file the killed
 * task left behind is removed first. A name unlinked since (or taken by another socket since) is bound
 * with whatever has the name now moved aside and put back after, and its directories made for the
 * while if they are gone too; then it is unlinked again. criu-ts keeps an O_PATH fd of every file it
 * binds: the sockets connecting to it reach it through that, whatever became of its name.
 */
function bindName(ctx: Ctx, fd: number, u: UnixSkEntry): void {
  const name = pathName(u.name);
  if (name.length === 0) return;
  if (name[0] === 0) {
    bind(fd, sockaddrOf(name));
    return;
  }
  const rel = name.toString('utf8');
  const path = u.name_dir !== undefined && !rel.startsWith('/') ? join(u.name_dir, rel) : rel;
  const made = u.deleted ? makeDirs(dirname(path)) : [];
  const aside = `${path}.criu-ts-aside.${process.pid}`;
  let moved = false;
  try {
    if (lstatOrUndefined(path)) {
      if (u.deleted) {
        renameSync(path, aside);
        moved = true;
      } else if (lstatSync(path).isSocket()) unlinkSync(path);
      else throw new RestoreError(`unix socket ${u.ino}: ${path} exists and is not a socket`);
    }
    inDir(u.name_dir !== undefined && !rel.startsWith('/') ? u.name_dir : undefined, () =>
      bind(fd, sockaddrOf(name)),
    );
    const file = open(path, O_PATH | O_CLOEXEC);
    ctx.closeLater(file);
    socketFiles(ctx).set(u.ino, file);
    if (u.file_perms) {
      chmodSync(path, u.file_perms.mode & 0o7777);
      chownSync(path, u.file_perms.uid, u.file_perms.gid);
    }
    if (u.deleted) unlinkSync(path);
  } finally {
    if (moved) renameSync(aside, path);
    for (const d of made) rmdirSync(d);
  }
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * The address criu-ts reaches a socket of the images it has bound by: through its O_PATH fd of the
 * socket's file (a relative or unlinked name does not matter), or its abstract name.
 */
function reachableName(ctx: Ctx, u: UnixSkEntry): Buffer {
  const file = socketFiles(ctx).get(u.ino);
  return file !== undefined ? encodeSockaddrUn(procPath('self', 'fd', file)) : sockaddrOf(u.name);
}

/**
 * Connect one way to the peer: a peer of the tree is made (and bound) first and reached through
 * criu-ts's O_PATH fd of its file, so an unlinked or reused name does not matter; an external one
 * (--ext-unix-sk: a syslog socket) must be there already, by name.
 */
function connectToPeer(ctx: Ctx, fd: number, self: UnixSkEntry, peer: UnixEntry): void {
  const external = (peer.usk.uflags & USK_EXTERN) !== 0;
  // A datagram socket may be connected to itself: it is bound already.
  if (!external && peer.usk.ino !== self.ino) ctx.fd(peer.id);
  const file = external ? undefined : socketFiles(ctx).get(peer.usk.ino);
  try {
    // A connection the listener had not accepted yet waits in its queue again (icons.ts).
    const to =
      file !== undefined ? encodeSockaddrUn(procPath('self', 'fd', file)) : sockaddrOf(peer.usk.name);
    if (isListener(peer)) connectToListener(fd, to, peer);
    else connect(fd, to);
  } catch (e) {
    if (!external) throw e;
    const name = pathName(peer.usk.name).toString('utf8').replace(/\0/g, '@');
    throw new RestoreError(`the external socket ${name} it sends to: ${(e as Error).message}`);
  }
}

/** A socket on its own: bound, listening, or connected one way to a peer's name (itself, maybe). */
function makeSingle(ctx: Ctx, entry: UnixEntry): Made {
  const u = entry.usk;
  const what = `unix socket ${u.ino} (files.img id ${entry.id})`;
  const packets = queues(ctx).get(entry.id);
  const streamWithoutPeer = u.type !== SOCK_DGRAM && u.state === TCP_ESTABLISHED && !u.peer;
  // A datagram socket of a pair whose other end was closed: no name to send its packets to.
  const unnamedWithQueue = u.type === SOCK_DGRAM && !u.peer && u.name.length === 0 && !!packets?.length;
  if (streamWithoutPeer || unnamedWithQueue) {
    // Its peer is gone: what was queued can still be read (then end of file, for a stream).
    const [fd, other] = socketpair(AF_UNIX, u.type | SOCK_CLOEXEC);
    try {
      applySocketOptions(fd, u.opts);
    } catch (e) {
      close(fd);
      close(other);
      throw new RestoreError(`${what}: ${(e as Error).message}`);
    }
    const fill = () => {
      try {
        failingAs(what, () => refill(ctx, other, packets));
      } finally {
        close(other);
      }
    };
    return { fds: new Map([[u.ino, fd]]), fill, filled: false };
  }
  const peer = u.peer ? byInode(ctx).get(u.peer) : undefined;
  // No name to send its packets to: they come from the other end of a pair, which then goes.
  const fillThroughPair = u.type === SOCK_DGRAM && !!packets?.length && u.name.length === 0;
  let fd = -1;
  let filler = -1;
  try {
    if (fillThroughPair) {
      [fd, filler] = socketpair(AF_UNIX, u.type | SOCK_CLOEXEC);
      connect(fd, Buffer.from([AF_UNSPEC, 0])); // no peer any more; the other end still sends to it
    } else fd = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
    applySocketOptions(fd, u.opts);
    bindName(ctx, fd, u);
    if (u.state === TCP_LISTEN) listen(fd, u.backlog || 128);
    if (u.peer && !peer) throw new RestoreError(`its peer socket ${u.peer} is not in files.img`);
    // A stream socket connects now; a datagram one once its queue is in (see the file comment).
    if (peer && u.type !== SOCK_DGRAM) connectToPeer(ctx, fd, u, peer);
  } catch (e) {
    for (const f of [fd, filler]) if (f >= 0) close(f);
    throw new RestoreError(`${what}: ${(e as Error).message}`);
  }
  const fill = () =>
    failingAs(what, () => {
      if (filler >= 0) {
        try {
          refill(ctx, filler, packets);
        } finally {
          close(filler);
        }
      } else if (packets?.length) {
        const sender = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC);
        try {
          refill(ctx, sender, packets, reachableName(ctx, u));
        } finally {
          close(sender);
        }
      }
      if (peer && u.type === SOCK_DGRAM) connectToPeer(ctx, fd, u, peer);
      shutdownAsDumped(fd, u.shutdown);
      if (u.state === TCP_LISTEN) connectQueued(ctx, entry);
    });
  return { fds: new Map([[u.ino, fd]]), fill, filled: false };
}

export const unixSocketRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.UNIXSK,
  kind: 'unix socket',
  check(entry) {
    if (!entry.usk)
      throw new RestoreError(`files.img: entry ${entry.id} is a unix socket without its usk field`);
  },
  open(entry, ctx) {
    const e = entry as UnixEntry;
    const u = e.usk;
    // A client's socket to criu that dumped itself: the answer to its dump waits in it (service.ts).
    if (isServiceClient(u)) {
      const fd = ctx.shared(`unix:${u.ino}`, () => serviceClientSocket(u));
      ctx.log(`unix socket ${u.ino}: the RPC client's connection, with the answer restored = true`);
      return withFlags(fd, u.flags);
    }
    const peer = u.peer ? byInode(ctx).get(u.peer) : undefined;
    // A connection not accepted yet: its listener is made first, and connects its whole queue in order.
    if (peer && isListener(peer)) ctx.fd(peer.id);
    const made =
      peer && peer.usk.peer === u.ino && peer.usk.ino !== u.ino
        ? ctx.shared(`unix-pair:${Math.min(u.ino, peer.usk.ino)}-${Math.max(u.ino, peer.usk.ino)}`, () =>
            makePair(ctx, e, peer),
          )
        : ctx.shared(`unix:${u.ino}`, () => makeSingle(ctx, e));
    if (!made.filled) {
      made.filled = true; // first: a packet carrying this very socket comes back here
      made.fill();
    }
    return withFlags(made.fds.get(u.ino)!, u.flags);
  },
};
