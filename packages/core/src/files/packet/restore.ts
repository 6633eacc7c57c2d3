// Packet sockets back from packet_sock_entry, made by criu-ts before any task runs: a socket of the
// type and protocol, bound to the dumped device, then in the order the kernel accepts them (most
// SOL_PACKET settings are refused once a ring exists): TPACKET version, reserve, timestamp source, copy
// threshold, the AUXDATA/ORIGDEV/VNET_HDR/LOSS switches, each membership, the rings, the fanout group;
// then file flags and socket options. A SOCK_PACKET socket is bound by its device's name, which is asked
// of this kernel by index (a renamed device is still the same one).
//
// A VMA mapping the socket (VMA_AREA_SOCKET, shmid = this entry's id) is mapped by restore/mm.ts from
// criu-ts's fd of the socket once its rings exist: socketMapping() below.
import type { FileEntry, PacketRing, PacketSockEntry, VmaEntry } from '@criu-ts/images';
import {
  AF_PACKET,
  bind,
  close,
  encodeSockaddrLl,
  encodeSockaddrPkt,
  interfaceName,
  PACKET_ADD_MEMBERSHIP,
  PACKET_AUXDATA,
  PACKET_COPY_THRESH,
  PACKET_FANOUT,
  PACKET_LOSS,
  PACKET_MAX_ADDR_LEN,
  PACKET_ORIGDEV,
  PACKET_RESERVE,
  PACKET_RX_RING,
  PACKET_TIMESTAMP,
  PACKET_TX_RING,
  PACKET_VERSION,
  PACKET_VNET_HDR,
  SOCK_CLOEXEC,
  SOCK_PACKET,
  SOL_PACKET,
  setsockopt,
  socket,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import { withFlags } from '../fd-flags.js';
import type { FdRestoreDriver } from '../restore-driver.js';
import { applySocketOptions } from '../socket/options.js';
import { FD_TYPE } from '../table.js';

/** struct packet_mreq with room for the longest address (CRIU's packet_mreq_max). */
function mreq(index: number, type: number, addr: Uint8Array): Buffer {
  const b = Buffer.alloc(8 + PACKET_MAX_ADDR_LEN);
  b.writeInt32LE(index, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(addr.length, 6);
  b.set(addr, 8);
  return b;
}

/** struct tpacket_req3 (the kernel reads only tpacket_req's part of it below TPACKET_V3). */
function tpacketReq(r: PacketRing): Buffer {
  const b = Buffer.alloc(28);
  [r.block_size, r.block_nr, r.frame_size, r.frame_nr, r.retire_tmo, r.sizeof_priv, r.features].forEach(
    (v, i) => {
      b.writeUInt32LE(v >>> 0, i * 4);
    },
  );
  return b;
}

/** Each step named, so that a refusal of the kernel says which setting it was. */
function step(what: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`);
  }
}

function makePacketSocket(fd: number, p: PacketSockEntry): void {
  step(`bind to device ${p.ifindex}`, () => bind(fd, encodeSockaddrLl(p.ifindex)));
  const opt = (name: string, id: number, v: number | Buffer) =>
    step(name, () => setsockopt(fd, SOL_PACKET, id, v));
  opt('PACKET_VERSION', PACKET_VERSION, p.version);
  opt('PACKET_RESERVE', PACKET_RESERVE, p.reserve);
  opt('PACKET_TIMESTAMP', PACKET_TIMESTAMP, p.timestamp);
  opt('PACKET_COPY_THRESH', PACKET_COPY_THRESH, p.copy_thresh);
  if (p.aux_data) opt('PACKET_AUXDATA', PACKET_AUXDATA, 1);
  if (p.orig_dev) opt('PACKET_ORIGDEV', PACKET_ORIGDEV, 1);
  if (p.vnet_hdr) opt('PACKET_VNET_HDR', PACKET_VNET_HDR, 1);
  if (p.loss) opt('PACKET_LOSS', PACKET_LOSS, 1);
  for (const m of p.mclist ?? [])
    opt(
      `membership of type ${m.type} on device ${m.index}`,
      PACKET_ADD_MEMBERSHIP,
      mreq(m.index, m.type, m.addr),
    );
  if (p.rx_ring) opt('PACKET_RX_RING', PACKET_RX_RING, tpacketReq(p.rx_ring));
  if (p.tx_ring) opt('PACKET_TX_RING', PACKET_TX_RING, tpacketReq(p.tx_ring));
  if (p.fanout !== undefined) opt(`fanout group ${p.fanout & 0xffff}`, PACKET_FANOUT, p.fanout | 0);
}

/** SOCK_PACKET: bound by the device's name, when it was bound at all. */
function makeSpktSocket(fd: number, p: PacketSockEntry): void {
  if (p.ifindex <= 0) return;
  let name = '';
  step(`name of device ${p.ifindex}`, () => {
    name = interfaceName(fd, p.ifindex);
  });
  step(`bind to ${name}`, () => bind(fd, encodeSockaddrPkt(name)));
}

function open(p: PacketSockEntry): number {
  const fd = socket(AF_PACKET, p.type | SOCK_CLOEXEC, p.protocol);
  try {
    if (p.type === SOCK_PACKET) makeSpktSocket(fd, p);
    else makePacketSocket(fd, p);
    applySocketOptions(fd, p.opts);
    return withFlags(fd, p.flags);
  } catch (e) {
    close(fd);
    throw e;
  }
}

export const packetSocketRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.PACKETSK,
  kind: 'packet socket',
  check(entry) {
    const p = entry.psk;
    if (!p) throw new RestoreError(`files.img: entry ${entry.id} is a packet socket without its psk field`);
    for (const m of p.mclist ?? [])
      if (m.addr.length > PACKET_MAX_ADDR_LEN)
        throw new RestoreError(
          `files.img: packet socket ${p.id} has a ${m.addr.length}-byte membership address (at most ${PACKET_MAX_ADDR_LEN})`,
        );
  },
  open(entry) {
    const p = entry.psk!;
    try {
      return open(p);
    } catch (e) {
      throw new RestoreError(
        `packet socket ${p.id} (type ${p.type}, protocol 0x${p.protocol.toString(16)}): ${(e as Error).message}`,
      );
    }
  },
};

/**
 * Plan time: the socket a VMA_AREA_SOCKET mapping maps must be a packet socket of files.img with rings
 * (its shmid is the entry's id, as CRIU writes it).
 */
export function checkSocketMapping(v: VmaEntry, files: ReadonlyMap<number, FileEntry>, what: string): void {
  const p = files.get(Number(v.shmid))?.psk;
  if (!p) throw new RestoreError(`${what}: maps socket ${v.shmid}, which is no packet socket of files.img`);
  if (!p.rx_ring && !p.tx_ring)
    throw new RestoreError(`${what}: maps packet socket ${v.shmid}, which has no ring to map`);
}
