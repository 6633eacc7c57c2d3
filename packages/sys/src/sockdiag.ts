// NETLINK_SOCK_DIAG: ask the kernel about sockets by inode (what /proc/PID/fd only names as
// "socket:[ino]"): unix peers and names, inet addresses and states, queue lengths, netlink port ids
// and multicast groups, packet sockets' bindings, memberships, rings and fanout groups.
import {
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  AF_PACKET,
  AF_UNIX,
  INET_DIAG_NOCOOKIE,
  NDIAG_PROTO_ALL,
  NETLINK_DIAG_FLAGS,
  NETLINK_DIAG_GROUPS,
  NETLINK_SOCK_DIAG,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  PACKET_DIAG_FANOUT,
  PACKET_DIAG_INFO,
  PACKET_DIAG_MCLIST,
  PACKET_DIAG_RX_RING,
  PACKET_DIAG_TX_RING,
  PACKET_DIAG_UID,
  SOCK_CLOEXEC,
  SOCK_DIAG_BY_FAMILY,
  SOCK_RAW,
  UNIX_DIAG_ICONS,
  UNIX_DIAG_NAME,
  UNIX_DIAG_PEER,
  UNIX_DIAG_RQLEN,
  UNIX_DIAG_SHUTDOWN,
  UNIX_DIAG_UID,
  UNIX_DIAG_VFS,
} from './constants/socket.js';
import { SysError } from './errno.js';
import { close } from './files.js';
import { formatIPv4, formatIPv6, recv, send, socket } from './socket.js';

/** unix_diag_req: which unix sockets to report and which attributes to attach. */
export interface UnixDiagRequest {
  family: 'unix';
  /** Bit mask of socket states (1 << TCP_ESTABLISHED | 1 << TCP_LISTEN ...); default all. */
  states?: number;
  /** One socket by inode (no dump); omit to dump every unix socket of the namespace. */
  ino?: number;
  /** UDIAG_SHOW_* bits. */
  show: number;
  /** Socket cookie from an earlier answer; default "any". */
  cookie?: [number, number];
}

/** inet_diag_req_v2: TCP/UDP/... sockets of one address family, optionally one by its 4-tuple. */
export interface InetDiagRequest {
  family: 'inet' | 'inet6';
  /** IPPROTO_TCP, IPPROTO_UDP, ... */
  protocol: number;
  /** Bit mask of TCP states; default all. */
  states?: number;
  /** Bits 1 << (INET_DIAG_x - 1) of extra attributes. */
  ext?: number;
  /** Exact lookup (no dump) when given. Ports are host order; addresses raw 4 or 16 bytes. */
  id?: {
    sport: number;
    dport: number;
    src: Buffer;
    dst: Buffer;
    ifindex?: number;
    cookie?: [number, number];
  };
}

/**
 * netlink_diag_req: the bound netlink sockets of the namespace (the kernel only answers dumps; an
 * unbound socket is not listed).
 */
export interface NetlinkDiagRequest {
  family: 'netlink';
  /** NETLINK_ROUTE, ...; default NDIAG_PROTO_ALL (every protocol). */
  protocol?: number;
  /** NDIAG_SHOW_* bits. */
  show: number;
}

/**
 * packet_diag_req: every packet socket of the namespace (the kernel only answers dumps, bound or not,
 * SOCK_PACKET ones too).
 */
export interface PacketDiagRequest {
  family: 'packet';
  /** PACKET_SHOW_* bits. */
  show: number;
}

export type SockDiagRequest = UnixDiagRequest | InetDiagRequest | NetlinkDiagRequest | PacketDiagRequest;

/** One answer message: the fixed family-specific header, decoded, plus raw attributes by type. */
export interface SockDiagMessage {
  /** nlmsg_type (SOCK_DIAG_BY_FAMILY). */
  type: number;
  flags: number;
  seq: number;
  /** The fixed part (unix_diag_msg, 16 bytes / inet_diag_msg, 72 bytes / netlink_diag_msg, 28 bytes). */
  header: Buffer;
  /** rtattr payloads by attribute type (UNIX_DIAG_* / INET_DIAG_* / NETLINK_DIAG_*). */
  attrs: Map<number, Buffer>;
  unix?: UnixDiagMsg;
  inet?: InetDiagMsg;
  netlink?: NetlinkDiagMsg;
  packet?: PacketDiagMsg;
}

export interface UnixDiagMsg {
  type: number;
  state: number;
  ino: number;
  cookie: [number, number];
}

