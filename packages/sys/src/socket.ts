// Socket calls the dumper and restorer need, with raw sockaddr Buffers plus encoders/decoders for
// AF_UNIX, AF_INET, AF_INET6, AF_NETLINK and AF_PACKET, and sendmsg/recvmsg with iovecs and SCM_RIGHTS.
import {
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  AF_PACKET,
  AF_UNIX,
  MSG_CMSG_CLOEXEC,
  SCM_RIGHTS,
  SIOCGIFNAME,
  SO_ATTACH_FILTER,
  SO_GET_FILTER,
  SOL_SOCKET,
} from './constants/socket.js';
import { SYS } from './constants/syscalls.js';
import { addressOf, checked, checkedRetry, syscall, withPinned } from './native.js';

/** socket(2). Add SOCK_CLOEXEC / SOCK_NONBLOCK to `type` as needed. */
export function socket(domain: number, type: number, protocol = 0): number {
  return checked(
    'socket',
    () => `domain ${domain}, type ${type}`,
    syscall(SYS.socket, domain, type, protocol),
  );
}

/** socketpair(2): returns both ends. */
export function socketpair(domain: number, type: number, protocol = 0): [number, number] {
  const sv = Buffer.alloc(8);
  checked(
    'socketpair',
    () => `domain ${domain}, type ${type}`,
    syscall(SYS.socketpair, domain, type, protocol, sv),
  );
  return [sv.readInt32LE(0), sv.readInt32LE(4)];
}

/** bind(2) to a raw sockaddr (see encodeSockaddrUn / encodeSockaddrIn / encodeSockaddrIn6). */
export function bind(fd: number, addr: Buffer): void {
  checked('bind', () => `fd ${fd}`, syscall(SYS.bind, fd, addr, addr.length));
}

/** connect(2). Not retried on EINTR: the connection attempt goes on in the background. */
export function connect(fd: number, addr: Buffer): void {
  checked('connect', () => `fd ${fd}`, syscall(SYS.connect, fd, addr, addr.length));
}

/** listen(2). */
export function listen(fd: number, backlog = 128): void {
  checked('listen', () => `fd ${fd}`, syscall(SYS.listen, fd, backlog));
}

/** accept4(2): returns the new fd (flags: SOCK_CLOEXEC, SOCK_NONBLOCK). */
export function accept4(fd: number, flags = 0): number {
  return checkedRetry(
    'accept4',
    () => `fd ${fd}`,
    () => syscall(SYS.accept4, fd, null, null, flags),
  );
}

/** shutdown(2) (SHUT_RD / SHUT_WR / SHUT_RDWR). */
export function shutdown(fd: number, how: number): void {
  checked('shutdown', () => `fd ${fd}`, syscall(SYS.shutdown, fd, how));
}

/** getsockopt(2): the option's bytes (trimmed to the length the kernel reports). */
export function getsockopt(fd: number, level: number, name: number, size = 256): Buffer {
  const val = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size, 0);
  checked(
    'getsockopt',
    () => `fd ${fd}, level ${level}, option ${name}`,
    syscall(SYS.getsockopt, fd, level, name, val, len),
  );
  return val.subarray(0, Math.min(len.readUInt32LE(0), size));
}

/** getsockopt for int-valued options (SO_TYPE, SO_SNDBUF, ...). */
export function getsockoptInt(fd: number, level: number, name: number): number {
  return getsockopt(fd, level, name, 4).readInt32LE(0);
}

/** setsockopt(2) with raw bytes or an int. */
export function setsockopt(fd: number, level: number, name: number, value: Buffer | number): void {
  let v: Buffer;
  if (typeof value === 'number') {
    v = Buffer.alloc(4);
    v.writeInt32LE(value, 0);
  } else {
    v = value;
  }
  checked(
    'setsockopt',
    () => `fd ${fd}, level ${level}, option ${name}`,
    syscall(SYS.setsockopt, fd, level, name, v, v.length),
  );
}

/** BPF_MAXINSNS: the most instructions a classic socket filter has. */
const BPF_MAXINSNS = 4096;

