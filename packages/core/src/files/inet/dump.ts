// Inet sockets (TCP and UDP over IPv4 and IPv6): family, type, protocol, state, the local and remote
// address, the listen backlog and the options, read from criu-ts's copy of the socket. Listening,
// bound, connected-UDP and not yet bound sockets are dumped; a TCP connection (established, half
// closed or closing) needs --tcp-established: it is locked and read through TCP repair (tcp.ts).

import { randomUUID } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import type { InetSkEntry } from '@criu-ts/images';
import {
  AF_INET,
  AF_INET6,
  FIONREAD,
  getpeername,
  getsockname,
  getsockopt,
  getsockoptInt,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_IP,
  IPPROTO_MPTCP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
  IPV6_V6ONLY,
  ioctlGetInt,
  isSysError,
  SO_DOMAIN,
  SO_PROTOCOL,
  SO_TYPE,
  SOCK_DGRAM,
  SOCK_RAW,
  SOCK_STREAM,
  SOL_IPV6,
  SOL_SOCKET,
  SOL_UDP,
  sockDiag,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { type Connection, type DumpNetworkLock, dumpNetworkLock } from '../../net-lock/index.js';
import { socketDomain } from '../socket/domain.js';
import { readSocketOptions } from '../socket/options.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';
import { connectionOf, fromSockaddr, type InetAddress, toWords } from './address.js';
import { readIpOptions } from './ip-options.js';
import { dumpTcpStream, isRepairableState, repairOff, TCP } from './tcp.js';
import { readTcpOptions } from './tcp-options.js';

const TCP_INFO = 11;
/** What the kernel caps a backlog to by default (net.core.somaxconn). */
const SOMAXCONN = 4096;

/** TCP's state (tcpi_state, the first byte of TCP_INFO). */
const tcpState = (fd: number) => getsockopt(fd, IPPROTO_TCP, TCP_INFO, 8)[0] ?? TCP.CLOSE;

/** sock_diag's states mask of the connections --tcp-established dumps (and the lock holds). */
const CONNECTED_STATES = Object.values(TCP)
  .filter(isRepairableState)
  .reduce((mask, s) => mask | (1 << s), 0);

function peerOf(fd: number) {
  try {
    return fromSockaddr(getpeername(fd));
  } catch (e) {
    if (isSysError(e, 'ENOTCONN')) return undefined;
    throw e;
  }
}

/**
 * A listener's backlog, which no getsockopt reads back, and the connections waiting in its accept
 * queue: sock_diag reports them as its wqueue (sk_max_ack_backlog) and rqueue. One query per family
 * for all the tree's listeners.
 */
function listenerOf(files: FileTable, ino: number): { backlog: number; pending: number } {
  const listeners = files.cached('tcp-listeners', () => {
    const out = new Map<number, { backlog: number; pending: number }>();
    for (const family of ['inet', 'inet6'] as const)
      for (const m of sockDiag({ family, protocol: IPPROTO_TCP, states: 1 << TCP.LISTEN }))
        if (m.inet) out.set(m.inet.ino, { backlog: m.inet.wqueue, pending: m.inet.rqueue });
    return out;
  });
  return listeners.get(ino) ?? { backlog: SOMAXCONN, pending: 0 };
}

/**
 * Connections the kernel accepted for a listener that the task has not taken yet have no fd and no
 * image: restored, their clients would see a reset. Refused unless --skip-in-flight, as in CRIU.
 */
function backlogOf(files: FileTable, ino: number, where: string): number {
  const l = listenerOf(files, ino);
  if (l.pending > 0 && !files.options.skipInFlight)
    throw new DumpError(
      `${where}: listening socket ${ino} has ${l.pending} connections not accepted yet (in flight), consider using --skip-in-flight option`,
    );
  return l.backlog;
}

/** Protocols restore can make again (any for a raw socket, whose protocol is just a number). */
const PROTOCOLS = new Set([
  IPPROTO_IP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
]);
const UDP_CORK = 1;

/**
 * What CRIU refuses too, in its words: a protocol it does not know (SCTP, MPTCP...), a type other than
 * stream, datagram and raw, and a corked UDP socket, whose pending datagram sits in the kernel where
 * nothing can read it out.
 */
function refuseUnsupported(where: string, fd: number, ino: number, type: number, proto: number): void {
  const hex = ino.toString(16);
  if (type !== SOCK_RAW && !PROTOCOLS.has(proto)) {
    const go = proto === IPPROTO_MPTCP ? ' (for Go programs, consider using "GODEBUG=multipathtcp=0")' : '';
    throw new DumpError(`${where}: Unsupported proto ${proto} for socket ${hex}${go}`);
  }
  if (type !== SOCK_STREAM && type !== SOCK_DGRAM && type !== SOCK_RAW)
    throw new DumpError(
      `${where}: Can't dump ${type} inet socket ${hex}. Only stream, dgram and raw are supported.`,
    );
  const udp = proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE;
  if (type === SOCK_DGRAM && udp && getsockoptInt(fd, SOL_UDP, UDP_CORK) !== 0)
    throw new DumpError(`${where}: Can't dump corked dgram socket ${hex}`);
}

const INET_DIAG_SHUTDOWN = 8;

/**
 * A datagram socket's shutdown state (RCV_SHUTDOWN 1, SEND_SHUTDOWN 2, as sk_shutdown numbers them),
 * which no getsockopt tells: sock_diag does. One query per family and protocol for the whole dump.
 */
function shutdownOf(files: FileTable, family: number, proto: number, ino: number): number {
  const byIno = files.cached(`inet-shutdown:${family}:${proto}`, () => {
    const out = new Map<number, number>();
    for (const m of sockDiag({ family: family === AF_INET ? 'inet' : 'inet6', protocol: proto }))
      if (m.inet) out.set(m.inet.ino, m.attrs.get(INET_DIAG_SHUTDOWN)?.[0] ?? 0);
    return out;
  });
  return byIno.get(ino) ?? 0;
}

function entryFor(file: OpenFile, files: FileTable, id: number): InetSkEntry {
  const fd = files.steal(file.pid, file.fd);
  const where = `pid ${file.pid} fd ${file.fd}`;
  const family = getsockoptInt(fd, SOL_SOCKET, SO_DOMAIN);
  const type = getsockoptInt(fd, SOL_SOCKET, SO_TYPE);
  const proto = getsockoptInt(fd, SOL_SOCKET, SO_PROTOCOL);
  refuseUnsupported(where, fd, Number(file.stat.ino), type, proto);
  const state = type === SOCK_STREAM ? tcpState(fd) : peerOf(fd) ? TCP.ESTABLISHED : TCP.CLOSE;
  const established = type === SOCK_STREAM && isRepairableState(state);
  if (established && !files.options.tcpEstablished)
    throw new DumpError(`${where}: connected TCP socket, consider using --tcp-established option`);
  if (state === TCP.SYN_SENT || state === TCP.SYN_RECV)
    throw new DumpError(`${where}: a TCP connection still being set up (state ${state}): not supported`);
  // A connection closed both ways (or reset) may still hold what the peer sent: a fresh socket
  // would lose it, so such a socket is refused rather than restored empty.
  const unread = type === SOCK_STREAM && state === TCP.CLOSE ? ioctlGetInt(fd, FIONREAD) : 0;
  if (unread > 0)
    throw new DumpError(`${where}: a closed TCP connection with ${unread} bytes not read yet: not supported`);
  const local = fromSockaddr(getsockname(fd));
  const remote = peerOf(fd);
  if (established && local && remote) saveConnection(files, fd, Number(file.stat.ino), family, local, remote);
  const zero = Buffer.alloc(family === AF_INET ? 4 : 16);
  const shutdown = type === SOCK_DGRAM ? shutdownOf(files, family, proto, Number(file.stat.ino)) : 0;
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
    backlog: state === TCP.LISTEN ? backlogOf(files, Number(file.stat.ino), where) : 0,
    src_addr: toWords(local?.addr ?? zero),
    dst_addr: toWords(remote?.addr ?? zero),
    fown: files.owner(file),
    opts: readSocketOptions(fd, where),
    ip_opts: readIpOptions(fd, family, type === SOCK_RAW ? { proto } : undefined),
    ...(type === SOCK_STREAM ? { tcp_opts: readTcpOptions(fd) } : {}),
    ...(family === AF_INET6 ? { v6only: getsockoptInt(fd, SOL_IPV6, IPV6_V6ONLY) !== 0 } : {}),
    ...(shutdown ? { shutdown } : {}),
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
  if (files.options.networkLock !== 'skip' && !lockTreeConnections(files).has(ino)) {
    // Not seen by sock_diag a moment ago (a connection that was still being set up): on its own.
    lockUntilRestore(files, [connectionOf(family, local, remote)]);
  }
  const { entry, inq, outq } = dumpTcpStream(fd);
  files.onUndo(() => repairOff(fd));
  files.addImageEntry('tcp-stream-%x', entry, { inq, outq }, ino);
}

/** Lock connections with the dump's method; unlocked again if the tree goes on after all. */
function lockUntilRestore(files: FileTable, cs: Connection[]): void {
  const lock = files.cached<DumpNetworkLock>('net-lock', () => {
    const l = dumpNetworkLock(files.options.networkLock ?? 'nftables', files.options.runId ?? randomUUID());
    files.onUndo(() => l.release());
    return l;
  });
  lock.lock(cs);
}

/**
 * Every established TCP connection the tree holds, locked in one batch the first time one
 * is met (before any goes into repair mode). Returns the inodes of the sockets locked.
 */
function lockTreeConnections(files: FileTable): Set<number> {
  return files.cached('tcp-lock', () => {
    const inodes = treeSocketInodes(files.pids);
    const locked: Connection[] = [];
    const ids = new Set<number>();
    for (const [diagFamily, family] of [
      ['inet', AF_INET],
      ['inet6', AF_INET6],
    ] as const) {
      for (const m of sockDiag({ family: diagFamily, protocol: IPPROTO_TCP, states: CONNECTED_STATES })) {
        const d = m.inet;
        if (!d || !inodes.has(d.ino)) continue;
        locked.push({
          family: family === AF_INET ? 'ip' : 'ip6',
          local: d.src,
          localPort: d.sport,
          remote: d.dst,
          remotePort: d.dport,
        });
        ids.add(d.ino);
      }
    }
    lockUntilRestore(files, locked);
    return ids;
  });
}

/** Inodes of the sockets the tasks hold (from their fd links). */
function treeSocketInodes(pids: ReadonlySet<number>): Set<number> {
  const out = new Set<number>();
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) out.add(Number(m[1]));
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

export const inetSocketDriver: FdDumpDriver = {
  kind: 'inet socket',
  claims(file) {
    const d = socketDomain(file);
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
