// Packet sockets (AF_PACKET) dumped, killed and restored. A python3 task holds: a SOCK_RAW socket with
// TPACKET_V2, PACKET_AUXDATA, an rx ring and a promiscuous membership of lo; a SOCK_DGRAM IP socket bound
// to lo with a reserve, PACKET_ORIGDEV, a fanout group with the rollover flag, a unicast membership added
// twice and a multicast one, a tx ring, O_NONBLOCK and SO_PRIORITY; a socket bound to lo whose rx and tx
// rings are mapped (MAP_SHARED); a SOCK_PACKET socket bound to lo and one not bound. All of it is read
// from outside before and after (sock_diag, getsockopt and getsockname on our copy of each socket,
// fdinfo flags, /proc/PID/maps) and must be equal; then a datagram sent on lo from outside lands in the
// restored task's mapped ring, where the task finds it. A fanout group shared with a socket outside the
// tree, and a mapping of part of a ring, are refused in one line and the task runs on.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ImageDir, pyParse } from '@criu-ts/images';
import {
  AF_INET,
  AF_PACKET,
  bind,
  close,
  decodePacketDiagAttrs,
  encodeSockaddrIn,
  encodeSockaddrLl,
  getsockname,
  getsockoptInt,
  PACKET_FANOUT,
  PACKET_SHOW_FANOUT,
  PACKET_SHOW_INFO,
  PACKET_SHOW_MCLIST,
  PACKET_SHOW_RING_CFG,
  SO_PRIORITY,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_RAW,
  SOL_PACKET,
  SOL_SOCKET,
  sendmsg,
  setsockopt,
  sockDiag,
  socket,
} from '@criu-ts/sys';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CRIT,
  cleanup,
  cliDump,
  cliKillAndRestore,
  entries,
  haveCrit,
  num,
  obj,
  onCleanup,
  PYTHON,
  procState,
  runCli,
  startCommand,
  tempDir,
  waitFor,
  waitForLine,
  waitForMoreLines,
  withTheirFd,
} from './helpers.js';

afterEach(() => cleanup());

const ETH_P_IP = 0x0800;
const ETH_P_ALL = 0x0003;
const htons = (v: number) => ((v & 0xff) << 8) | (v >> 8);
/** A fanout group id no other test run uses at the same time (zdtm's packet_sock uses 13). */
const fanoutId = (n: number) => 1000 + ((process.pid * 7 + n) % 60000);

// ---- the kernel's view, read from outside ----------------------------------------------------------------

const inode = (pid: number, fd: number) => Number(fs.statSync(`/proc/${pid}/fd/${fd}`).ino);

/** What sock_diag says of the packet socket behind fd `fd` of task `pid` (its inode and cookie left out). */
function diagOf(pid: number, fd: number) {
  const ino = inode(pid, fd);
  const show = PACKET_SHOW_INFO | PACKET_SHOW_MCLIST | PACKET_SHOW_RING_CFG | PACKET_SHOW_FANOUT;
  const m = sockDiag({ family: 'packet', show }).find((x) => x.packet?.ino === ino);
  if (!m?.packet) return undefined;
  const { ino: _, cookie: __, ...rest } = m.packet;
  return { ...rest, ...decodePacketDiagAttrs(m.attrs) };
}

/** Everything that must come back of one socket. */
function socketState(pid: number, fd: number) {
  const [fanout, priority, name] = withTheirFd(pid, fd, (s) => {
    let f: number | undefined;
    try {
      f = getsockoptInt(s, SOL_PACKET, PACKET_FANOUT) >>> 0;
    } catch {
      f = undefined; // SOCK_PACKET has no SOL_PACKET options
    }
    return [f, getsockoptInt(s, SOL_SOCKET, SO_PRIORITY), getsockname(s).toString('hex')];
  });
  const flags = /^flags:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
  return { diag: diagOf(pid, fd), fanout, priority, name, flags };
}

