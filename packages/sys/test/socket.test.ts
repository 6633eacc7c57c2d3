import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  accept4,
  bind,
  close,
  connect,
  decodeSockaddr,
  encodeSockaddrIn,
  encodeSockaddrIn6,
  encodeSockaddrUn,
  formatIPv6,
  fstat,
  getpeername,
  getsockname,
  getsockopt,
  getsockoptInt,
  listen,
  pipe2,
  read,
  recv,
  recvmsg,
  SO_RCVBUF,
  SO_TYPE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_STREAM,
  SOL_SOCKET,
  send,
  sendmsg,
  setsockopt,
  socket,
  socketpair,
  write,
} from '../src/index.js';
import { cleanup, makeTempDir } from './helpers.js';

const fds: number[] = [];
const track = (...xs: number[]): void => {
  fds.push(...xs);
};
afterEach(() => {
  for (const fd of fds.splice(0)) {
    try {
      close(fd);
    } catch {
      // closed by the test
    }
  }
  cleanup();
});

describe('sendmsg / recvmsg', () => {
  it('passes fds with SCM_RIGHTS and scatters data over iovecs', () => {
    const [a, b] = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC);
    track(a, b);
    const [pr, pw] = pipe2();
    track(pr, pw);
    const sent = sendmsg(a, { iov: [Buffer.from('hello '), Buffer.from('world')], fds: [pw, pr] });
    expect(sent).toBe(11);
    const p1 = Buffer.alloc(4);
    const p2 = Buffer.alloc(16);
    const got = recvmsg(b, { iov: [p1, p2], maxFds: 4 });
    track(...got.fds);
    expect(got.bytes).toBe(11);
    expect(Buffer.concat([p1, p2.subarray(0, 7)]).toString()).toBe('hello world');
    expect(got.fds).toHaveLength(2);
    const [w2, r2] = got.fds as [number, number];
    expect(fstat(w2).ino).toBe(fstat(pw).ino);
    write(w2, Buffer.from('via passed fd'));
    const buf = Buffer.alloc(32);
    expect(buf.toString('utf8', 0, read(r2, buf))).toBe('via passed fd');
  });

  it('returns the sender address of a datagram', () => {
    const dir = makeTempDir();
    const rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC);
    const tx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC);
    track(rx, tx);
    bind(rx, encodeSockaddrUn(path.join(dir, 'rx')));
    bind(tx, encodeSockaddrUn('criu-ts-test-tx', true));
    sendmsg(tx, { iov: [Buffer.from('dgram')], name: encodeSockaddrUn(path.join(dir, 'rx')) });
    const res = recvmsg(rx, { iov: [Buffer.alloc(64)], wantName: true });
    expect(res.bytes).toBe(5);
    const from = decodeSockaddr(res.name as Buffer);
    expect(from).toEqual({ family: 'unix', path: Buffer.from('criu-ts-test-tx'), abstract: true });
  });
});

describe('names and options', () => {
  it('getsockname / getpeername over TCP on loopback', () => {
    const srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
    track(srv);
    bind(srv, encodeSockaddrIn('127.0.0.1', 0));
    listen(srv);
    const addr = decodeSockaddr(getsockname(srv));
    expect(addr.family).toBe('inet');
    if (addr.family !== 'inet') return;
    expect(addr.address).toBe('127.0.0.1');
    expect(addr.port).toBeGreaterThan(0);
    const cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
    track(cli);
    connect(cli, encodeSockaddrIn('127.0.0.1', addr.port));
    const acc = accept4(srv, SOCK_CLOEXEC);
    track(acc);
    expect(decodeSockaddr(getpeername(cli))).toEqual(addr);
    expect(decodeSockaddr(getpeername(acc))).toEqual(decodeSockaddr(getsockname(cli)));
    expect(send(cli, Buffer.from('ping'))).toBe(4);
    const b = Buffer.alloc(8);
    expect(b.toString('utf8', 0, recv(acc, b))).toBe('ping');
    expect(getsockoptInt(cli, SOL_SOCKET, SO_TYPE)).toBe(SOCK_STREAM);
    setsockopt(cli, SOL_SOCKET, SO_RCVBUF, 65536);
    expect(getsockoptInt(cli, SOL_SOCKET, SO_RCVBUF)).toBe(131072); // the kernel doubles it
    expect(getsockopt(cli, SOL_SOCKET, SO_TYPE).length).toBe(4);
  });

  it('unix pathname sockets', () => {
    const dir = makeTempDir();
    const p = path.join(dir, 'sock');
    const s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC);
    track(s);
    bind(s, encodeSockaddrUn(p));
    expect(fs.statSync(p).isSocket()).toBe(true);
    expect(decodeSockaddr(getsockname(s))).toEqual({ family: 'unix', path: Buffer.from(p), abstract: false });
    const [a, b] = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC);
    track(a, b);
    expect(decodeSockaddr(getsockname(a))).toEqual({
      family: 'unix',
      path: Buffer.alloc(0),
      abstract: false,
    });
    expect(() => encodeSockaddrUn('x'.repeat(108))).toThrow(RangeError);
  });

  it('sockaddr_in6 codec', () => {
    const cases: [string, string][] = [
      ['::1', '::1'],
      ['::', '::'],
      ['fe80::1:2', 'fe80::1:2'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
      ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['1:0:3:4:5:6:7:8', '1:0:3:4:5:6:7:8'],
    ];
    for (const [input, text] of cases) {
      const sa = encodeSockaddrIn6(input, 8080, 0, 3);
      expect(sa.readUInt16LE(0)).toBe(AF_INET6);
      expect(decodeSockaddr(sa)).toEqual({
        family: 'inet6',
        address: text,
        port: 8080,
        flowinfo: 0,
        scopeId: 3,
      });
    }
    expect(formatIPv6(Buffer.alloc(16))).toBe('::');
    expect(() => encodeSockaddrIn6('1::2::3', 1)).toThrow(TypeError);
    expect(() => encodeSockaddrIn6('1:2:3', 1)).toThrow(TypeError);
    expect(() => encodeSockaddrIn('256.1.1.1', 1)).toThrow(TypeError);
    expect(decodeSockaddr(Buffer.from([99, 0, 1, 2]))).toEqual({
      family: 99,
      raw: Buffer.from([99, 0, 1, 2]),
    });
  });
});