export interface InetDiagMsg {
  family: number;
  state: number;
  timer: number;
  retrans: number;
  sport: number;
  dport: number;
  src: string;
  dst: string;
  ifindex: number;
  cookie: [number, number];
  expires: number;
  rqueue: number;
  wqueue: number;
  uid: number;
  ino: number;
}

export interface NetlinkDiagMsg {
  protocol: number;
  /**
   * NETLINK_CONNECTED once connect() set a default destination; TCP_CLOSE (7, the value every new
   * socket starts with) if it never did, NETLINK_UNCONNECTED after a disconnect.
   */
  state: number;
  portid: number;
  dstPortid: number;
  dstGroup: number;
  ino: number;
}

export interface PacketDiagMsg {
  /** SOCK_RAW, SOCK_DGRAM or SOCK_PACKET. */
  type: number;
  /** The protocol the socket receives (ETH_P_*), host order; 0 when it receives nothing. */
  protocol: number;
  ino: number;
  cookie: [number, number];
}

export interface SockDiagOptions {
  /** An existing NETLINK_SOCK_DIAG socket (e.g. one created inside the target's network namespace). */
  fd?: number;
}

const UNIX_DIAG_REQ_SIZE = 24;
const INET_DIAG_REQ_V2_SIZE = 56;
const NETLINK_DIAG_REQ_SIZE = 20;
const PACKET_DIAG_REQ_SIZE = 20;
/** Size of the fixed header of an answer, by request family. */
const MSG_SIZE = { unix: 16, inet: 72, netlink: 28, packet: 16 } as const;
type DiagKind = keyof typeof MSG_SIZE;
const RECV_SIZE = 64 * 1024;
let seqCounter = 1;

function encodeUnixReq(r: UnixDiagRequest): Buffer {
  const b = Buffer.alloc(UNIX_DIAG_REQ_SIZE);
  b[0] = AF_UNIX;
  b.writeUInt32LE((r.states ?? 0xffffffff) >>> 0, 4);
  b.writeUInt32LE(r.ino ?? 0, 8);
  b.writeUInt32LE(r.show >>> 0, 12);
  const cookie = r.cookie ?? [INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE];
  b.writeUInt32LE(cookie[0] >>> 0, 16);
  b.writeUInt32LE(cookie[1] >>> 0, 20);
  return b;
}

function encodeInetReq(r: InetDiagRequest): Buffer {
  const b = Buffer.alloc(INET_DIAG_REQ_V2_SIZE);
  b[0] = r.family === 'inet' ? AF_INET : AF_INET6;
  b[1] = r.protocol;
  b[2] = r.ext ?? 0;
  b.writeUInt32LE((r.states ?? 0xffffffff) >>> 0, 4);
  // struct inet_diag_sockid at offset 8: ports big-endian, addresses as in sockaddr.
  const cookie = r.id?.cookie ?? [INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE];
  if (r.id) {
    b.writeUInt16BE(r.id.sport, 8);
    b.writeUInt16BE(r.id.dport, 10);
    r.id.src.copy(b, 12, 0, 16);
    r.id.dst.copy(b, 28, 0, 16);
    b.writeUInt32LE(r.id.ifindex ?? 0, 44);
  }
  b.writeUInt32LE(cookie[0] >>> 0, 48);
  b.writeUInt32LE(cookie[1] >>> 0, 52);
  return b;
}

function encodeNetlinkReq(r: NetlinkDiagRequest): Buffer {
  const b = Buffer.alloc(NETLINK_DIAG_REQ_SIZE);
  b[0] = AF_NETLINK;
  b[1] = r.protocol ?? NDIAG_PROTO_ALL;
  b.writeUInt32LE(r.show >>> 0, 8);
  // ndiag_ino and the cookie are not looked at: the kernel has no lookup of one netlink socket.
  return b;
}

function encodePacketReq(r: PacketDiagRequest): Buffer {
  const b = Buffer.alloc(PACKET_DIAG_REQ_SIZE);
  b[0] = AF_PACKET;
  b.writeUInt32LE(r.show >>> 0, 8);
  // pdiag_ino and the cookie are not looked at: the kernel has no lookup of one packet socket.
  b.writeUInt32LE(INET_DIAG_NOCOOKIE, 12);
  b.writeUInt32LE(INET_DIAG_NOCOOKIE, 16);
  return b;
}

function isDump(r: SockDiagRequest): boolean {
  if (r.family === 'netlink' || r.family === 'packet') return true;
  return r.family === 'unix' ? r.ino === undefined : r.id === undefined;
}

