import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AF_INET,
  AF_NETLINK,
  AF_PACKET,
  AF_UNIX,
  attachSocketFilter,
  bind,
  close,
  connect,
  decodeNetlinkDiagAttrs,
  decodePacketDiagAttrs,
  decodeSockaddr,
  decodeSockaddrLl,
  decodeSockaddrNl,
  decodeUnixDiagAttrs,
  encodeSockaddrIn,
  encodeSockaddrLl,
  encodeSockaddrNl,
  encodeSockaddrPkt,
  encodeSockaddrUn,
  fstat,
  getFdOfProcess,
  getSocketFilter,
  getsockname,
  IPPROTO_TCP,
  interfaceName,
  listen,
  NDIAG_SHOW_FLAGS,
  NDIAG_SHOW_GROUPS,
  NETLINK_ADD_MEMBERSHIP,
  NETLINK_CONNECTED,
  NETLINK_ROUTE,
  PACKET_ADD_MEMBERSHIP,
  PACKET_FANOUT,
  PACKET_FANOUT_LB,
  PACKET_MR_PROMISC,
  PACKET_RX_RING,
  PACKET_SHOW_FANOUT,
  PACKET_SHOW_INFO,
  PACKET_SHOW_MCLIST,
  PACKET_SHOW_RING_CFG,
  PACKET_VERSION,
  readlink,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_PACKET,
  SOCK_RAW,
  SOCK_STREAM,
  SOL_NETLINK,
  SOL_PACKET,
  SysError,
  setsockopt,
  sockDiag,
  socket,
  socketpair,
  TCP_LISTEN,
  TPACKET_V2,
  UDIAG_SHOW_NAME,
  UDIAG_SHOW_PEER,
  UDIAG_SHOW_RQLEN,
  UDIAG_SHOW_VFS,
  UNIX_DIAG_PEER,
  write,
} from '../src/index.js';
import { cleanup, cleanupProcesses, compileFixture, makeTempDir, startReadyTarget } from './helpers.js';

let dir: string;
let bin: string;
const fds: number[] = [];
const track = (...xs: number[]): void => {
  fds.push(...xs);
};

beforeAll(() => {
  dir = makeTempDir();
  bin = compileFixture('target', dir);
});
afterEach(() => {
  for (const fd of fds.splice(0)) close(fd);
  cleanupProcesses();
});
afterAll(cleanup);

const ino = (fd: number): number => Number(fstat(fd).ino);
const NETLINK_USERSOCK = 2;