/**
 * The classic BPF filter attached to a socket (SO_ATTACH_FILTER), one u64 per instruction laid out as
 * struct sock_filter (code, jt, jf, k); empty when there is none. SO_GET_FILTER counts its length in
 * instructions, not bytes, which is why getsockopt() above does not fit. An eBPF program
 * (SO_ATTACH_BPF) has no classic form: EACCES.
 */
export function getSocketFilter(fd: number): bigint[] {
  const prog = Buffer.alloc(BPF_MAXINSNS * 8);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(BPF_MAXINSNS, 0);
  checked(
    'getsockopt',
    () => `fd ${fd}, SO_GET_FILTER`,
    syscall(SYS.getsockopt, fd, SOL_SOCKET, SO_GET_FILTER, prog, len),
  );
  return Array.from({ length: len.readUInt32LE(0) }, (_, i) => prog.readBigUInt64LE(i * 8));
}

/** Attach a classic BPF filter (instructions as getSocketFilter returns them). */
export function attachSocketFilter(fd: number, insns: readonly bigint[]): void {
  const prog = Buffer.alloc(insns.length * 8);
  insns.forEach((v, i) => {
    prog.writeBigUInt64LE(v, i * 8);
  });
  withPinned([prog], () => {
    // struct sock_fprog: u16 length, padding, the instructions' address.
    const fprog = Buffer.alloc(16);
    fprog.writeUInt16LE(insns.length, 0);
    fprog.writeBigUInt64LE(addressOf(prog), 8);
    setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog);
  });
}

const SOCKADDR_STORAGE = 128;

function sockName(nr: number, call: string, fd: number): Buffer {
  const addr = Buffer.alloc(SOCKADDR_STORAGE);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(SOCKADDR_STORAGE, 0);
  checked(call, () => `fd ${fd}`, syscall(nr, fd, addr, len));
  return addr.subarray(0, Math.min(len.readUInt32LE(0), SOCKADDR_STORAGE));
}

/** getsockname(2): the raw sockaddr (decode it with decodeSockaddr). */
export function getsockname(fd: number): Buffer {
  return sockName(SYS.getsockname, 'getsockname', fd);
}

/** getpeername(2): the raw sockaddr (decode it with decodeSockaddr). */
export function getpeername(fd: number): Buffer {
  return sockName(SYS.getpeername, 'getpeername', fd);
}

// --- sockaddr codecs ---------------------------------------------------------------------------------

/** A decoded socket address. */
export type SockAddr =
  | {
      family: 'unix';
      /** Path bytes (abstract names without their leading NUL); empty for an unnamed socket. */
      path: Buffer;
      abstract: boolean;
    }
  | { family: 'inet'; address: string; port: number }
  | { family: 'inet6'; address: string; port: number; flowinfo: number; scopeId: number }
  | { family: number; raw: Buffer };

/** Decode a raw sockaddr as returned by getsockname/getpeername/recvmsg. */
export function decodeSockaddr(buf: Buffer): SockAddr {
  if (buf.length < 2) return { family: 0, raw: buf };
  const family = buf.readUInt16LE(0);
  if (family === AF_UNIX) {
    const body = buf.subarray(2);
    if (body.length > 0 && body[0] === 0)
      return { family: 'unix', path: Buffer.from(body.subarray(1)), abstract: true };
    const nul = body.indexOf(0);
    return { family: 'unix', path: Buffer.from(nul < 0 ? body : body.subarray(0, nul)), abstract: false };
  }
  if (family === AF_INET && buf.length >= 8) {
    return { family: 'inet', address: formatIPv4(buf.subarray(4, 8)), port: buf.readUInt16BE(2) };
  }
  if (family === AF_INET6 && buf.length >= 28) {
    return {
      family: 'inet6',
      address: formatIPv6(buf.subarray(8, 24)),
      port: buf.readUInt16BE(2),
      flowinfo: buf.readUInt32BE(4),
      scopeId: buf.readUInt32LE(24),
    };
  }
  return { family, raw: buf };
}

/** sockaddr_un for a path (or an abstract name when `abstract`); length is exact, as bind needs. */
export function encodeSockaddrUn(path: string | Buffer, abstract = false): Buffer {
  const p = typeof path === 'string' ? Buffer.from(path, 'utf8') : path;
  // sun_path is 108 bytes: a pathname needs room for its NUL, an abstract name for its leading NUL.
  const max = 107;
  if (p.length > max) throw new RangeError(`unix socket name too long (${p.length} > ${max} bytes)`);
  const b = Buffer.alloc(2 + (abstract ? 1 : 0) + p.length + (abstract ? 0 : 1));
  b.writeUInt16LE(AF_UNIX, 0);
  p.copy(b, abstract ? 3 : 2);
  return b;
}