const kindOf = (r: SockDiagRequest): DiagKind =>
  r.family === 'unix' || r.family === 'netlink' || r.family === 'packet' ? r.family : 'inet';

function encodeBody(r: SockDiagRequest): Buffer {
  if (r.family === 'unix') return encodeUnixReq(r);
  if (r.family === 'netlink') return encodeNetlinkReq(r);
  if (r.family === 'packet') return encodePacketReq(r);
  return encodeInetReq(r);
}

/** Build the netlink request message for `r` with sequence number `seq`. */
export function encodeSockDiagRequest(r: SockDiagRequest, seq: number): Buffer {
  const body = encodeBody(r);
  const msg = Buffer.alloc(NLMSG_HDRLEN + body.length);
  msg.writeUInt32LE(msg.length, 0);
  msg.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
  msg.writeUInt16LE(NLM_F_REQUEST | (isDump(r) ? NLM_F_DUMP : 0), 6);
  msg.writeUInt32LE(seq >>> 0, 8);
  body.copy(msg, NLMSG_HDRLEN);
  return msg;
}

const align4 = (n: number): number => (n + 3) & ~3;

/** rtattrs of one message body, starting at `off`: payload Buffers by type (last one wins). */
export function parseRtattrs(buf: Buffer, off: number, end: number): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff; // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (len < 4 || off + len > end) break;
    attrs.set(type, Buffer.from(buf.subarray(off + 4, off + len)));
    off += align4(len);
  }
  return attrs;
}

function decodeUnixMsg(h: Buffer): UnixDiagMsg {
  return {
    type: h[1] ?? 0,
    state: h[2] ?? 0,
    ino: h.readUInt32LE(4),
    cookie: [h.readUInt32LE(8), h.readUInt32LE(12)],
  };
}

function decodeInetMsg(h: Buffer): InetDiagMsg {
  const family = h[0] ?? 0;
  const addr = (off: number) =>
    family === AF_INET ? formatIPv4(h.subarray(off, off + 4)) : formatIPv6(h.subarray(off, off + 16));
  return {
    family,
    state: h[1] ?? 0,
    timer: h[2] ?? 0,
    retrans: h[3] ?? 0,
    sport: h.readUInt16BE(4),
    dport: h.readUInt16BE(6),
    src: addr(8),
    dst: addr(24),
    ifindex: h.readUInt32LE(40),
    cookie: [h.readUInt32LE(44), h.readUInt32LE(48)],
    expires: h.readUInt32LE(52),
    rqueue: h.readUInt32LE(56),
    wqueue: h.readUInt32LE(60),
    uid: h.readUInt32LE(64),
    ino: h.readUInt32LE(68),
  };
}

function decodeNetlinkMsg(h: Buffer): NetlinkDiagMsg {
  return {
    protocol: h[2] ?? 0,
    state: h[3] ?? 0,
    portid: h.readUInt32LE(4),
    dstPortid: h.readUInt32LE(8),
    dstGroup: h.readUInt32LE(12),
    ino: h.readUInt32LE(16),
  };
}

function decodePacketMsg(h: Buffer): PacketDiagMsg {
  return {
    type: h[1] ?? 0,
    protocol: h.readUInt16LE(2),
    ino: h.readUInt32LE(4),
    cookie: [h.readUInt32LE(8), h.readUInt32LE(12)],
  };
}

/** The fixed header decoded into the field of its family. */
function decodeHeader(kind: DiagKind, header: Buffer): Partial<SockDiagMessage> {
  if (kind === 'unix') return { unix: decodeUnixMsg(header) };
  if (kind === 'netlink') return { netlink: decodeNetlinkMsg(header) };
  if (kind === 'packet') return { packet: decodePacketMsg(header) };
  return { inet: decodeInetMsg(header) };
}

// Parse one recv() worth of netlink messages. Returns true once the answer is complete.
function parseBatch(
  buf: Buffer,
  len: number,
  seq: number,
  family: DiagKind,
  out: SockDiagMessage[],
  dump: boolean,
): boolean {
  const fixed = MSG_SIZE[family];
  for (let off = 0; off + NLMSG_HDRLEN <= len; ) {
    const mlen = buf.readUInt32LE(off);
    if (mlen < NLMSG_HDRLEN || off + mlen > len) break;
    const type = buf.readUInt16LE(off + 4);
    const flags = buf.readUInt16LE(off + 6);
    const mseq = buf.readUInt32LE(off + 8);
    const body = off + NLMSG_HDRLEN;
    const next = off + align4(mlen);
    if (mseq !== seq) {
      off = next; // a stale answer to an earlier request on a shared socket
      continue;
    }
    if (type === NLMSG_ERROR || type === NLMSG_DONE) {
      const err = mlen >= NLMSG_HDRLEN + 4 ? buf.readInt32LE(body) : 0;
      if (err < 0) throw new SysError('sock_diag', -err, family);
      return true;
    }
    const header = Buffer.from(buf.subarray(body, body + fixed));
    out.push({
      type,
      flags,
      seq: mseq,
      header,
      attrs: parseRtattrs(buf, body + align4(fixed), off + mlen),
      ...decodeHeader(family, header),
    });
    off = next;
  }
  // An exact lookup is answered by one message, without NLMSG_DONE.
  return !dump && out.length > 0;
}

