// Netlink sockets (files.img type NETLINKSK, netlink_sk_entry): protocol, bound port id, multicast
// groups, default destination, file flags and socket options, from sock_diag (one query per dump) and
// criu-ts's copy of the socket.
//
// What cannot come back is refused, never dropped: messages queued on the socket (answers and
// notifications not read yet; only the kernel could send them again), a dump request half answered
// (the kernel would not resume it), and the SOL_NETLINK flags sock_diag reports (NETLINK_PKTINFO,
// NETLINK_NO_ENOBUFS...), which netlink_sk_entry has no field for. NETLINK_EXT_ACK and
// NETLINK_GET_STRICT_CHK are not in the image either and are let go, as CRIU does: they only add
// detail to error messages and checks to dump requests, which a program must do without on kernels
// older than them anyway.
import type { NetlinkSkEntry } from '@criu-ts/images';
import {
  decodeNetlinkDiagAttrs,
  decodeSockaddrNl,
  getsockname,
  getsockopt,
  getsockoptInt,
  NDIAG_FLAG_BROADCAST_ERROR,
  NDIAG_FLAG_CAP_ACK,
  NDIAG_FLAG_CB_RUNNING,
  NDIAG_FLAG_LISTEN_ALL_NSID,
  NDIAG_FLAG_NO_ENOBUFS,
  NDIAG_FLAG_PKTINFO,
  NDIAG_SHOW_FLAGS,
  NDIAG_SHOW_GROUPS,
  type NetlinkDiagAttrs,
  type NetlinkDiagMsg,
  SK_MEMINFO_VARS,
  SO_MEMINFO,
  SO_PROTOCOL,
  SOL_SOCKET,
  sockDiag,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { readSocketOptions } from '../socket/options.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

type NetlinkSocketInfo = NetlinkDiagMsg & NetlinkDiagAttrs;

/** The flags a restored socket would lose, with what the task would see differently. */
const LOST_FLAGS: ReadonlyArray<[flag: number, what: string]> = [
  [NDIAG_FLAG_PKTINFO, 'NETLINK_PKTINFO (its messages would come without their group)'],
  [NDIAG_FLAG_BROADCAST_ERROR, 'NETLINK_BROADCAST_ERROR (failed broadcasts would go unreported)'],
  [NDIAG_FLAG_NO_ENOBUFS, 'NETLINK_NO_ENOBUFS (it would get ENOBUFS it asked not to get)'],
  [NDIAG_FLAG_LISTEN_ALL_NSID, 'NETLINK_LISTEN_ALL_NSID (it would miss events of other namespaces)'],
  [NDIAG_FLAG_CAP_ACK, 'NETLINK_CAP_ACK (its acknowledgements would carry the whole request)'],
];

/** Every bound netlink socket of this network namespace, by inode (one sock_diag dump per criu-ts dump). */
function netlinkSockets(files: FileTable): Map<number, NetlinkSocketInfo> {
  return files.cached('netlink-diag', () => {
    const out = new Map<number, NetlinkSocketInfo>();
    for (const m of sockDiag({ family: 'netlink', show: NDIAG_SHOW_GROUPS | NDIAG_SHOW_FLAGS })) {
      if (m.netlink) out.set(m.netlink.ino, { ...m.netlink, ...decodeNetlinkDiagAttrs(m.attrs) });
    }
    return out;
  });
}

/**
 * What sock_diag says of the socket. A socket it does not list was never bound: no port id, no groups,
 * nothing received. Unless it is bound in another network namespace, which sock_diag does not see.
 */
function infoOf(files: FileTable, own: number, ino: number, what: string): NetlinkSocketInfo | undefined {
  const info = netlinkSockets(files).get(ino);
  if (info) return info;
  const { portid } = decodeSockaddrNl(getsockname(own));
  if (portid !== 0)
    throw new DumpError(
      `${what} is bound (port id ${portid}) in another network namespace: not supported yet`,
    );
  return undefined;
}

/** Refuse a socket whose state would not come back whole. */
function checkRestorable(own: number, info: NetlinkSocketInfo | undefined, what: string): void {
  const flags = info?.flags ?? 0;
  if (flags & NDIAG_FLAG_CB_RUNNING)
    throw new DumpError(
      `${what} is in the middle of a dump request: refused, the rest of the answer would be lost`,
    );
  // SO_MEMINFO's first counter, SK_MEMINFO_RMEM_ALLOC: the bytes queued for the task to read.
  const queued = getsockopt(own, SOL_SOCKET, SO_MEMINFO, 4 * SK_MEMINFO_VARS).readUInt32LE(0);
  if (queued > 0)
    throw new DumpError(`${what} has unread data (${queued} bytes queued): refused, it cannot be restored`);
  for (const [flag, name] of LOST_FLAGS) {
    if (flags & flag) throw new DumpError(`${what} has ${name}, which the image cannot keep: not supported`);
  }
}

/** The group bitmap without its trailing empty words (the kernel reports every group of the protocol). */
function joinedGroups(groups: readonly number[] = []): number[] {
  const out = [...groups];
  while (out.length > 0 && out[out.length - 1] === 0) out.pop();
  return out;
}

function entryFor(file: OpenFile, files: FileTable, id: number): NetlinkSkEntry {
  const ino = Number(file.stat.ino);
  const own = files.steal(file.pid, file.fd);
  const where = `pid ${file.pid} fd ${file.fd}`;
  const protocol = getsockoptInt(own, SOL_SOCKET, SO_PROTOCOL);
  const what = `${where}: netlink socket ${ino} (protocol ${protocol})`;
  const info = infoOf(files, own, ino, what);
  checkRestorable(own, info, what);
  const groups = joinedGroups(info?.groups);
  return {
    id,
    ino,
    protocol,
    state: info?.state ?? 0,
    flags: file.flags,
    portid: info?.portid ?? 0,
    ...(groups.length > 0 ? { groups } : {}),
    dst_portid: info?.dstPortid ?? 0,
    dst_group: info?.dstGroup ?? 0,
    fown: files.owner(file),
    opts: readSocketOptions(own, where),
  };
}

export const netlinkSocketDriver: FdDumpDriver = {
  kind: 'netlink socket',
  dump(file, files) {
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.NETLINKSK,
      nlsk: entryFor(file, files, id),
    }));
    return { id, type: FD_TYPE.NETLINKSK };
  },
};
