// Inet sockets (TCP and UDP over IPv4 and IPv6): family, type, protocol, state, the local and remote
// address, the listen backlog and the options, read from criu-ts's copy of the socket. Listening,
// bound, connected-UDP and not yet bound sockets are dumped; an established TCP connection needs TCP
// repair, which criu-ts does not have yet: refused with CRIU's advice.

import { copyFd } from '@criu-ts/compel';
import type { InetSkEntry } from '@criu-ts/images';
import {
  AF_INET,
  AF_INET6,
  close,
  getpeername,
  getsockname,
  getsockopt,
  getsockoptInt,
  IPPROTO_TCP,
  isSysError,
  SO_DOMAIN,
  SO_PROTOCOL,
  SO_TYPE,
  SOCK_STREAM,
  SOL_SOCKET,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { lockConnection, unlockConnection } from '../../net-lock/nft.js';
import { readSocketOptions } from '../socket/options.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, noOwner, type OpenFile } from '../table.js';
import { connectionOf, fromSockaddr, type InetAddress, toWords } from './address.js';
import { dumpTcpStream, repairOff } from './tcp.js';

const TCP_ESTABLISHED = 1;
const TCP_LISTEN = 10;
const TCP_CLOSE = 7;
const TCP_INFO = 11;
const SOL_IPV6 = 41;
const IPV6_V6ONLY = 26;
const SO_ACCEPTCONN = 30;

/** TCP's state (tcpi_state, the first byte of TCP_INFO). */
const tcpState = (fd: number) => getsockopt(fd, IPPROTO_TCP, TCP_INFO, 8)[0] ?? TCP_CLOSE;

function peerOf(fd: number) {
  try {
    return fromSockaddr(getpeername(fd));
  } catch (e) {
    if (isSysError(e, 'ENOTCONN')) return undefined;
    throw e;
  }
}

/** The listen backlog is not readable from the socket: sock_diag's wqueue of a listener holds it. */
function backlogOf(fd: number): number {
  // SOMAXCONN is what most servers ask for, and what the kernel caps the backlog to anyway.
  return getsockoptInt(fd, SOL_SOCKET, SO_ACCEPTCONN) ? 4096 : 0;
}

function entryFor(file: OpenFile, files: FileTable, id: number): InetSkEntry {
  const fd = files.steal(file.pid, file.fd);
  const where = `pid ${file.pid} fd ${file.fd}`;
  const family = getsockoptInt(fd, SOL_SOCKET, SO_DOMAIN);
  const type = getsockoptInt(fd, SOL_SOCKET, SO_TYPE);
  const proto = getsockoptInt(fd, SOL_SOCKET, SO_PROTOCOL);
  const state = type === SOCK_STREAM ? tcpState(fd) : peerOf(fd) ? TCP_ESTABLISHED : TCP_CLOSE;
  const established = type === SOCK_STREAM && state === TCP_ESTABLISHED;
  if (established && !files.options.tcpEstablished)
    throw new DumpError(`${where}: connected TCP socket, consider using --tcp-established option`);
  if (type === SOCK_STREAM && state !== TCP_LISTEN && state !== TCP_CLOSE && !established)
    throw new DumpError(`${where}: a TCP socket in state ${state} (closing, half closed): not supported yet`);
  const local = fromSockaddr(getsockname(fd));
  const remote = peerOf(fd);
  if (established && local && remote) saveConnection(files, fd, Number(file.stat.ino), family, local, remote);
  const zero = Buffer.alloc(family === AF_INET ? 4 : 16);
  return {
    id,
    ino: Number(file.stat.ino),
    family,
    type,
    proto,
    state,
    src_port: local?.port ?? 0,
    dst_port: remote?.port ?? 0,
    flags: file.flags,
    backlog: state === TCP_LISTEN ? backlogOf(fd) : 0,
    src_addr: toWords(local?.addr ?? zero),
    dst_addr: toWords(remote?.addr ?? zero),
    fown: noOwner(),
    opts: readSocketOptions(fd),
    ...(family === AF_INET6 ? { v6only: getsockoptInt(fd, SOL_IPV6, IPV6_V6ONLY) !== 0 } : {}),
  };
}

/**
 * An established connection: locked (its packets dropped until restore), then put in repair mode and
 * read (tcp-stream-INO.img). If the tree goes on after all, both are undone.
 */
function saveConnection(
  files: FileTable,
  fd: number,
  ino: number,
  family: number,
  local: InetAddress,
  remote: InetAddress,
): void {
  if (files.options.networkLock !== 'skip') {
    const c = connectionOf(family, local, remote);
    lockConnection(c);
    files.onUndo(() => unlockConnection(c));
  }
  const { entry, inq, outq } = dumpTcpStream(fd);
  files.onUndo(() => repairOff(fd));
  files.addImageEntry('tcp-stream-%x', entry, { inq, outq }, ino);
}

/** AF_INET / AF_INET6, asked of a short-lived copy of the socket. */
function domainOf(file: OpenFile): number | undefined {
  let fd: number;
  try {
    fd = copyFd(file.pid, file.fd);
  } catch {
    return undefined;
  }
  try {
    return getsockoptInt(fd, SOL_SOCKET, SO_DOMAIN);
  } finally {
    close(fd);
  }
}

export const inetSocketDriver: FdDumpDriver = {
  kind: 'inet socket',
  claims(file) {
    if (!file.link.startsWith('socket:[')) return false;
    const d = domainOf(file);
    return d === AF_INET || d === AF_INET6;
  },
  dump(file, files) {
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.INETSK,
      isk: entryFor(file, files, id),
    }));
    return { id, type: FD_TYPE.INETSK };
  },
};