/**
 * Send one SOCK_DIAG_BY_FAMILY request and collect the answer: every message of a dump (multi-part,
 * until NLMSG_DONE) or the single message of an exact lookup. A negative NLMSG_ERROR (ENOENT for an
 * unknown inode, ...) throws SysError with call 'sock_diag'.
 */
export function sockDiag(request: SockDiagRequest, opts: SockDiagOptions = {}): SockDiagMessage[] {
  const fd = opts.fd ?? socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  try {
    const seq = seqCounter++ >>> 0;
    send(fd, encodeSockDiagRequest(request, seq));
    const buf = Buffer.alloc(RECV_SIZE);
    const out: SockDiagMessage[] = [];
    const family = kindOf(request);
    const dump = isDump(request);
    for (;;) {
      const n = recv(fd, buf);
      if (n === 0) return out;
      if (parseBatch(buf, n, seq, family, out, dump)) return out;
    }
  } finally {
    if (opts.fd === undefined) close(fd);
  }
}

/** Decoded unix_diag attributes (those the request's `show` bits asked for). */
export interface UnixDiagAttrs {
  /** Bound name: a pathname without its NUL, or an abstract name with its leading NUL byte. */
  name?: Buffer;
  /** Inode and device of the socket file a bound pathname socket has. */
  vfs?: { ino: number; dev: number };
  /** Inode of the peer socket. */
  peer?: number;
  /** Inodes of connections waiting to be accepted (listening sockets). */
  icons?: number[];
  /** Receive-queue length (or backlog) and send-queue length (or max backlog). */
  rqlen?: { rqueue: number; wqueue: number };
  /** RCV_SHUTDOWN / SEND_SHUTDOWN bits. */
  shutdown?: number;
  uid?: number;
}

/** Decode the common UNIX_DIAG_* attributes of a message. */
export function decodeUnixDiagAttrs(attrs: Map<number, Buffer>): UnixDiagAttrs {
  const out: UnixDiagAttrs = {};
  const name = attrs.get(UNIX_DIAG_NAME);
  // The kernel reports a pathname with the NUL it counts in the address length; drop it. Abstract names
  // (leading NUL) are raw bytes, kept as they are.
  if (name)
    out.name = name.length > 0 && name[0] !== 0 && name[name.length - 1] === 0 ? name.subarray(0, -1) : name;
  const vfs = attrs.get(UNIX_DIAG_VFS);
  if (vfs && vfs.length >= 8) out.vfs = { ino: vfs.readUInt32LE(0), dev: vfs.readUInt32LE(4) };
  const peer = attrs.get(UNIX_DIAG_PEER);
  if (peer && peer.length >= 4) out.peer = peer.readUInt32LE(0);
  const icons = attrs.get(UNIX_DIAG_ICONS);
  if (icons) out.icons = Array.from({ length: icons.length >> 2 }, (_, i) => icons.readUInt32LE(i * 4));
  const rq = attrs.get(UNIX_DIAG_RQLEN);
  if (rq && rq.length >= 8) out.rqlen = { rqueue: rq.readUInt32LE(0), wqueue: rq.readUInt32LE(4) };
  const sh = attrs.get(UNIX_DIAG_SHUTDOWN);
  if (sh && sh.length >= 1) out.shutdown = sh[0] ?? 0;
  const uid = attrs.get(UNIX_DIAG_UID);
  if (uid && uid.length >= 4) out.uid = uid.readUInt32LE(0);
  return out;
}

/** Decoded netlink_diag attributes (those the request's `show` bits asked for). */
export interface NetlinkDiagAttrs {
  /** Multicast group membership bitmap, 32 groups per word (group g is bit (g-1) % 32 of word (g-1) / 32). */
  groups?: number[];
  /** NDIAG_FLAG_* bits. */
  flags?: number;
}