/** struct sockaddr_nl: a netlink port id and a bitmap of the first 32 multicast groups. */
export interface SockaddrNl {
  portid: number;
  groups: number;
}

/** sockaddr_nl (12 bytes): for bind, the port id (0: the kernel picks one) and the groups to join. */
export function encodeSockaddrNl(portid: number, groups = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16LE(AF_NETLINK, 0);
  b.writeUInt32LE(portid >>> 0, 4);
  b.writeUInt32LE(groups >>> 0, 8);
  return b;
}

/** A sockaddr_nl as getsockname returns it (port id 0: not bound yet). */
export function decodeSockaddrNl(buf: Buffer): SockaddrNl {
  if (buf.length < 12 || buf.readUInt16LE(0) !== AF_NETLINK)
    throw new TypeError(
      `not a sockaddr_nl (${buf.length} bytes, family ${buf.length >= 2 ? buf.readUInt16LE(0) : '?'})`,
    );
  return { portid: buf.readUInt32LE(4), groups: buf.readUInt32LE(8) };
}

/**
 * sockaddr_ll (20 bytes) for bind: the device index (0: every device) and the protocol, in network
 * order as socket() takes it (0: keep the socket's own).
 */
export function encodeSockaddrLl(ifindex: number, protocol = 0): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16LE(AF_PACKET, 0);
  b.writeUInt16LE(protocol & 0xffff, 2);
  b.writeInt32LE(ifindex, 4);
  return b;
}

/** A sockaddr_ll as getsockname returns it: device index and protocol (network order, as socket() takes it). */
export function decodeSockaddrLl(buf: Buffer): { ifindex: number; protocol: number } {
  if (buf.length < 8 || buf.readUInt16LE(0) !== AF_PACKET)
    throw new TypeError(`not a sockaddr_ll (${buf.length} bytes)`);
  return { ifindex: buf.readInt32LE(4), protocol: buf.readUInt16LE(2) };
}

/** struct sockaddr naming a device, as a SOCK_PACKET socket binds (16 bytes, sa_data holds the name). */
export function encodeSockaddrPkt(device: string): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_PACKET, 0);
  Buffer.from(device, 'latin1').copy(b, 2, 0, 13);
  return b;
}

/** The name of network device `ifindex` (ioctl SIOCGIFNAME), asked through any socket `fd`. */
export function interfaceName(fd: number, ifindex: number): string {
  const ifr = Buffer.alloc(40); // struct ifreq: ifr_name[IFNAMSIZ], then the union (ifr_ifindex)
  ifr.writeInt32LE(ifindex, 16);
  checked('ioctl(SIOCGIFNAME)', () => `ifindex ${ifindex}`, syscall(SYS.ioctl, fd, SIOCGIFNAME, ifr));
  return ifr.subarray(0, 16).toString('latin1').replace(/\0.*$/s, '');
}

/** sockaddr_in (16 bytes). */
export function encodeSockaddrIn(address: string, port: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt16BE(port, 2);
  parseIPv4(address).copy(b, 4);
  return b;
}

/** sockaddr_in6 (28 bytes). */
export function encodeSockaddrIn6(address: string, port: number, flowinfo = 0, scopeId = 0): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  b.writeUInt32BE(flowinfo, 4);
  parseIPv6(address).copy(b, 8);
  b.writeUInt32LE(scopeId, 24);
  return b;
}