describe('sock_diag', () => {
  it('finds a unix socketpair by inode, with its peer and queue', () => {
    const [a, b] = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC);
    track(a, b);
    write(a, Buffer.from('12345'));
    const msgs = sockDiag({ family: 'unix', ino: ino(b), show: UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN });
    expect(msgs).toHaveLength(1);
    const m = msgs[0];
    expect(m?.unix?.ino).toBe(ino(b));
    expect(m?.unix?.type).toBe(SOCK_STREAM);
    expect(m?.attrs.get(UNIX_DIAG_PEER)?.readUInt32LE(0)).toBe(ino(a));
    const attrs = decodeUnixDiagAttrs(m?.attrs ?? new Map());
    expect(attrs.peer).toBe(ino(a));
    expect(attrs.rqlen?.rqueue).toBe(5); // b has 5 unread bytes
  });

  it('dumps every unix socket (multi-part answer until NLMSG_DONE)', () => {
    const pairs = Array.from({ length: 50 }, () => socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
    for (const [a, b] of pairs) track(a, b);
    const msgs = sockDiag({ family: 'unix', show: UDIAG_SHOW_PEER });
    const found = new Map(msgs.map((m) => [m.unix?.ino, decodeUnixDiagAttrs(m.attrs).peer]));
    for (const [a, b] of pairs) {
      expect(found.get(ino(a))).toBe(ino(b));
      expect(found.get(ino(b))).toBe(ino(a));
    }
  });

  it('reports a bound socket name and its file inode', () => {
    const p = path.join(makeTempDir(), 'listening.sock');
    const s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC);
    track(s);
    bind(s, encodeSockaddrUn(p));
    listen(s);
    const [m] = sockDiag({ family: 'unix', ino: ino(s), show: UDIAG_SHOW_NAME | UDIAG_SHOW_VFS });
    const attrs = decodeUnixDiagAttrs(m?.attrs ?? new Map());
    expect(attrs.name?.toString()).toBe(p);
    expect(attrs.vfs?.ino).toBe(Number(fs.statSync(p).ino));
  });

  it('finds the socketpair of another process through pidfd_getfd', async () => {
    const t = await startReadyTarget(bin, dir);
    const inode = (fd: number) => Number(/^socket:\[(\d+)\]$/.exec(readlink(`/proc/${t.pid}/fd/${fd}`))?.[1]);
    const copy = getFdOfProcess(t.pid, 10);
    track(copy);
    expect(ino(copy)).toBe(inode(10));
    const [m] = sockDiag({ family: 'unix', ino: ino(copy), show: UDIAG_SHOW_PEER });
    expect(decodeUnixDiagAttrs(m?.attrs ?? new Map()).peer).toBe(inode(11));
  });

  it('dumps TCP listeners', () => {
    const s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
    track(s);
    bind(s, encodeSockaddrIn('127.0.0.1', 0));
    listen(s);
    const addr = decodeSockaddr(getsockname(s));
    const port = addr.family === 'inet' ? addr.port : -1;
    const msgs = sockDiag({ family: 'inet', protocol: IPPROTO_TCP, states: 1 << TCP_LISTEN });
    const m = msgs.find((x) => x.inet?.ino === ino(s));
    expect(m?.inet).toMatchObject({ family: AF_INET, state: TCP_LISTEN, sport: port, src: '127.0.0.1' });
  });

  it('an unknown inode is a SysError', () => {
    let err: unknown;
    try {
      sockDiag({ family: 'unix', ino: 0x7ffffff0, show: 0 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).call).toBe('sock_diag');
    expect((err as SysError).code).toBe('ENOENT');
  });

  it('lists a bound netlink socket with its port id, groups past the first 32 and its destination', () => {
    const s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    const u = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_USERSOCK);
    track(s, u);
    bind(s, encodeSockaddrNl(0, 1 << 27));
    setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, 36);
    const { portid } = decodeSockaddrNl(getsockname(s));
    expect(portid).not.toBe(0);
    connect(u, encodeSockaddrNl(portid, 1 << 2));
    const all = sockDiag({ family: 'netlink', show: NDIAG_SHOW_GROUPS | NDIAG_SHOW_FLAGS });
    const find = (fd: number) => all.find((m) => m.netlink?.ino === ino(fd))!;
    expect(find(s).netlink).toMatchObject({ protocol: NETLINK_ROUTE, portid, state: 7 });
    expect(decodeNetlinkDiagAttrs(find(s).attrs)).toMatchObject({ groups: [1 << 27, 1 << 3], flags: 0 });
    expect(find(u).netlink).toMatchObject({ state: NETLINK_CONNECTED, dstPortid: portid, dstGroup: 3 });
  });

  it('lists packet sockets with their device, version, memberships, rings and fanout group', () => {
    const ethPIp = 0x0008; // htons(ETH_P_IP)
    const s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, ethPIp);
    const spkt = socket(AF_PACKET, SOCK_PACKET | SOCK_CLOEXEC, 0x0300);
    track(s, spkt);
    bind(s, encodeSockaddrLl(1));
    setsockopt(s, SOL_PACKET, PACKET_VERSION, TPACKET_V2);
    const mreq = Buffer.alloc(16);
    mreq.writeInt32LE(1, 0);
    mreq.writeUInt16LE(PACKET_MR_PROMISC, 4);
    setsockopt(s, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq);
    setsockopt(s, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq);
    const req = Buffer.alloc(28);
    [4096, 2, 1024, 8].forEach((v, i) => {
      req.writeUInt32LE(v, i * 4);
    });
    setsockopt(s, SOL_PACKET, PACKET_RX_RING, req);
    const group = 1000 + (process.pid % 50000);
    setsockopt(s, SOL_PACKET, PACKET_FANOUT, group | (PACKET_FANOUT_LB << 16));
    bind(spkt, encodeSockaddrPkt('lo'));
    const show = PACKET_SHOW_INFO | PACKET_SHOW_MCLIST | PACKET_SHOW_RING_CFG | PACKET_SHOW_FANOUT;
    const all = sockDiag({ family: 'packet', show });
    const find = (fd: number) => all.find((m) => m.packet?.ino === ino(fd))!;
    expect(find(s).packet).toMatchObject({ type: SOCK_DGRAM, protocol: 0x0800 });
    const attrs = decodePacketDiagAttrs(find(s).attrs);
    expect(attrs.info).toMatchObject({ index: 1, version: TPACKET_V2 });
    expect(attrs.mclist).toEqual([{ index: 1, count: 2, type: PACKET_MR_PROMISC, addr: Buffer.alloc(0) }]);
    expect(attrs.rxRing).toMatchObject({ blockSize: 4096, blockNr: 2, frameSize: 1024, frameNr: 8 });
    expect(attrs.txRing).toBeUndefined();
    expect(attrs.fanout).toBe(group | (PACKET_FANOUT_LB << 16));
    expect(find(spkt).packet).toMatchObject({ type: SOCK_PACKET, protocol: 3 });
    expect(decodePacketDiagAttrs(find(spkt).attrs).info?.index).toBe(1);
    expect(interfaceName(s, 1)).toBe('lo');
    expect(decodeSockaddrLl(getsockname(s))).toEqual({ ifindex: 1, protocol: ethPIp });
  });
});

describe('socket filters', () => {
  it('a classic BPF filter reads back as attached; none is empty', () => {
    const [a, b] = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC);
    track(a, b);
    expect(getSocketFilter(a)).toEqual([]);
    // ld len; ret #0x40000 (BPF_LD|BPF_W|BPF_LEN = 0x80, BPF_RET|BPF_K = 0x06), as struct sock_filter
    const insns = [0x80n, 0x06n | (0x40000n << 32n)];
    attachSocketFilter(a, insns);
    expect(getSocketFilter(a)).toEqual(insns);
  });
});
