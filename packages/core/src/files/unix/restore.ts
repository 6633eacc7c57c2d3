// Unix sockets, made by criu-ts before any task runs. Two sockets connected to each other come back as
// one socketpair; a named socket is bound to its name again (a socket file the killed task left
// behind is removed first) with the file's mode and owner; a listening one listens; a socket
// connected one way (a datagram client of a bound server) connects to its peer's name. Queued packets
// are sent again into the socket that was to receive them, before anyone can read.
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import type { FileEntry, UnixSkEntry } from '@criu-ts/images';
import {
  AF_UNIX,
  bind,
  close,
  connect,
  encodeSockaddrUn,
  listen,
  MSG_DONTWAIT,
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

const TCP_ESTABLISHED = 1;
const TCP_LISTEN = 10;

type Ctx = FdRestoreContext;

/** sk-queues.img: the packets each socket (by files.img id) had waiting, in order. */
function queues(ctx: Ctx): Map<number, Buffer[]> {
  return ctx.shared('sk-queues', () => {
    const out = new Map<number, Buffer[]>();
    if (!ctx.dir.has('sk-queues')) return out;
    for (const e of ctx.dir.read('sk-queues')) {
      const m = e.message as { id_for: number };
      const list = out.get(m.id_for) ?? [];
      list.push((e.extra as Buffer | undefined) ?? Buffer.alloc(0));
      out.set(m.id_for, list);
    }
    return out;
  });
}

/** files.img unix socket entries by socket inode. */
function byInode(ctx: Ctx): Map<number, FileEntry & { usk: UnixSkEntry }> {
  return ctx.shared('unix-by-ino', () => {
    const out = new Map<number, FileEntry & { usk: UnixSkEntry }>();
    for (const f of ctx.files.values()) if (f.usk) out.set(f.usk.ino, f as FileEntry & { usk: UnixSkEntry });
    return out;
  });
}

export const sockaddrOf = (name: Uint8Array): Buffer =>
  name[0] === 0 ? encodeSockaddrUn(Buffer.from(name.subarray(1)), true) : encodeSockaddrUn(Buffer.from(name));

/** Send `packets` from `from` into its peer, without waiting (the options made room for them). */
function refill(from: number, packets: Buffer[] | undefined, to?: Buffer): void {
  for (const p of packets ?? []) sendmsg(from, { iov: [p], ...(to ? { name: to } : {}) }, MSG_DONTWAIT);
}

function applyShutdown(fd: number, how: number | undefined): void {
  if (how === 1) shutdown(fd, SHUT_RD);
  else if (how === 2) shutdown(fd, SHUT_WR);
  else if (how === 3) shutdown(fd, SHUT_RDWR);
}

/** Both sockets of a connected pair, by inode, queues refilled. */
function makePair(ctx: Ctx, a: FileEntry & { usk: UnixSkEntry }, b: FileEntry & { usk: UnixSkEntry }) {
  const [fa, fb] = socketpair(AF_UNIX, a.usk.type | SOCK_CLOEXEC);
  try {
    applySocketOptions(fa, a.usk.opts);
    applySocketOptions(fb, b.usk.opts);
    refill(fb, queues(ctx).get(a.id));
    refill(fa, queues(ctx).get(b.id));
    applyShutdown(fa, a.usk.shutdown);
    applyShutdown(fb, b.usk.shutdown);
  } catch (e) {
    close(fa);
    close(fb);
    throw new RestoreError(`unix socket pair ${a.usk.ino}/${b.usk.ino}: ${(e as Error).message}`);
  }
  ctx.log(`unix socketpair ${a.usk.ino} <-> ${b.usk.ino}`);
  return new Map([
    [a.usk.ino, fa],
    [b.usk.ino, fb],
  ]);
}

/** Bind to the dumped name: a socket file left by the killed task is removed first. */
function bindName(fd: number, u: UnixSkEntry): void {
  const name = Buffer.from(u.name);
  if (name.length === 0) return;
  if (name[0] !== 0) {
    const path = name.toString('utf8');
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
      else throw new RestoreError(`unix socket ${u.ino}: ${path} exists and is not a socket`);
    } catch (e) {
      if (e instanceof RestoreError) throw e;
    }
  }
  bind(fd, sockaddrOf(name));
  if (name[0] !== 0) {
    const path = name.toString('utf8');
    if (u.file_perms) {
      chmodSync(path, u.file_perms.mode & 0o7777);
      chownSync(path, u.file_perms.uid, u.file_perms.gid);
    }
    if (u.deleted) unlinkSync(path);
  }
}

/** A socket on its own: bound, listening, or connected one way to a peer's name. */
function makeSingle(ctx: Ctx, entry: FileEntry & { usk: UnixSkEntry }): number {
  const u = entry.usk;
  const packets = queues(ctx).get(entry.id);
  const streamWithoutPeer = u.type !== SOCK_DGRAM && u.state === TCP_ESTABLISHED && !u.peer;
  if (streamWithoutPeer) {
    // Its peer is gone: what was queued can still be read, then end of file.
    const [fd, other] = socketpair(AF_UNIX, u.type | SOCK_CLOEXEC);
    try {
      refill(other, packets);
    } finally {
      close(other);
    }
    return fd;
  }
  const fd = socket(AF_UNIX, u.type | SOCK_CLOEXEC);
  try {
    applySocketOptions(fd, u.opts);
    bindName(fd, u);
    if (u.state === TCP_LISTEN) listen(fd, u.backlog || 128);
    const peer = u.peer ? byInode(ctx).get(u.peer) : undefined;
    if (u.peer && !peer) throw new RestoreError(`its peer socket ${u.peer} is not in files.img`);
    if (peer) {
      ctx.fd(peer.id); // bound first
      connect(fd, sockaddrOf(peer.usk.name));
    }
    if (packets?.length) {
      if (u.name.length === 0) throw new RestoreError('it has queued packets but no name to send them to');
      const sender = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC);
      try {
        refill(sender, packets, sockaddrOf(u.name));
      } finally {
        close(sender);
      }
    }
    applyShutdown(fd, u.shutdown);
    return fd;
  } catch (e) {
    close(fd);
    throw new RestoreError(`unix socket ${u.ino} (files.img id ${entry.id}): ${(e as Error).message}`);
  }
}

export const unixSocketRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.UNIXSK,
  kind: 'unix socket',
  check(entry) {
    if (!entry.usk)
      throw new RestoreError(`files.img: entry ${entry.id} is a unix socket without its usk field`);
  },
  open(entry, ctx) {
    const e = entry as FileEntry & { usk: UnixSkEntry };
    const u = e.usk;
    const peer = u.peer ? byInode(ctx).get(u.peer) : undefined;
    let fd: number;
    if (peer && peer.usk.peer === u.ino) {
      const key = `unix-pair:${Math.min(u.ino, peer.usk.ino)}-${Math.max(u.ino, peer.usk.ino)}`;
      fd = ctx.shared(key, () => makePair(ctx, e, peer)).get(u.ino)!;
    } else {
      fd = makeSingle(ctx, e);
    }
    return withFlags(fd, u.flags);
  },
};
