import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AF_INET,
  AF_NETLINK,
  AF_UNIX,
  attachSocketFilter,
  bind,
  close,
  connect,
  decodeNetlinkDiagAttrs,
  decodeSockaddr,
  decodeSockaddrNl,
  decodeUnixDiagAttrs,
  encodeSockaddrIn,
  encodeSockaddrNl,
  encodeSockaddrUn,
  fstat,
  getFdOfProcess,
  getSocketFilter,
  getsockname,
  IPPROTO_TCP,
  listen,
  NDIAG_SHOW_FLAGS,
  NDIAG_SHOW_GROUPS,
  NETLINK_ADD_MEMBERSHIP,
  NETLINK_CONNECTED,
  NETLINK_ROUTE,
  readlink,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOCK_STREAM,
  SOL_NETLINK,
  SysError,
  setsockopt,
  sockDiag,
  socket,
  socketpair,
  TCP_LISTEN,
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
