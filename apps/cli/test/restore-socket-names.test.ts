// Sockets whose names restore cannot simply bind again, and the corners of datagram sockets: a name
// relative to the directory it was bound from, a name unlinked since (a ghost unix socket, with
// clients connected to it), a name taken by another socket since, a name whose directory was removed
// too; a datagram socket connected to itself, one whose pair was closed with datagrams still queued,
// a bound stream socket neither listening nor connected; a UDP socket shut down for writing, one bound
// to an address only IP_FREEBIND allowed; raw sockets with their options (ICMP filters, IP_HDRINCL).
// The task checks them itself after restore.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDumpKillRestore,
  PYTHON,
  readLines,
  startCommand,
  tempDir,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

const SOCKETS_PY = `
import errno, os, signal, socket, sys
out = open(sys.argv[1], 'a', buffering=1)
d = sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
U, DG, ST = socket.AF_UNIX, socket.SOCK_DGRAM, socket.SOCK_STREAM
# relative names, bound from a directory that is not the cwd later
os.makedirs(d + '/rel'); os.chdir(d + '/rel')
rl = socket.socket(U, ST); rl.bind('rel.sock'); rl.listen(4)
rd = socket.socket(U, DG); rd.bind('sub.d.sock')
os.chdir(d)
# a datagram server whose name was unlinked, two clients connected to it
gs = socket.socket(U, DG); gs.bind(d + '/ghost.sock')
gc = [socket.socket(U, DG) for _ in range(2)]
for c in gc: c.connect(d + '/ghost.sock')
os.unlink(d + '/ghost.sock')
# a name taken by another socket since: 'taken.sock' is s1's again, s2 keeps the name unlinked
s1 = socket.socket(U, DG); s1.bind(d + '/taken.sock'); os.rename(d + '/taken.sock', d + '/tmp.sock')
s2 = socket.socket(U, DG); s2.bind(d + '/taken.sock'); c2 = socket.socket(U, DG); c2.connect(d + '/taken.sock')
os.rename(d + '/tmp.sock', d + '/taken.sock')
# a name in a directory removed too, with a client
os.makedirs(d + '/gone'); ds = socket.socket(U, DG); ds.bind(d + '/gone/s.sock')
dc = socket.socket(U, DG); dc.connect(d + '/gone/s.sock'); os.unlink(d + '/gone/s.sock'); os.rmdir(d + '/gone')
# a datagram socket bound and connected to itself
me = socket.socket(U, DG); me.bind(d + '/me.sock'); me.connect(d + '/me.sock')
# a datagram pair whose other end was closed with two datagrams queued
pa, pb = socket.socketpair(U, DG); pb.send(b'one'); pb.send(b'two'); pb.close()
# a stream socket bound (abstract name) but neither listening nor connected
un = socket.socket(U, ST); un.bind('\\0criu-ts-unconn-%d' % os.getpid())
# UDP: shut down for writing; bound to an address that is not here, with IP_FREEBIND since turned off
us = socket.socket(socket.AF_INET, DG); us.bind(('127.0.0.1', 0)); us.connect(us.getsockname()); us.shutdown(socket.SHUT_WR)
fb = socket.socket(socket.AF_INET6, DG); fb.setsockopt(socket.SOL_IP, 15, 1)
fb.bind(('2001:db8::ff00:42:8329', 0)); fb.setsockopt(socket.SOL_IP, 15, 0)
fbname = fb.getsockname()
# raw sockets: an ICMP filter, a header written by the task, an IPv6 one
ri = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); ri.setsockopt(255, 1, (1 << 13).to_bytes(4, 'little'))
rh = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP); rh.setsockopt(socket.SOL_IP, 3, 1)
r6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
r6.setsockopt(58, 1, bytes([0xff]) + bytes(31))
out.write('READY\\n')
signal.sigwait([signal.SIGUSR1])
def check(name, f):
    try: ok = f()
    except Exception as e: out.write('FAIL %s %r\\n' % (name, e)); return
    out.write(('OK ' if ok else 'FAIL ') + name + '\\n')
def relative():
    os.chdir(d + '/rel')
    c = socket.socket(U, ST); c.connect('rel.sock'); a, _ = rl.accept(); c.send(b'hi')
    x = socket.socket(U, DG); x.sendto(b'dg', 'sub.d.sock')
    return rl.getsockname() == 'rel.sock' and rd.getsockname() == 'sub.d.sock' and a.recv(8) == b'hi' and rd.recv(8) == b'dg'
check('relative', relative)
def ghost():
    for i, c in enumerate(gc): c.send(b'g%d' % i)
    got = sorted([gs.recv(8), gs.recv(8)])
    return got == [b'g0', b'g1'] and gs.getsockname() == d + '/ghost.sock' and not os.path.exists(d + '/ghost.sock')
check('ghost', ghost)
def taken():
    c2.send(b'to-s2'); x = socket.socket(U, DG); x.sendto(b'to-s1', d + '/taken.sock')
    return s2.recv(8) == b'to-s2' and s1.recv(8) == b'to-s1'
check('taken', taken)
check('gone-dir', lambda: dc.send(b'x') == 1 and ds.recv(8) == b'x' and not os.path.exists(d + '/gone'))
check('self', lambda: me.send(b'me') == 2 and me.recv(8) == b'me')
def closed_pair():
    pa.setblocking(False)
    got = [pa.recv(8), pa.recv(8)]
    try: pa.recv(8); return False
    except BlockingIOError: return got == [b'one', b'two']
check('closed-pair', closed_pair)
def unconnected():
    un.listen(1); c = socket.socket(U, ST); c.connect(un.getsockname()); a, _ = un.accept(); c.send(b'u')
    return a.recv(8) == b'u'
check('unconnected', unconnected)
def udp_shutdown():
    try: us.send(b'x'); return False
    except OSError as e: return e.errno == errno.EPIPE
check('udp-shutdown', udp_shutdown)
check('freebind', lambda: fb.getsockname() == fbname and fb.getsockopt(socket.SOL_IP, 15) == 0)
check('raw', lambda: ri.getsockopt(255, 1, 4) == (1 << 13).to_bytes(4, 'little') and rh.getsockopt(socket.SOL_IP, 3) == 1
      and r6.getsockopt(58, 1, 32) == bytes([0xff]) + bytes(31))
out.write('DONE\\n')
signal.sigwait([signal.SIGUSR1])
`;

describe('criu-ts restore: socket names and datagram corners', () => {
  it('relative, unlinked, retaken and homeless names; self-connected, orphaned, unconnected; UDP shutdown, freebind', async () => {
    const top = tempDir('criu-ts-core-sknames-');
    const report = path.join(top, 'report');
    const d = path.join(top, 'd');
    fs.mkdirSync(d);
    const pid = await startCommand([PYTHON, '-c', SOCKETS_PY, report, d]);
    await waitForLine(report, /^READY$/, { pid });
    const before = fs.readdirSync(d).sort();
    await cliDumpKillRestore(pid);
    expect(fs.readdirSync(d).sort()).toEqual(before);
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^DONE$/, { pid });
    expect(readLines(report).filter((l) => /^(OK|FAIL) /.test(l))).toEqual([
      'OK relative',
      'OK ghost',
      'OK taken',
      'OK gone-dir',
      'OK self',
      'OK closed-pair',
      'OK unconnected',
      'OK udp-shutdown',
      'OK freebind',
      'OK raw',
    ]);
  });
});
