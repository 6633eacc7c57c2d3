// Inet sockets (TCP and UDP over IPv4 and IPv6): family, type, protocol, state, the local and remote
// address, the listen backlog and the options, read from criu-ts's copy of the socket. Listening,
// bound, connected-UDP and not yet bound sockets are dumped; a TCP connection (established, half
// closed or closing) needs --tcp-established: it is locked and read through TCP repair (tcp.ts).

import { withProcDir } from '@criu-ts/bfd';
import { type InetSkEntry, SkShutdown } from '@criu-ts/images';
import {
  AF_INET,
  AF_INET6,
  FIONREAD,
  getsockname,
  getsockopt,
  getsockoptInt,
  INET_DIAG_SHUTDOWN,
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
  POLLHUP,
  POLLRDHUP,
  pollNow,
  SO_DOMAIN,
  SO_PEERNAME,
  SO_PROTOCOL,
  SO_TYPE,
  SOCK_DGRAM,
  SOCK_RAW,
  SOCK_STREAM,
  SOL_IPV6,
  SOL_SOCKET,
  SOL_UDP,
  SOMAXCONN,
  sockDiag,
  TCP_INFO,
  UDP_CORK,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { type Connection, type DumpNetworkLock, dumpNetworkLock, newRunId } from '../../net-lock/index.js';
import { readSocketOptions } from '../socket/options.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';
import { fromSockaddr, type InetAddress, connectionOf as lockedConnection, toWords } from './address.js';
import { readIpOptions } from './ip-options.js';
import { dumpTcpStream, isConnectionState, repairOn, TCP } from './tcp.js';
import { readTcpOptions } from './tcp-options.js';

/** What the kernel caps a backlog to by default (net.core.somaxconn). */

/** TCP's state (tcpi_state, the first byte of TCP_INFO). */
const tcpState = (fd: number) => getsockopt(fd, IPPROTO_TCP, TCP_INFO, 8)[0] ?? TCP.CLOSE;

/** sock_diag's states mask of the connections --tcp-established dumps (and the lock holds). */
const CONNECTED_STATES = Object.values(TCP)
  .filter(isConnectionState)
  .reduce((mask, s) => mask | (1 << s), 0);

/**
 * The peer's address. SO_PEERNAME, unlike getpeername, also answers for a connection still being set
 * up (SYN_SENT) and one that has ended (CLOSE): the address stays until the socket connects again.
 */
function peerOf(fd: number, family: number) {
  try {
    // The kernel refuses a buffer longer than the address.
    return fromSockaddr(getsockopt(fd, SOL_SOCKET, SO_PEERNAME, family === AF_INET ? 16 : 28));
  } catch (e) {
    if (isSysError(e, 'ENOTCONN')) return undefined;
    throw e;
  }
}

interface DiagInfo {
  /** The listen backlog (sk_max_ack_backlog) for a listener, else the send queue. */
  wqueue: number;
  /** Connections waiting to be accepted for a listener, else the receive queue. */
  rqueue: number;
  /** INET_DIAG_SHUTDOWN: which ways the socket was shut down. */
  shutdown: number;
}

/**
 * What sock_diag tells of the tree's TCP and UDP sockets: one query per family and protocol for all of
 * them. A socket it does not list is closed (TCP sockets leave its tables when they close) or not bound.
 */
function diagOf(files: FileTable, ino: number): DiagInfo | undefined {
  const all = files.cached('inet-diag', () => {
    const out = new Map<number, DiagInfo>();
    for (const family of ['inet', 'inet6'] as const)
      for (const protocol of [IPPROTO_TCP, IPPROTO_UDP])
        for (const m of sockDiag({ family, protocol })) {
          if (!m.inet) continue;
          const shutdown = m.attrs.get(INET_DIAG_SHUTDOWN)?.[0] ?? 0;
          out.set(m.inet.ino, { wqueue: m.inet.wqueue, rqueue: m.inet.rqueue, shutdown });
        }
    return out;
  });
  return all.get(ino);
}

/**
 * Connections the kernel accepted for a listener that the task has not taken yet have no fd and no
 * image: restored, their clients would see a reset. Refused unless --skip-in-flight, as in CRIU. A
 * listener's backlog, which no getsockopt reads back, is sock_diag's wqueue.
 */
function backlogOf(files: FileTable, ino: number, where: string): number {
  const l = diagOf(files, ino);
  if (!l) return SOMAXCONN;
  if (l.rqueue > 0 && !files.options.skipInFlight)
    throw new DumpError(
      `${where}: listening socket ${ino} has ${l.rqueue} connections not accepted yet (in flight), consider using --skip-in-flight option`,
    );
  return l.wqueue;
}

/**
 * The shutdown state: sock_diag's for the sockets it lists; for a closed TCP socket (which it does not
 * list) what poll tells, as CRIU reads it: a read side shut down shows as POLLRDHUP.
 */
function shutdownOf(files: FileTable, fd: number, ino: number, type: number, state: number): number {
  const d = diagOf(files, ino);
  if (d) return d.shutdown;
  if (type !== SOCK_STREAM || state !== TCP.CLOSE) return 0;
  const ev = pollNow(fd, POLLRDHUP | POLLHUP);
  return ev & POLLHUP && ev & POLLRDHUP ? SkShutdown.READ : 0;
}

/**
 * The socket's TCP state and whether it is restored as a connection: connected (or connecting, or
 * half closed), or closed (reset, or closed both ways) with bytes still to be read, which a new socket
 * would lose. A connection needs --tcp-established (dumped through TCP repair) or --tcp-close (then
 * it comes back closed, as CRIU's option makes it).
 */
function connectionOf(fd: number, family: number, type: number, where: string, files: FileTable) {
  if (type !== SOCK_STREAM)
    return { state: peerOf(fd, family) ? TCP.ESTABLISHED : TCP.CLOSE, connection: false };
  const state = tcpState(fd);
  if (state === TCP.SYN_RECV)
    throw new DumpError(`${where}: a TCP connection still being accepted (SYN_RECV): not supported`);
  const unread = state === TCP.CLOSE && peerOf(fd, family) ? ioctlGetInt(fd, FIONREAD) : 0;
  const connection = isConnectionState(state) || unread > 0;
  if (connection && !files.options.tcpEstablished && !files.options.tcpClose)
    throw new DumpError(
      unread > 0
        ? `${where}: a closed TCP connection with ${unread} bytes not read yet, consider using --tcp-established option`
        : `${where}: connected TCP socket, consider using --tcp-established option`,
    );
  return { state, connection };
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

function entryFor(file: OpenFile, files: FileTable, id: number): InetSkEntry {
  const fd = files.steal(file.pid, file.fd);
  const where = `pid ${file.pid} fd ${file.fd}`;
  const ino = Number(file.stat.ino);
  const family = getsockoptInt(fd, SOL_SOCKET, SO_DOMAIN);
  const type = getsockoptInt(fd, SOL_SOCKET, SO_TYPE);
  const proto = getsockoptInt(fd, SOL_SOCKET, SO_PROTOCOL);
  refuseUnsupported(where, fd, ino, type, proto);
  const { state, connection } = connectionOf(fd, family, type, where, files);
  const local = fromSockaddr(getsockname(fd));
  // A closed socket that is not restored as a connection comes back unconnected: no peer.
  const remote = type !== SOCK_STREAM || connection ? peerOf(fd, family) : undefined;
  const shutdown = shutdownOf(files, fd, ino, type, state);
  // With --tcp-close a connection is recorded as it is, and restore makes it closed: no repair, no lock.
  if (connection && local && remote && !files.options.tcpClose)
    saveConnection(files, fd, ino, family, local, remote);
  const zero = Buffer.alloc(family === AF_INET ? 4 : 16);
  return {
    id,
    ino,
    family,
    type,
    proto,
    state,
    src_port: local?.port ?? 0,
    dst_port: remote?.port ?? 0,
    flags: file.flags,
    backlog: state === TCP.LISTEN && type === SOCK_STREAM ? backlogOf(files, ino, where) : 0,
    src_addr: toWords(local?.addr ?? zero),
    dst_addr: toWords(remote?.addr ?? zero),
    fown: files.owner(file),
    opts: readSocketOptions(fd, where),
    ip_opts: readIpOptions(fd, family, type, proto),
    ...(type === SOCK_STREAM ? { tcp_opts: readTcpOptions(fd) } : {}),
    ...(family === AF_INET6 ? { v6only: getsockoptInt(fd, SOL_IPV6, IPV6_V6ONLY) !== 0 } : {}),
    // As CRIU writes it: always for UDP, for TCP when the socket was shut down at all.
    ...(proto === IPPROTO_UDP || shutdown !== 0 ? { shutdown } : {}),
  };
}

/**
 * An established connection: locked (its packets dropped until restore), then read through repair mode
 * (tcp-stream-INO.img). If the tree goes on after all, the lock is lifted.
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
    lockUntilRestore(files, [lockedConnection(family, local, remote)]);
  }
  const { entry, inq, outq } = dumpTcpStream(fd);
  // Out of repair mode again already (a criu-ts killed now leaves the connection as it was); back in
  // it once the tree is killed, so that the socket closes without a word.
  files.onKeep(() => repairOn(fd));
  files.addImageEntry('tcp-stream-%x', entry, { inq, outq }, ino);
}

/** Lock connections with the dump's method; unlocked again if the tree goes on after all. */
function lockUntilRestore(files: FileTable, cs: Connection[]): void {
  const lock = files.cached<DumpNetworkLock>('net-lock', () => {
    const method = files.options.networkLock ?? 'nftables';
    const l = dumpNetworkLock(method, files.options.runId ?? newRunId(), files.pids);
    files.onUndo(() => l.release());
    files.onKeep(() => l.keep());
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
    try {
      withProcDir(pid, (proc) => {
        for (const fd of proc.fds()) {
          try {
            const m = /^socket:\[(\d+)\]$/.exec(proc.readlink(`fd/${fd}`));
            if (m) out.add(Number(m[1]));
          } catch {
            // closed meanwhile
          }
        }
      });
    } catch {
      // gone, or its fds cannot be listed: as before, none of them
    }
  }
  return out;
}

export const inetSocketDriver: FdDumpDriver = {
  kind: 'inet socket',
  dump(file, files) {
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.INETSK,
      isk: entryFor(file, files, id),
    }));
    return { id, type: FD_TYPE.INETSK };
  },
};
