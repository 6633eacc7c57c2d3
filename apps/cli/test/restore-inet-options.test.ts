// IP-level state of inet sockets as CRIU's zdtm suite checks it: an IPv6 socket bound to an address this
// machine does not have, with IP_FREEBIND turned off since (sk-freebind-false); raw sockets, IPv4 and
// IPv6, with their IP and raw options (sock_ip_opts00/01). A task in a network namespace of its own is
// refused (criu-ts does not dump network namespaces; CRIU's netns_lock_* tests lock one).
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, tempDir } from './helpers.js';
import { checkLines, dumpOk, restoreOk, runCliWithin, startProgram } from './inet-program.js';

afterEach(() => cleanup());

describe('criu-ts restore: IP options of inet sockets', () => {
  it('an IPv6 socket bound to an address not configured here, IP_FREEBIND off since: bound again, still off', async () => {
    const { report, pid } = await startProgram(`
IP_FREEBIND = 15
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
s.bind(('2001:db8::ff00:42:8329', 0))
s.setsockopt(socket.SOL_IP, IP_FREEBIND, 0)
def check():
    yield 'bound %s freebind %d' % (s.getsockname()[0], s.getsockopt(socket.SOL_IP, IP_FREEBIND))
`);
    const dir = await dumpOk(pid, []);
    await restoreOk(pid, dir, []);
    expect(await checkLines(pid, report)).toEqual(['bound 2001:db8::ff00:42:8329 freebind 0']);
  });

  it('a task in a network namespace of its own: the dump is refused, naming it, and the task runs on', async () => {
    const { report, pid } = await startProgram(`
import ctypes
assert ctypes.CDLL(None, use_errno=True).unshare(0x40000000) == 0  # CLONE_NEWNET
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
def check():
    yield 'listening %d' % state(s)
`);
    const r = await runCliWithin(
      ['dump', '-t', String(pid), '-D', path.join(tempDir('criu-ts-netns-'), 'images')],
      30_000,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^criu-ts: pid ${pid} is in a net namespace of its own \\(net:\\[\\d+\\], criu-ts is in net:\\[\\d+\\]\\): dumping namespaces is not supported yet\n$`,
      ),
    );
    expect(await checkLines(pid, report)).toEqual(['listening 10']);
  });

  it('raw sockets, IPv4 and IPv6: IP options, IP_HDRINCL, IP_NODEFRAG and the ICMP filters come back', async () => {
    const { report, pid } = await startProgram(`
IP_FREEBIND, IP_PKTINFO, IP_NODEFRAG, IPV6_HDRINCL = 15, 8, 22, 36
ICMP_FILTER, SOL_RAW, SOL_ICMPV6, ICMPV6_FILTER, SOL_IPV6 = 1, 255, 58, 1, 41
v4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
for opt, val in ((IP_FREEBIND, 1), (IP_PKTINFO, 1), (socket.IP_TTL, 32), (socket.IP_TOS, 8),
                 (socket.IP_HDRINCL, 1), (IP_NODEFRAG, 1)):
    v4.setsockopt(socket.SOL_IP, opt, val)
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
icmp.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack('I', 0x1234))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP)
v6.setsockopt(SOL_IPV6, 78, 1); v6.setsockopt(SOL_IPV6, socket.IPV6_RECVPKTINFO, 1)
v6.setsockopt(SOL_IPV6, IPV6_HDRINCL, 1)
icmp6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
icmp6.setsockopt(SOL_ICMPV6, ICMPV6_FILTER, struct.pack('8I', *range(1, 9)))
def check():
    g = lambda s, level, opt: s.getsockopt(level, opt)
    yield 'v4 ' + ' '.join(str(g(v4, socket.SOL_IP, o)) for o in (IP_FREEBIND, IP_PKTINFO, socket.IP_TTL, socket.IP_TOS, socket.IP_HDRINCL, IP_NODEFRAG))
    yield 'icmp filter %x' % struct.unpack('I', icmp.getsockopt(SOL_RAW, ICMP_FILTER, 4))[0]
    yield 'v6 %d %d %d' % (g(v6, SOL_IPV6, 78), g(v6, SOL_IPV6, socket.IPV6_RECVPKTINFO), g(v6, SOL_IPV6, IPV6_HDRINCL))
    yield 'icmp6 filter %s' % list(struct.unpack('8I', icmp6.getsockopt(SOL_ICMPV6, ICMPV6_FILTER, 32)))
`);
    const dir = await dumpOk(pid, []);
    await restoreOk(pid, dir, []);
    expect(await checkLines(pid, report)).toEqual([
      'v4 1 1 32 8 1 1',
      'icmp filter 1234',
      'v6 1 1 1',
      'icmp6 filter [1, 2, 3, 4, 5, 6, 7, 8]',
    ]);
  });
});
