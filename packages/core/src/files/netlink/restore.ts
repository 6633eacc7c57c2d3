// Netlink sockets back from netlink_sk_entry, made by criu-ts before any task runs: a socket of the
// protocol with the socket options, bound to the dumped port id and the first 32 multicast groups,
// the other groups joined one by one, connected to the dumped destination, with the file flags.
//
// The port id is the socket's address: the kernel sends its answers there, and programs check it (an
// answer is for them when its nlmsg_pid is their port id). So the socket is bound to the dumped one
// and a port id another socket took meanwhile stops the restore rather than giving a different one.
import type { NetlinkSkEntry } from '@criu-ts/images';
import {
  AF_NETLINK,
  bind,
  close,
  connect,
  encodeSockaddrNl,
  isSysError,
  NETLINK_ADD_MEMBERSHIP,
  NETLINK_CONNECTED,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_NETLINK,
  setsockopt,
  socket,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { applySocketOptions } from '../socket/options.js';
import { FD_TYPE } from '../table.js';

/** Groups in the bitmap sockaddr_nl carries (bind's groups, connect's destination group). */
const ADDR_GROUPS = 32;

/** Bind to the dumped port id and the groups the address can carry. An unbound socket stays so. */
function bindAsDumped(fd: number, nl: NetlinkSkEntry): void {
  const first = nl.groups?.[0] ?? 0;
  if (nl.portid === 0 && first === 0) return;
  try {
    bind(fd, encodeSockaddrNl(nl.portid, first));
  } catch (e) {
    if (isSysError(e, 'EADDRINUSE'))
      throw new Error(`port id ${nl.portid} is taken by another netlink socket of protocol ${nl.protocol}`);
    throw e;
  }
}

/** Join the groups past the first 32, which only NETLINK_ADD_MEMBERSHIP can name. */
function joinOtherGroups(fd: number, groups: readonly number[]): void {
  groups.forEach((word, w) => {
    if (w === 0) return;
    for (let bit = 0; bit < 32; bit++) {
      if (word & (1 << bit)) setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, w * 32 + bit + 1);
    }
  });
}

/** connect() to the default destination: a port id, or a group given as its bit in the bitmap. */
function connectAsDumped(fd: number, nl: NetlinkSkEntry): void {
  if (nl.state !== NETLINK_CONNECTED) return;
  const group = nl.dst_group > 0 ? 2 ** (nl.dst_group - 1) : 0;
  connect(fd, encodeSockaddrNl(nl.dst_portid, group));
}

function makeSocket(nl: NetlinkSkEntry): number {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, nl.protocol);
  try {
    applySocketOptions(fd, nl.opts);
    bindAsDumped(fd, nl);
    joinOtherGroups(fd, nl.groups ?? []);
    connectAsDumped(fd, nl);
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}

export const netlinkSocketRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.NETLINKSK,
  kind: 'netlink socket',
  check(entry) {
    const nl = entry.nlsk;
    if (!nl)
      throw new RestoreError(`files.img: entry ${entry.id} is a netlink socket without its nlsk field`);
    if (nl.state === NETLINK_CONNECTED && nl.dst_group > ADDR_GROUPS)
      throw new RestoreError(
        `files.img: netlink socket ${nl.ino} is connected to group ${nl.dst_group}, which connect() cannot name`,
      );
  },
  open(entry) {
    const nl = entry.nlsk!;
    try {
      return withFlags(makeSocket(nl), nl.flags);
    } catch (e) {
      throw new RestoreError(
        `netlink socket ${nl.ino} (protocol ${nl.protocol}, port id ${nl.portid}): ${(e as Error).message}`,
      );
    }
  },
};