/** The /proc/PID/maps line of the VMA at `addr` with the inode column replaced by the fd it maps. */
function mappingOf(pid: number, addr: bigint, fds: number[]): string | undefined {
  const line = fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .find((l) => BigInt(`0x${l.split('-')[0] || '0'}`) === addr);
  if (!line) return undefined;
  const [range, perms, off, , ino] = line.trim().split(/\s+/);
  const fd = fds.find((f) => String(inode(pid, f)) === ino);
  return `${range} ${perms} ${off} fd ${fd}`;
}

// ---- the task --------------------------------------------------------------------------------------------

const TASK = `
import ctypes, mmap, os, signal, socket, struct, sys, time
out = open(sys.argv[1], 'a', buffering=1)
fanout = int(sys.argv[2])
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_RX_RING, PACKET_AUXDATA, PACKET_ORIGDEV = 1, 5, 8, 9
PACKET_VERSION, PACKET_RESERVE, PACKET_TX_RING, PACKET_FANOUT = 10, 12, 13, 18
TPACKET_V2 = 1
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
def ring(s, which):
    s.setsockopt(SOL_PACKET, which, struct.pack('7I', 4096, 1, 1024, 4, 0, 0, 0))
def member(s, kind, addr=b''):
    s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack('iHH8s', 1, kind, len(addr), addr))

raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
raw.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
raw.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
ring(raw, PACKET_RX_RING)
member(raw, 1)                                             # PACKET_MR_PROMISC on lo

ip = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
ip.bind(('lo', 0))
ip.setsockopt(SOL_PACKET, PACKET_RESERVE, 8)
ip.setsockopt(SOL_PACKET, PACKET_ORIGDEV, 1)
ip.setsockopt(SOL_PACKET, PACKET_FANOUT, fanout | (0x1000 << 16))   # hash, with PACKET_FANOUT_FLAG_ROLLOVER
member(ip, 3, b'\\0' * 6)                                  # PACKET_MR_UNICAST, twice: counted
member(ip, 3, b'\\0' * 6)
member(ip, 0, b'\\x01\\x00\\x5e\\x00\\x00\\x01')            # PACKET_MR_MULTICAST
ring(ip, PACKET_TX_RING)
ip.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 5)
ip.setblocking(False)

mapped = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
mapped.bind(('lo', 0))
mapped.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
ring(mapped, PACKET_RX_RING)
ring(mapped, PACKET_TX_RING)
mem = mmap.mmap(mapped.fileno(), 2 * 4096, flags=mmap.MAP_SHARED)
addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))

spkt = socket.socket(socket.AF_PACKET, 10, socket.htons(0x0003))   # SOCK_PACKET
libc = ctypes.CDLL(None, use_errno=True)
name = struct.pack('H14s', socket.AF_PACKET, b'lo')       # SOCK_PACKET binds by a device's name
assert libc.bind(spkt.fileno(), name, len(name)) == 0
loose = socket.socket(socket.AF_PACKET, 10, socket.htons(0x0003))   # SOCK_PACKET

fds = [s.fileno() for s in (raw, ip, mapped, spkt, loose)]
out.write('READY %s %x\\n' % (' '.join(map(str, fds)), addr))
signal.sigwait([signal.SIGUSR1])
out.write('GO\\n')
# The rx ring: frame 0's tp_status turns TP_STATUS_USER when a packet lands (sent from outside now).
while not struct.unpack_from('I', mem, 0)[0] & 1:
    time.sleep(0.01)
length = struct.unpack_from('I', mem, 8)[0]
out.write('RING %d\\n' % length)
signal.sigwait([signal.SIGUSR1])
`;

interface Task {
  pid: number;
  report: string;
  fds: number[];
  addr: bigint;
}

async function startTask(): Promise<Task> {
  const report = path.join(tempDir('criu-ts-packet-'), 'report');
  const pid = await startCommand([PYTHON, '-c', TASK, report, String(fanoutId(0))]);
  const words = (await waitForLine(report, /^READY /, { pid })).split(' ');
  await waitFor(() => procState(pid) === 'S', 'the task to wait for SIGUSR1');
  return { pid, report, fds: words.slice(1, 6).map(Number), addr: BigInt(`0x${words[6]}`) };
}