/** Decode the NETLINK_DIAG_GROUPS and NETLINK_DIAG_FLAGS attributes of a message. */
export function decodeNetlinkDiagAttrs(attrs: Map<number, Buffer>): NetlinkDiagAttrs {
  const out: NetlinkDiagAttrs = {};
  const groups = attrs.get(NETLINK_DIAG_GROUPS);
  if (groups) out.groups = Array.from({ length: groups.length >> 2 }, (_, i) => groups.readUInt32LE(i * 4));
  const flags = attrs.get(NETLINK_DIAG_FLAGS);
  if (flags && flags.length >= 4) out.flags = flags.readUInt32LE(0);
  return out;
}

/** PACKET_DIAG_INFO: struct packet_diag_info. */
export interface PacketDiagInfo {
  /** The device the socket is bound to; 0 for every device. */
  index: number;
  /** TPACKET_V1..V3. */
  version: number;
  reserve: number;
  copyThresh: number;
  /** PACKET_TIMESTAMP's SOF_TIMESTAMPING_* bits. */
  tstamp: number;
  /** PDI_* bits. */
  flags: number;
}

/** One PACKET_DIAG_MCLIST entry: struct packet_diag_mclist. */
export interface PacketDiagMclist {
  index: number;
  /** How many times the membership was added (each PACKET_ADD_MEMBERSHIP of the same one counts). */
  count: number;
  /** PACKET_MR_*. */
  type: number;
  /** The address, mr_alen bytes of it. */
  addr: Buffer;
}

/** PACKET_DIAG_RX_RING / PACKET_DIAG_TX_RING: struct packet_diag_ring. */
export interface PacketDiagRing {
  blockSize: number;
  blockNr: number;
  frameSize: number;
  frameNr: number;
  retireTmo: number;
  sizeofPriv: number;
  features: number;
}

/** Decoded packet_diag attributes (those the request's `show` bits asked for). */
export interface PacketDiagAttrs {
  info?: PacketDiagInfo;
  mclist?: PacketDiagMclist[];
  rxRing?: PacketDiagRing;
  txRing?: PacketDiagRing;
  /** The fanout group: id | mode << 16 (its flags are not in it; getsockopt(PACKET_FANOUT) has them). */
  fanout?: number;
  uid?: number;
}

/** sizeof(struct packet_diag_mclist): index, count, type, alen, addr[MAX_ADDR_LEN]. */
const PACKET_MCLIST_SIZE = 44;

function decodePacketRing(b: Buffer | undefined): PacketDiagRing | undefined {
  if (!b || b.length < 28) return undefined;
  const u = (i: number) => b.readUInt32LE(i * 4);
  return {
    blockSize: u(0),
    blockNr: u(1),
    frameSize: u(2),
    frameNr: u(3),
    retireTmo: u(4),
    sizeofPriv: u(5),
    features: u(6),
  };
}

/** Decode the PACKET_DIAG_* attributes of a message. */
export function decodePacketDiagAttrs(attrs: Map<number, Buffer>): PacketDiagAttrs {
  const out: PacketDiagAttrs = {};
  const info = attrs.get(PACKET_DIAG_INFO);
  if (info && info.length >= 24) {
    const u = (i: number) => info.readUInt32LE(i * 4);
    out.info = { index: u(0), version: u(1), reserve: u(2), copyThresh: u(3), tstamp: u(4), flags: u(5) };
  }
  const mc = attrs.get(PACKET_DIAG_MCLIST);
  if (mc) {
    out.mclist = [];
    for (let off = 0; off + PACKET_MCLIST_SIZE <= mc.length; off += PACKET_MCLIST_SIZE) {
      const alen = Math.min(mc.readUInt16LE(off + 10), PACKET_MCLIST_SIZE - 12);
      out.mclist.push({
        index: mc.readUInt32LE(off),
        count: mc.readUInt32LE(off + 4),
        type: mc.readUInt16LE(off + 8),
        addr: Buffer.from(mc.subarray(off + 12, off + 12 + alen)),
      });
    }
  }
  const rx = decodePacketRing(attrs.get(PACKET_DIAG_RX_RING));
  if (rx) out.rxRing = rx;
  const tx = decodePacketRing(attrs.get(PACKET_DIAG_TX_RING));
  if (tx) out.txRing = tx;
  const fanout = attrs.get(PACKET_DIAG_FANOUT);
  if (fanout && fanout.length >= 4) out.fanout = fanout.readUInt32LE(0);
  const uid = attrs.get(PACKET_DIAG_UID);
  if (uid && uid.length >= 4) out.uid = uid.readUInt32LE(0);
  return out;
}
