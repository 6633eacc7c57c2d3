// Unix sockets, made by criu-ts before any task runs. Two sockets connected to each other come back as
// one socketpair; a named socket is bound to its name again (a socket file the killed task left
// behind is removed first) with the file's mode and owner; a listening one listens; a socket
// connected one way (a datagram client of a bound server) connects to its peer's name. Queued packets
// are sent again into the socket that was to receive them, before anyone can read, with the files
// they carried (SCM_RIGHTS). Sockets are made first and filled after: a packet may carry its own
// socket, or the other end of its pair, which must exist by then. A datagram socket without a name is
// filled through a socketpair whose other end is then closed (its peer is cleared first, as CRIU does:
// then it may be connected anew); a connected datagram socket connects after its queue is in (a socket
// connected to itself accepts only its own packets). A relative name is bound (and reached) from the
// directory it was bound in.
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
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
  SCM_RIGHTS,
  SHUT_RD,
  SHUT_RDWR,
  SHUT_WR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  sendmsg,
  shutdown,
  socket,
  socketpair,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import type { FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { applySocketOptions } from '../socket/options.js';
import { FD_TYPE } from '../table.js';
import { USK_EXTERN } from './uflags.js';

const TCP_ESTABLISHED = 1;
const TCP_LISTEN = 10;

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

export const sockaddrOf = (name: Uint8Array): Buffer =>
  name[0] === 0 ? encodeSockaddrUn(Buffer.from(name.subarray(1)), true) : encodeSockaddrUn(Buffer.from(name));

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

function applyShutdown(fd: number, how: number | undefined): void {
  if (how === 1) shutdown(fd, SHUT_RD);
  else if (how === 2) shutdown(fd, SHUT_WR);
  else if (how === 3) shutdown(fd, SHUT_RDWR);
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
      applyShutdown(fa, a.usk.shutdown);
      applyShutdown(fb, b.usk.shutdown);
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

/**
 * Run `fn` (a bind, connect or send by `u`'s name) where the name means what it meant: from the
 * directory a relative name was bound in.
 */
function fromNameDir<T>(u: UnixSkEntry, fn: () => T): T {
  if (!u.name_dir || u.name.length === 0 || u.name[0] === 0 || u.name[0] === 0x2f) return fn();
  const back = process.cwd();
  process.chdir(u.name_dir);
  try {
    return fn();
  } finally {
    process.chdir(back);
  }
}

/** The socket file's path, relative names joined to their directory. */
const filePath = (u: UnixSkEntry) => {
  const name = Buffer.from(u.name).toString('utf8');
  return u.name_dir && !name.startsWith('/') ? join(u.name_dir, name) : name;
};

/** Bind to the dumped name: a socket file left by the killed task is removed first. */
function bindName(fd: number, u: UnixSkEntry): void {
  const name = Buffer.from(u.name);
  if (name.length === 0) return;
  if (name[0] !== 0) {
    const path = filePath(u);
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
      else throw new RestoreError(`unix socket ${u.ino}: ${path} exists and is not a socket`);
    } catch (e) {
      if (e instanceof RestoreError) throw e;
    }
  }
  fromNameDir(u, () => bind(fd, sockaddrOf(name)));
  if (name[0] !== 0) {
    const path = filePath(u);
    if (u.file_perms) {
      chmodSync(path, u.file_perms.mode & 0o7777);
      chownSync(path, u.file_perms.uid, u.file_perms.gid);
    }
    if (u.deleted) unlinkSync(path);
  }
}

/**
 * Connect one way to the peer's name: a peer of the tree is made (and bound) first; an external one
 * (--ext-unix-sk: a syslog socket) must be there already.
 */
function connectToPeer(ctx: Ctx, fd: number, peer: UnixEntry): void {
  const external = (peer.usk.uflags & USK_EXTERN) !== 0;
  if (!external) ctx.fd(peer.id);
  try {
    fromNameDir(peer.usk, () => connect(fd, sockaddrOf(peer.usk.name)));
  } catch (e) {
    if (!external) throw e;
    const name = Buffer.from(peer.usk.name).toString('utf8').replace(/\0/g, '@');
    throw new RestoreError(`the external socket ${name} it sends to: ${(e as Error).message}`);
  }
}

/** A socket on its own: bound, listening, or connected one way to a peer's name (itself, maybe). */
function makeSingle(ctx: Ctx, entry: UnixEntry): Made {
  const u = entry.usk;
  const what = `unix socket ${u.ino} (files.img id ${entry.id})`;
  const packets = queues(ctx).get(entry.id);
  const streamWithoutPeer = u.type !== SOCK_DGRAM && u.state === TCP_ESTABLISHED && !u.peer;
  if (streamWithoutPeer) {
    // Its peer is gone: what was queued can still be read, then end of file.
    const [fd, other] = socketpair(AF_UNIX, u.type | SOCK_CLOEXEC);
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
    bindName(fd, u);
    if (u.state === TCP_LISTEN) listen(fd, u.backlog || 128);
    if (u.peer && !peer) throw new RestoreError(`its peer socket ${u.peer} is not in files.img`);
    // A stream socket connects now; a datagram one once its queue is in (see the file comment).
    if (peer && u.type !== SOCK_DGRAM) connectToPeer(ctx, fd, peer);
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
          fromNameDir(u, () => refill(ctx, sender, packets, sockaddrOf(u.name)));
        } finally {
          close(sender);
        }
      }
      if (peer && u.type === SOCK_DGRAM) {
        if (peer.id === entry.id) fromNameDir(u, () => connect(fd, sockaddrOf(u.name)));
        else connectToPeer(ctx, fd, peer);
      }
      applyShutdown(fd, u.shutdown);
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
    const peer = u.peer ? byInode(ctx).get(u.peer) : undefined;
    const made =
      peer && peer.id !== e.id && peer.usk.peer === u.ino
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