/** A UDP datagram to 127.0.0.1 from outside: every socket bound to lo for ETH_P_ALL sees it. */
function sendOnLo(): void {
  const s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  try {
    sendmsg(s, { iov: [Buffer.from('over lo')], name: encodeSockaddrIn('127.0.0.1', 9) });
  } finally {
    close(s);
  }
}

describe('criu-ts restore: packet sockets', () => {
  it('options, memberships, rings, fanout, SOCK_PACKET bindings and a mapped ring come back', async () => {
    const t = await startTask();
    const before = t.fds.map((fd) => socketState(t.pid, fd));
    const mapBefore = mappingOf(t.pid, t.addr, t.fds);
    // What the task set up, as the kernel reports it.
    const [raw, ip, mapped, spkt, loose] = before;
    expect(raw!.diag).toMatchObject({ type: SOCK_RAW, protocol: 0, info: { version: 1, flags: 2 } });
    expect(raw!.diag!.mclist).toEqual([{ index: 1, count: 1, type: 1, addr: Buffer.alloc(0) }]);
    expect(ip!.diag).toMatchObject({ type: SOCK_DGRAM, protocol: ETH_P_IP, info: { index: 1, reserve: 8 } });
    expect(ip!.diag!.mclist?.map((m) => [m.type, m.count])).toEqual([
      [0, 1],
      [3, 2],
    ]);
    expect(ip!.fanout).toBe((fanoutId(0) | (0x10 << 24)) >>> 0);
    expect(ip!.diag!.txRing).toMatchObject({ blockSize: 4096, frameNr: 4 });
    expect(ip!.flags && Number.parseInt(ip!.flags, 8) & 0o4000).toBeTruthy();
    expect(mapped!.diag).toMatchObject({ protocol: ETH_P_ALL, info: { index: 1 } });
    expect(spkt!.diag).toMatchObject({ type: 10, info: { index: 1 } });
    expect(loose!.diag).toMatchObject({ type: 10, info: { index: 0 } });
    expect(mapBefore).toMatch(/ rw-s 00000000 fd \d+$/);
    expect(mapBefore).toContain(`fd ${t.fds[2]}`);

    const dir = await cliDump(t.pid);
    const psk = ImageDir.open(dir)
      .files()
      .filter((f) => f.psk)
      .map((f) => f.psk!);
    expect(psk).toHaveLength(5);
    const ipEntry = psk.find((p) => p.type === SOCK_DGRAM)!;
    expect(ipEntry).toMatchObject({ protocol: htons(ETH_P_IP), ifindex: 1, reserve: 8, orig_dev: true });
    expect(ipEntry.mclist).toHaveLength(3); // the unicast one twice
    const vma = ImageDir.open(dir)
      .mm(t.pid)
      .vmas?.find((v) => v.start === t.addr);
    expect(vma?.status).toBe(0x801); // VMA_AREA_REGULAR | VMA_AREA_SOCKET, as CRIU writes it
    expect(psk.find((p) => p.id === Number(vma?.shmid))?.rx_ring).toBeDefined();

    await cliKillAndRestore(dir);
    expect(t.fds.map((fd) => socketState(t.pid, fd))).toEqual(before);
    expect(mappingOf(t.pid, t.addr, t.fds)).toBe(mapBefore);
    // The restored ring is the socket's: a packet sent on lo lands in it, where the task reads it.
    process.kill(t.pid, 'SIGUSR1');
    await waitForLine(t.report, /^GO$/, { pid: t.pid });
    sendOnLo();
    const got = await waitForLine(t.report, /^RING \d+$/, { pid: t.pid });
    expect(Number(got.split(' ')[1])).toBeGreaterThan(0);
  });

  it('a fanout group shared with a socket outside the tree: refused in one line, the task runs on', async () => {
    const id = fanoutId(1);
    const outside = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_IP));
    onCleanup(() => close(outside));
    setsockopt(outside, SOL_PACKET, PACKET_FANOUT, id);
    const script = `
import socket, sys, time
out = open(sys.argv[1], 'a', buffering=1)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.setsockopt(263, 18, ${id})
out.write('READY %d\\n' % s.fileno())
n = 0
while True:
    n += 1
    out.write('%d\\n' % n)
    time.sleep(0.01)
`;
    const report = path.join(tempDir('criu-ts-packet-'), 'report');
    const pid = await startCommand([PYTHON, '-c', script, report]);
    const fd = Number((await waitForLine(report, /^READY /, { pid })).split(' ')[1]);
    const r = await runCli(['dump', '-t', String(pid), '-D', path.join(tempDir('criu-ts-packet-img-'), 'i')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `pid ${pid} fd ${fd}: packet socket \\d+: fanout group ${id} is shared with packet socket ${inode(process.pid, outside)}, which is not in the dumped tree`,
      ),
    );
    await waitForMoreLines(report, 3, pid);
    expect(withTheirFd(pid, fd, (s) => getsockoptInt(s, SOL_PACKET, PACKET_FANOUT))).toBe(id);
  });

  it('a mapping of part of the rings: refused in one line, the task runs on', async () => {
    const script = `
import mmap, socket, struct, sys, time, ctypes
out = open(sys.argv[1], 'a', buffering=1)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
for which in (5, 13):
    s.setsockopt(263, which, struct.pack('7I', 4096, 1, 1024, 4, 0, 0, 0))
mem = mmap.mmap(s.fileno(), 2 * 4096, flags=mmap.MAP_SHARED)
addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
libc = ctypes.CDLL(None, use_errno=True)
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
assert libc.munmap(addr + 4096, 4096) == 0                 # the tx ring's page goes
out.write('READY %d %x\\n' % (s.fileno(), addr))
n = 0
while True:
    n += 1
    out.write('%d\\n' % n)
    time.sleep(0.01)
`;
    const report = path.join(tempDir('criu-ts-packet-'), 'report');
    const pid = await startCommand([PYTHON, '-c', script, report]);
    const [, fd, addr] = (await waitForLine(report, /^READY /, { pid })).split(' ');
    const r = await runCli(['dump', '-t', String(pid), '-D', path.join(tempDir('criu-ts-packet-img-'), 'i')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`pid ${pid} VMA ${addr}-`);
    expect(r.stderr).toMatch(
      new RegExp(`maps 1 pages at offset 0 of the 2-page rings of pid ${pid} fd ${fd}: packet socket \\d+`),
    );
    await waitForMoreLines(report, 3, pid);
  });

  it.skipIf(!haveCrit)('crit decode -i files.img shows the packet socket entries', async () => {
    const t = await startTask();
    const dir = await cliDump(t.pid, ['-R']);
    const text = execFileSync(CRIT, ['decode', '-i', path.join(dir, 'files.img')], { encoding: 'utf8' });
    const psk = entries(pyParse(text))
      .filter((f) => f.type === 'PACKETSK')
      .map((f) => obj(f.psk));
    expect(psk).toHaveLength(5);
    const ip = psk.find((p) => num(p.type) === SOCK_DGRAM)!;
    expect(num(ip.protocol)).toBe(htons(ETH_P_IP));
    expect(num(ip.fanout)).toBe((fanoutId(0) | (0x10 << 24)) >>> 0);
    expect(num(obj(ip.tx_ring).frame_nr)).toBe(4);
    // -R: the task runs on with its sockets.
    expect(withTheirFd(t.pid, t.fds[1]!, (s) => getsockoptInt(s, SOL_PACKET, PACKET_FANOUT) >>> 0)).toBe(
      num(ip.fanout),
    );
  });
});

// A device bound with sockaddr_ll from outside, to show the encoder matches what the kernel takes.
describe('sockaddr_ll', () => {
  it('binds a packet socket to lo', () => {
    const s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    try {
      bind(s, encodeSockaddrLl(1));
      expect(getsockname(s).readInt32LE(4)).toBe(1);
    } finally {
      close(s);
    }
  });
});
