// Packet sockets (AF_PACKET: SOCK_RAW, SOCK_DGRAM and the old SOCK_PACKET; files.img type PACKETSK,
// packet_sock_entry): type, protocol, bound device, TPACKET version, reserve, timestamp source, copy
// threshold, the AUXDATA/ORIGDEV/VNET_HDR/LOSS switches, memberships (promiscuous, multicast...), the
// rings' geometry and the fanout group, from sock_diag (one query per dump, as CRIU collects them), with
// the file flags and socket options of criu-ts's copy of the socket.
//
// A ring the task mapped is a VMA of the socket (mm/vmas.ts asks socketMappingId() here for its
// shmid, CRIU's VMA_AREA_SOCKET): restore makes the ring again and maps it from the new socket.
//
// Let go, as CRIU lets them go: packets queued on the socket or sitting in its rings (a capture
// socket loses packets whenever it falls behind; the kernel counts those as drops), and the counters
// of PACKET_STATISTICS. Refused, never dropped: what the image cannot carry (a fanout program, the
// switches packet_sock_entry has no field for, a device that is gone), a fanout group shared with a
// socket outside the dumped tree, a socket of another network namespace, and a mapping of part of a
// ring (the kernel maps rings whole only).
import { ProcDir } from '@criu-ts/bfd';
import type { PacketMclist, PacketRing, PacketSockEntry } from '@criu-ts/images';
import {
  decodePacketDiagAttrs,
  getsockopt,
  getsockoptInt,
  PACKET_FANOUT,
  PACKET_FANOUT_CBPF,
  PACKET_FANOUT_EBPF,
  PACKET_IGNORE_OUTGOING,
  PACKET_MR_ALLMULTI,
  PACKET_MR_MULTICAST,
  PACKET_MR_PROMISC,
  PACKET_MR_UNICAST,
  PACKET_QDISC_BYPASS,
  PACKET_SHOW_FANOUT,
  PACKET_SHOW_INFO,
  PACKET_SHOW_MCLIST,
  PACKET_SHOW_RING_CFG,
  PACKET_TX_HAS_OFF,
  PACKET_VNET_HDR_SZ,
  PAGE_SIZE,
  type PacketDiagAttrs,
  type PacketDiagMsg,
  type PacketDiagRing,
  PDI_AUXDATA,
  PDI_LOSS,
  PDI_ORIGDEV,
  PDI_VNETHDR,
  SK_MEMINFO_VARS,
  SO_MEMINFO,
  SOCK_PACKET,
  SOL_PACKET,
  SOL_SOCKET,
  sockDiag,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { readSocketOptions } from '../socket/options.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

type PacketSocketInfo = PacketDiagMsg & PacketDiagAttrs;

/** The size of the virtio-net header PACKET_VNET_HDR gives (struct virtio_net_hdr). */
const VNET_HDR_LEN = 10;
const PAGE = BigInt(PAGE_SIZE);

/** Every packet socket of criu-ts's network namespace, by inode (one sock_diag dump per criu-ts dump). */
function packetSockets(files: FileTable): Map<number, PacketSocketInfo> {
  return files.cached('packet-diag', () => {
    const out = new Map<number, PacketSocketInfo>();
    const show = PACKET_SHOW_INFO | PACKET_SHOW_MCLIST | PACKET_SHOW_FANOUT | PACKET_SHOW_RING_CFG;
    let answer: ReturnType<typeof sockDiag>;
    try {
      answer = sockDiag({ family: 'packet', show });
    } catch (e) {
      throw new DumpError(
        `sock_diag cannot list packet sockets (${(e as Error).message}): this kernel needs CONFIG_PACKET_DIAG (the packet_diag module)`,
      );
    }
    for (const m of answer) {
      if (m.packet) out.set(m.packet.ino, { ...m.packet, ...decodePacketDiagAttrs(m.attrs) });
    }
    return out;
  });
}

/** What this dump wrote of each packet socket, by inode: its files.img id and its rings' bytes. */
interface Dumped {
  id: number;
  ringBytes: bigint;
  what: string;
}
const dumpedSockets = (files: FileTable) => files.cached('packet-dumped', () => new Map<number, Dumped>());

/** A 16-bit protocol number in network order, as socket() takes it and packet_sock_entry keeps it. */
const htons = (v: number) => ((v & 0xff) << 8) | ((v >> 8) & 0xff);

/** A SOL_PACKET option, or undefined where the socket has none (SOCK_PACKET, an older kernel). */
function packetOpt(own: number, name: number): number | undefined {
  try {
    return getsockoptInt(own, SOL_PACKET, name);
  } catch {
    return undefined;
  }
}

/**
 * The memberships in the order they were added (the kernel lists the newest first), so that adding them
 * again in image order makes the same list.
 */
function memberships(info: PacketSocketInfo, what: string): PacketMclist[] {
  const out: PacketMclist[] = [];
  for (const m of [...(info.mclist ?? [])].reverse()) {
    if (![PACKET_MR_MULTICAST, PACKET_MR_PROMISC, PACKET_MR_ALLMULTI, PACKET_MR_UNICAST].includes(m.type))
      throw new DumpError(`${what}: unknown membership type ${m.type} (device ${m.index}): not supported`);
    // One entry per PACKET_ADD_MEMBERSHIP: the kernel counts repeats, and each needs its own drop.
    for (let i = 0; i < m.count; i++) out.push({ index: m.index, type: m.type, addr: m.addr });
  }
  return out;
}

const ring = (r: PacketDiagRing | undefined): PacketRing | undefined =>
  r && {
    block_size: r.blockSize,
    block_nr: r.blockNr,
    frame_size: r.frameSize,
    frame_nr: r.frameNr,
    retire_tmo: r.retireTmo,
    sizeof_priv: r.sizeofPriv,
    features: r.features,
  };

const ringBytes = (r: PacketDiagRing | undefined) => (r ? BigInt(r.blockSize) * BigInt(r.blockNr) : 0n);

/**
 * PACKET_FANOUT as getsockopt gives it (id | mode << 16 | flags << 24; sock_diag leaves the flags out),
 * which setsockopt takes back as it is. A group whose other members are not dumped is refused once
 * every task is (files.later).
 */
function fanoutOf(own: number, info: PacketSocketInfo, files: FileTable, what: string): number | undefined {
  if (info.fanout === undefined) return undefined;
  const value = getsockoptInt(own, SOL_PACKET, PACKET_FANOUT) >>> 0;
  const id = value & 0xffff;
  const mode = (value >>> 16) & 0xff;
  if (mode === PACKET_FANOUT_CBPF || mode === PACKET_FANOUT_EBPF)
    throw new DumpError(
      `${what}: fanout group ${id} spreads packets with a BPF program, which cannot be read back: not supported`,
    );
  files.later(() => {
    const dumped = dumpedSockets(files);
    for (const [ino, other] of packetSockets(files)) {
      if (other.fanout === undefined || (other.fanout & 0xffff) !== id || dumped.has(ino)) continue;
      throw new DumpError(
        `${what}: fanout group ${id} is shared with packet socket ${ino}, which is not in the dumped tree: not supported`,
      );
    }
  });
  return value;
}

/** The switches packet_sock_entry has no field for: refused when on, as they would come back off. */
function checkLostOptions(own: number, vnetHdr: boolean, what: string): void {
  const lost: Array<[number, string]> = [
    [PACKET_QDISC_BYPASS, 'PACKET_QDISC_BYPASS'],
    [PACKET_TX_HAS_OFF, 'PACKET_TX_HAS_OFF'],
    [PACKET_IGNORE_OUTGOING, 'PACKET_IGNORE_OUTGOING'],
  ];
  for (const [name, label] of lost) {
    if (packetOpt(own, name))
      throw new DumpError(`${what} has ${label} on, which the image cannot keep: not supported`);
  }
  const hdr = packetOpt(own, PACKET_VNET_HDR_SZ);
  if (vnetHdr && hdr !== undefined && hdr !== VNET_HDR_LEN)
    throw new DumpError(
      `${what} has a ${hdr}-byte virtio-net header (PACKET_VNET_HDR_SZ), which the image cannot keep: not supported`,
    );
}

/** The socket's network namespace: criu-ts's own (sock_diag only lists those), in ids-PID.img's numbering. */
function netnsId(files: FileTable): number {
  return files.cached('packet-netns', () => files.nsIds.get(ProcDir.self().readlink('ns/net')).id);
}

function entryFor(file: OpenFile, files: FileTable, id: number): PacketSockEntry {
  const ino = Number(file.stat.ino);
  const where = `pid ${file.pid} fd ${file.fd}`;
  const what = `${where}: packet socket ${ino}`;
  const info = packetSockets(files).get(ino);
  if (!info) throw new DumpError(`${what} is of another network namespace than criu-ts's: not supported yet`);
  const own = files.steal(file.pid, file.fd);
  const i = info.info;
  if (!i) throw new DumpError(`${what}: sock_diag gave no PACKET_DIAG_INFO`);
  if (i.index > 0x7fffffff)
    throw new DumpError(`${what} is bound to a network device that is gone: refused, it cannot be restored`);
  const flag = (bit: number) => (i.flags & bit) !== 0;
  const spkt = info.type === SOCK_PACKET;
  if (!spkt) checkLostOptions(own, flag(PDI_VNETHDR), what);
  // SO_MEMINFO's first counter, SK_MEMINFO_RMEM_ALLOC: received packets not read yet.
  const queued = getsockopt(own, SOL_SOCKET, SO_MEMINFO, 4 * SK_MEMINFO_VARS).readUInt32LE(0);
  if (queued > 0)
    files.options.log?.(
      `${what}: ${queued} bytes of received packets are not kept (a network drops them too)`,
    );
  const entry: PacketSockEntry = {
    id,
    type: info.type,
    protocol: htons(info.protocol),
    flags: file.flags,
    ifindex: i.index,
    fown: files.owner(file),
    opts: readSocketOptions(own, where),
    version: i.version,
    reserve: i.reserve,
    aux_data: flag(PDI_AUXDATA),
    orig_dev: flag(PDI_ORIGDEV),
    vnet_hdr: flag(PDI_VNETHDR),
    loss: flag(PDI_LOSS),
    timestamp: i.tstamp,
    copy_thresh: i.copyThresh,
  };
  const mclist = memberships(info, what);
  if (mclist.length) entry.mclist = mclist;
  const fanout = fanoutOf(own, info, files, what);
  if (fanout !== undefined) entry.fanout = fanout;
  const rx = ring(info.rxRing);
  if (rx) entry.rx_ring = rx;
  const tx = ring(info.txRing);
  if (tx) entry.tx_ring = tx;
  entry.ns_id = netnsId(files);
  dumpedSockets(files).set(ino, { id, ringBytes: ringBytes(info.rxRing) + ringBytes(info.txRing), what });
  return entry;
}

export const packetSocketDriver: FdDumpDriver = {
  kind: 'packet socket',
  dump(file, files) {
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.PACKETSK,
      psk: entryFor(file, files, id),
    }));
    return { id, type: FD_TYPE.PACKETSK };
  },
};

/** What mm/vmas.ts needs of a VMA mapping a socket: its bounds, offset and the socket's inode. */
export interface SocketMapping {
  start: bigint;
  end: bigint;
  pgoff: bigint;
  ino: bigint;
  where: string;
}

/**
 * The files.img id of the packet socket a VMA maps (its rings), for the VMA's shmid. The socket must be
 * dumped already, as an fd of this task or of one dumped before it; and the VMA must be the whole of
 * its rings from offset 0, as mmap() of a packet socket only makes it.
 */
export function socketMappingId(files: FileTable, m: SocketMapping): number {
  const sock = dumpedSockets(files).get(Number(m.ino));
  if (!sock)
    throw new DumpError(
      `${m.where}: mmap-ed socket ${m.ino} is not a packet socket open in this task or in one dumped before it: not supported`,
    );
  const len = m.end - m.start;
  if (m.pgoff !== 0n || len !== sock.ringBytes)
    throw new DumpError(
      `${m.where}: maps ${len / PAGE} pages at offset ${m.pgoff} of the ${sock.ringBytes / PAGE}-page rings of ${sock.what}; only whole rings can be mapped again: not supported`,
    );
  return sock.id;
}
