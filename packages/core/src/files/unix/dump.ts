// Unix sockets: what sock_diag tells about each (type, state, name, peer, pending connections, queue
// and shutdown state; one query for all of them per dump), the options, and the packets queued on it
// (sk-queues.img, read without taking them), with the files they carry (SCM_RIGHTS, dumped like the
// tasks' fds and named by their files.img ids). A peer must be in the tree: a socket connected to a
// process outside it is refused (unless a datagram one to a named socket, with --ext-unix-sk). A relative
// name keeps the directory it was bound in. Connections a listener has not accepted yet are dumped
// through their client end (icons.ts).
import { statSync } from 'node:fs';
import { ProcDir } from '@criu-ts/bfd';
import type { UnixSkEntry } from '@criu-ts/images';
import {
  close,
  decodeUnixDiagAttrs,
  fstat,
  ioctl,
  SCM_RIGHTS,
  SIOCUNIXFILE,
  SOCK_DGRAM,
  sockDiag,
  TCP_CLOSE,
  TCP_LISTEN,
  UDIAG_SHOW_ICONS,
  UDIAG_SHOW_NAME,
  UDIAG_SHOW_PEER,
  UDIAG_SHOW_RQLEN,
  UDIAG_SHOW_VFS,
  type UnixDiagAttrs,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { noOwner } from '../fown.js';
import { readSocketOptions } from '../socket/options.js';
import { peekQueue } from '../socket/queue.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';
import { checkQueue, peerOf } from './icons.js';
import { asServiceClient } from './service.js';
import { USK_EXTERN, USK_SERVICE } from './uflags.js';

/** The options of a socket criu-ts does not restore (an external peer). */
const EMPTY_OPTS = {
  so_sndbuf: 0,
  so_rcvbuf: 0,
  so_snd_tmo_sec: 0n,
  so_snd_tmo_usec: 0n,
  so_rcv_tmo_sec: 0n,
  so_rcv_tmo_usec: 0n,
};

interface UnixSocketInfo extends UnixDiagAttrs {
  type: number;
  state: number;
}

/** Every unix socket of this network namespace, by inode (one sock_diag dump per criu-ts dump). */
function unixSockets(files: FileTable): Map<number, UnixSocketInfo> {
  return files.cached('unix-diag', () => {
    const show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
    const out = new Map<number, UnixSocketInfo>();
    for (const m of sockDiag({ family: 'unix', show })) {
      if (!m.unix) continue;
      out.set(m.unix.ino, { type: m.unix.type, state: m.unix.state, ...decodeUnixDiagAttrs(m.attrs) });
    }
    return out;
  });
}

/** Inodes of the unix sockets the tree holds, filled as they are dumped, checked at the end. */
function heldInodes(files: FileTable): Set<number> {
  return files.cached('unix-held', () => {
    const held = new Set<number>();
    files.later(() => checkPeers(files, held));
    return held;
  });
}

const peersToCheck = (files: FileTable) =>
  files.cached('unix-peers', () => [] as Array<{ where: string; ino: number; peer: number }>);

/**
 * Every peer must be held by the tree, or be an external datagram socket with a name (a syslog's
 * /dev/log): with --ext-unix-sk such a peer gets an entry of its own marked external, and restore
 * connects to its name again, as CRIU does. A stream connection to a process outside cannot come back.
 */
function checkPeers(files: FileTable, held: Set<number>): void {
  for (const p of peersToCheck(files)) {
    if (held.has(p.peer)) continue;
    const peer = unixSockets(files).get(p.peer);
    const named = peer?.name !== undefined && peer.name.length > 0;
    const what = `${p.where}: unix socket ${p.ino} is connected to socket ${p.peer}, which no task of the tree holds`;
    if (peer?.type !== SOCK_DGRAM)
      throw new DumpError(`${what}: a stream connection to a process outside the tree cannot be restored`);
    if (!named)
      throw new DumpError(`${what}: that datagram socket outside the tree has no name to connect to again`);
    if (!files.options.extUnixSk)
      throw new DumpError(`${what}: external socket is used, consider using --ext-unix-sk option`);
    // Restore connects to it again by its name: that name must still lead to it.
    if (peer.name![0] !== 0 && peer.name![0] !== 0x2f /* '/' */)
      throw new DumpError(
        `${p.where}: unix socket ${p.ino} sends to the external socket ${peer.name!.toString('utf8')}, a name relative to a directory criu-ts cannot know: not supported`,
      );
    if (peer.name![0] !== 0 && fileModeOf(peer.name!, peer).deleted)
      throw new DumpError(
        `${p.where}: unix socket ${p.ino} sends to the external socket ${peer.name!.toString('utf8')}, whose name leads elsewhere now (unlinked): it could not be reached again`,
      );
    if (files.firstTime(`unix-extern:${p.peer}`)) addExternalPeer(files, p.peer, peer);
  }
}

/**
 * A name as files.img holds it: a pathname with the NUL the kernel counts in its address (sock_diag
 * reports it; criu-ts's sock_diag decoder drops it), as CRIU writes it and needs it (CRIU uses the bytes
 * as a C string when it removes the stale socket file before binding); an abstract name as it is.
 */
export const imageName = (name: Buffer): Buffer =>
  name.length > 0 && name[0] !== 0 ? Buffer.concat([name, Buffer.from([0])]) : name;

/** The entry of a named datagram socket outside the tree that a socket of the tree sends to. */
function addExternalPeer(files: FileTable, ino: number, sk: UnixSocketInfo): void {
  files.add(`unix-extern:${ino}`, (id) => ({
    id,
    type: FD_TYPE.UNIXSK,
    usk: {
      id,
      ino,
      type: sk.type,
      state: sk.state,
      flags: 0,
      uflags: USK_EXTERN,
      backlog: 0,
      peer: 0,
      fown: noOwner(),
      opts: EMPTY_OPTS,
      name: imageName(sk.name!),
    },
  }));
}

function fileModeOf(
  name: Buffer,
  sk: UnixSocketInfo,
): { perms?: UnixSkEntry['file_perms']; deleted: boolean } {
  if (name.length === 0 || name[0] === 0) return { deleted: false };
  try {
    const st = statSync(name.toString('utf8'));
    if (sk.vfs && st.ino !== sk.vfs.ino) return { deleted: true };
    return { perms: { mode: st.mode, uid: st.uid, gid: st.gid }, deleted: false };
  } catch {
    return { deleted: true };
  }
}

const DELETED = ' (deleted)';

/**
 * A name relative to the directory the task was in when it bound it: that directory, found from the
 * socket's own file (SIOCUNIXFILE, as CRIU does), so that restore binds the same name from there.
 */
function relativeName(
  own: number,
  name: string,
  where: string,
): Pick<UnixSkEntry, 'name_dir' | 'deleted' | 'file_perms'> {
  let f: number;
  try {
    f = ioctl(own, SIOCUNIXFILE);
  } catch (e) {
    throw new DumpError(
      `${where}: unix socket bound to the relative name ${name}: its file is out of reach (${(e as Error).message})`,
    );
  }
  try {
    let path = ProcDir.self().readlink(`fd/${f}`);
    const deleted = path.endsWith(DELETED);
    if (deleted) path = path.slice(0, -DELETED.length);
    if (!path.endsWith(`/${name}`))
      throw new DumpError(
        `${where}: Unable to cut ${name} from ${path}: a relative name criu-ts cannot bind again`,
      );
    const st = fstat(f);
    return {
      name_dir: path.slice(0, -name.length - 1) || '/',
      ...(deleted ? { deleted: true } : { file_perms: { mode: st.mode, uid: st.uid, gid: st.gid } }),
    };
  } finally {
    close(f);
  }
}

function entryFor(
  file: OpenFile,
  files: FileTable,
  id: number,
  ino: number,
  sk: UnixSocketInfo,
): UnixSkEntry {
  const where = `pid ${file.pid} fd ${file.fd}`;
  const name = sk.name ?? Buffer.alloc(0);
  if (sk.state === TCP_LISTEN) checkQueue(files, where, ino, name.toString(), sk, heldInodes(files));
  const peer = peerOf(files, where, ino, sk, unixSockets(files));
  const own = files.steal(file.pid, file.fd);
  const relative =
    name.length > 0 && name[0] !== 0 && name[0] !== 0x2f /* '/' */
      ? relativeName(own, name.toString('utf8'), where)
      : undefined;
  if (peer) peersToCheck(files).push({ where, ino, peer });
  // A stream socket neither listening nor connected (only bound, or not even that) has no queue.
  const unconnected = sk.type !== SOCK_DGRAM && sk.state === TCP_CLOSE;
  if (sk.state !== TCP_LISTEN && !unconnected) {
    for (const p of peekQueue(own, `${where} (unix socket ${ino})`)) {
      const rights = p.fds.map((fd) => files.inFlight(fd));
      const scm = rights.length ? { scm: [{ type: SCM_RIGHTS, rights }] } : {};
      files.addImageEntry('sk-queues', { id_for: id, length: p.data.length, ...scm }, p.data);
    }
  }
  const { perms, deleted } = relative
    ? { perms: relative.file_perms, deleted: relative.deleted === true }
    : fileModeOf(name, sk);
  return {
    id,
    ino,
    type: sk.type,
    state: sk.state,
    flags: file.flags,
    uflags: 0,
    backlog: sk.state === TCP_LISTEN ? (sk.rqlen?.wqueue ?? 0) : 0,
    peer,
    fown: files.owner(file),
    opts: readSocketOptions(own, where),
    name: imageName(name),
    ...(sk.shutdown ? { shutdown: sk.shutdown } : {}),
    ...(perms ? { file_perms: perms } : {}),
    ...(relative ? { name_dir: relative.name_dir } : {}),
    ...(deleted ? { deleted: true } : {}),
  };
}

export const unixSocketDriver: FdDumpDriver = {
  kind: 'unix socket',
  dump(file, files) {
    const ino = Number(file.stat.ino);
    const sk = unixSockets(files).get(ino);
    if (!sk) throw new DumpError(`pid ${file.pid} fd ${file.fd}: sock_diag does not know unix socket ${ino}`);
    heldInodes(files).add(ino);
    // The RPC client's socket to criu-ts (a client that dumps itself): dumped closed, marked (service.ts).
    const service = asServiceClient(sk, files.options.rpcSocketIno);
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.UNIXSK,
      usk: service
        ? { ...entryFor(file, files, id, ino, service), uflags: USK_SERVICE }
        : entryFor(file, files, id, ino, sk),
    }));
    return { id, type: FD_TYPE.UNIXSK };
  },
};

/**
 * Whether a socket fd is a unix socket (files/kinds.ts): the kernel is asked about this one socket by
 * inode (sock_diag), which needs no copy of the fd.
 */
export function isUnixSocket(file: OpenFile): boolean {
  const ino = Number(file.stat.ino);
  try {
    return sockDiag({ family: 'unix', ino, show: 0 }).some((m) => m.unix?.ino === ino);
  } catch {
    return false; // ENOENT: not a unix socket
  }
}