/** '127.0.0.1' from 4 bytes. */
export function formatIPv4(b: Buffer): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952 text of a 16-byte IPv6 address ('::1', '::ffff:10.0.0.1', 'fe80::1'). */
export function formatIPv6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(b.subarray(12, 16))}`;
  }
  // Longest run (length >= 2) of zero groups, first one on ties, becomes '::'.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function parseIPv4(s: string): Buffer {
  const parts = s.split('.');
  const bytes = parts.map(Number);
  if (parts.length !== 4 || bytes.some((n, i) => !/^\d{1,3}$/.test(parts[i] ?? '') || n > 255)) {
    throw new TypeError(`invalid IPv4 address: ${s}`);
  }
  return Buffer.from(bytes);
}

function parseIPv6(s: string): Buffer {
  let text = s;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded IPv4 in the last 32 bits.
    const v4 = parseIPv4(text.slice(lastColon + 1));
    tail = [v4.readUInt16BE(0), v4.readUInt16BE(2)];
    text = `${text.slice(0, lastColon + 1)}_`;
  }
  const halves = text.split('::');
  if (halves.length > 2) throw new TypeError(`invalid IPv6 address: ${s}`);
  const parse = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const head = parse(halves[0] ?? '');
  const rest = halves.length === 2 ? parse(halves[1] ?? '') : [];
  const toNums = (xs: string[]): number[] =>
    xs.flatMap((x) => {
      if (x === '_') return tail;
      if (!/^[0-9a-fA-F]{1,4}$/.test(x)) throw new TypeError(`invalid IPv6 address: ${s}`);
      return [Number.parseInt(x, 16)];
    });
  const a = toNums(head);
  const z = toNums(rest);
  const fill = 8 - a.length - z.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) throw new TypeError(`invalid IPv6 address: ${s}`);
  const groups = [...a, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...z];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => {
    b.writeUInt16BE(g, i * 2);
  });
  return b;
}

// --- sendmsg / recvmsg -------------------------------------------------------------------------------

const CMSG_HDR = 16;
const align8 = (n: number): number => (n + 7) & ~7;
/** CMSG_SPACE(n): room a control message with n data bytes takes. */
export const cmsgSpace = (n: number): number => CMSG_HDR + align8(n);

/** One control message. */
export interface Cmsg {
  level: number;
  type: number;
  data: Buffer;
}

/** Encode control messages into a msg_control buffer. */
export function encodeCmsgs(cmsgs: readonly Cmsg[]): Buffer {
  const b = Buffer.alloc(cmsgs.reduce((n, c) => n + cmsgSpace(c.data.length), 0));
  let off = 0;
  for (const c of cmsgs) {
    b.writeBigUInt64LE(BigInt(CMSG_HDR + c.data.length), off);
    b.writeInt32LE(c.level, off + 8);
    b.writeInt32LE(c.type, off + 12);
    c.data.copy(b, off + CMSG_HDR);
    off += cmsgSpace(c.data.length);
  }
  return b;
}

/** Decode a msg_control buffer (its first `len` bytes) into control messages. */
export function decodeCmsgs(control: Buffer, len = control.length): Cmsg[] {
  const out: Cmsg[] = [];
  for (let off = 0; off + CMSG_HDR <= len; ) {
    const clen = Number(control.readBigUInt64LE(off));
    if (clen < CMSG_HDR || off + clen > len) break;
    out.push({
      level: control.readInt32LE(off + 8),
      type: control.readInt32LE(off + 12),
      data: Buffer.from(control.subarray(off + CMSG_HDR, off + clen)),
    });
    off += align8(clen);
  }
  return out;
}

/** SCM_RIGHTS control message carrying fds. */
export function scmRights(fds: readonly number[]): Cmsg {
  const data = Buffer.alloc(fds.length * 4);
  fds.forEach((fd, i) => {
    data.writeInt32LE(fd, i * 4);
  });
  return { level: SOL_SOCKET, type: SCM_RIGHTS, data };
}

// struct msghdr (56 bytes) with an iovec array; returns the buffers that must stay pinned.
function buildMsghdr(
  iov: readonly Buffer[],
  name: Buffer | null,
  control: Buffer | null,
): { hdr: Buffer; iovs: Buffer } {
  const iovs = Buffer.alloc(Math.max(1, iov.length) * 16);
  iov.forEach((b, i) => {
    iovs.writeBigUInt64LE(addressOf(b), i * 16);
    iovs.writeBigUInt64LE(BigInt(b.length), i * 16 + 8);
  });
  const hdr = Buffer.alloc(56);
  if (name) {
    hdr.writeBigUInt64LE(addressOf(name), 0);
    hdr.writeUInt32LE(name.length, 8);
  }
  hdr.writeBigUInt64LE(addressOf(iovs), 16);
  hdr.writeBigUInt64LE(BigInt(iov.length), 24);
  if (control && control.length > 0) {
    hdr.writeBigUInt64LE(addressOf(control), 32);
    hdr.writeBigUInt64LE(BigInt(control.length), 40);
  }
  return { hdr, iovs };
}

export interface SendmsgOptions {
  /** Data, gathered from these buffers in order. */
  iov: readonly Buffer[];
  /** fds to pass with SCM_RIGHTS. */
  fds?: readonly number[];
  /** Other control messages. */
  cmsgs?: readonly Cmsg[];
  /** Destination sockaddr (unconnected datagram sockets). */
  name?: Buffer;
}

/** sendmsg(2). Returns the bytes sent. */
export function sendmsg(fd: number, msg: SendmsgOptions, flags = 0): number {
  const cmsgs = [...(msg.fds && msg.fds.length > 0 ? [scmRights(msg.fds)] : []), ...(msg.cmsgs ?? [])];
  const control = cmsgs.length > 0 ? encodeCmsgs(cmsgs) : null;
  const { hdr, iovs } = buildMsghdr(msg.iov, msg.name ?? null, control);
  return withPinned([msg.iov, msg.name, control, iovs], () =>
    checkedRetry(
      'sendmsg',
      () => `fd ${fd}`,
      () => syscall(SYS.sendmsg, fd, hdr, flags),
    ),
  );
}

export interface RecvmsgOptions {
  /** Buffers to scatter the data into. */
  iov: readonly Buffer[];
  /** Most fds expected in SCM_RIGHTS (sizes the control buffer); default 253 (SCM_MAX_FD). */
  maxFds?: number;
  /** Extra control-buffer bytes for other messages (credentials, ...). */
  extraControl?: number;
  /** Also return the sender's address. */
  wantName?: boolean;
}

export interface RecvmsgResult {
  /** Bytes received (0 at end of stream). */
  bytes: number;
  /** msg_flags (MSG_TRUNC, MSG_CTRUNC, ...). */
  flags: number;
  /** fds received with SCM_RIGHTS (now owned by this process). */
  fds: number[];
  /** Every control message, SCM_RIGHTS included. */
  cmsgs: Cmsg[];
  name?: Buffer;
}

/** recvmsg(2). flags defaults to MSG_CMSG_CLOEXEC so received fds do not leak into exec'd programs. */
export function recvmsg(fd: number, opts: RecvmsgOptions, flags = MSG_CMSG_CLOEXEC): RecvmsgResult {
  const control = Buffer.alloc(cmsgSpace(4 * (opts.maxFds ?? 253)) + (opts.extraControl ?? 0));
  const name = opts.wantName ? Buffer.alloc(SOCKADDR_STORAGE) : null;
  const { hdr, iovs } = buildMsghdr(opts.iov, name, control);
  const bytes = withPinned([opts.iov, name, control, iovs], () =>
    checkedRetry(
      'recvmsg',
      () => `fd ${fd}`,
      () => syscall(SYS.recvmsg, fd, hdr, flags),
    ),
  );
  const cmsgs = decodeCmsgs(control, Number(hdr.readBigUInt64LE(40)));
  const fds: number[] = [];
  for (const c of cmsgs) {
    if (c.level !== SOL_SOCKET || c.type !== SCM_RIGHTS) continue;
    for (let o = 0; o + 4 <= c.data.length; o += 4) fds.push(c.data.readInt32LE(o));
  }
  const result: RecvmsgResult = { bytes, flags: hdr.readInt32LE(48), fds, cmsgs };
  if (name) result.name = name.subarray(0, hdr.readUInt32LE(8));
  return result;
}

/** send(2) (sendto without an address). */
export function send(fd: number, buf: Buffer, flags = 0): number {
  return checkedRetry(
    'send',
    () => `fd ${fd}`,
    () => syscall(SYS.sendto, fd, buf, buf.length, flags, null, 0),
  );
}

/** recv(2) (recvfrom without an address) into buf; returns the bytes received. */
export function recv(fd: number, buf: Buffer, flags = 0): number {
  return checkedRetry(
    'recv',
    () => `fd ${fd}`,
    () => syscall(SYS.recvfrom, fd, buf, buf.length, flags, null, null),
  );
}
