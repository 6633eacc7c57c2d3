// Netlink sockets dumped, killed and restored: `ip -o monitor link`, a real program holding a
// NETLINK_ROUTE socket subscribed to link events, prints the events of a link created from outside
// after its restore; a python3 task with a NETLINK_USERSOCK socket connected to another one's port and
// group and a NETLINK_ROUTE socket in a group past the first 32 gets every port id, group,
// destination, file flag and option back (read from outside with sock_diag and getsockopt) and still
// talks. A socket with unread data, or halfway through a dump request, is refused and the task runs on.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ImageDir, pyParse } from '@criu-ts/images';
import {
  AF_NETLINK,
  close,
  decodeNetlinkDiagAttrs,
  encodeSockaddrNl,
  getsockopt,
  getsockoptInt,
  isSysError,
  NDIAG_FLAG_CB_RUNNING,
  NDIAG_SHOW_FLAGS,
  NDIAG_SHOW_GROUPS,
  SK_MEMINFO_VARS,
  SO_BUF_LOCK,
  SO_MEMINFO,
  SO_PASSCRED,
  SO_PRIORITY,
  SO_RCVBUF,
  SO_SNDBUF,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_SOCKET,
  sendmsg,
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
  readLines,
  runCli,
  startCommand,
  tempDir,
  waitFor,
  waitForLine,
  waitForMoreLines,
  withTheirFd,
} from './helpers.js';

afterEach(() => cleanup());

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => fs.existsSync(p));
const NETLINK_USERSOCK = 2;
const RTMGRP_LINK = 1;

// ---- the kernel's view, read from outside ----------------------------------------------------------------

/** What sock_diag says of the netlink socket behind fd `fd` of task `pid` (its inode left out). */
function diagOf(pid: number, fd: number) {
  let ino: number;
  try {
    ino = Number(fs.statSync(`/proc/${pid}/fd/${fd}`).ino);
  } catch {
    return undefined; // closed meanwhile (a program starting up)
  }
  const m = sockDiag({ family: 'netlink', show: NDIAG_SHOW_GROUPS | NDIAG_SHOW_FLAGS }).find(
    (x) => x.netlink?.ino === ino,
  );
  if (!m?.netlink) return undefined;
  const { ino: _, ...rest } = m.netlink;
  return { ...rest, ...decodeNetlinkDiagAttrs(m.attrs) };
}

/** Options, status flags and what sock_diag says of a socket: all that must come back. */
function socketState(pid: number, fd: number) {
  const options = withTheirFd(pid, fd, (s) =>
    [SO_SNDBUF, SO_RCVBUF, SO_BUF_LOCK, SO_PASSCRED, SO_PRIORITY].map((o) => getsockoptInt(s, SOL_SOCKET, o)),
  );
  const flags = /^flags:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
  return { diag: diagOf(pid, fd), options, flags };
}

/** Bytes queued on the socket for the task to read (SO_MEMINFO's first counter). */
const queuedBytes = (pid: number, fd: number) =>
  withTheirFd(pid, fd, (s) => getsockopt(s, SOL_SOCKET, SO_MEMINFO, 4 * SK_MEMINFO_VARS).readUInt32LE(0));

/** The fds of `pid` that are netlink sockets sock_diag knows, by fd. */
function netlinkFds(pid: number): number[] {
  return fs
    .readdirSync(`/proc/${pid}/fd`)
    .map(Number)
    .filter((fd) => diagOf(pid, fd) !== undefined);
}

// ---- dump and restore ------------------------------------------------------------------------------------

// ---- ip monitor and links made from outside --------------------------------------------------------------

let links = 0;

/** A link name no other test uses (IFNAMSIZ: at most 15 characters). */
const linkName = () => `ctsnl${process.pid % 100000}x${++links}`;

/** Create a link (a dummy one, or a bridge where the dummy driver is missing), deleted at cleanup. */
function addLink(name: string): void {
  onCleanup(() => {
    try {
      execFileSync(IP!, ['link', 'del', name], { stdio: 'ignore' });
    } catch {
      // deleted by the test already
    }
  });
  try {
    execFileSync(IP!, ['link', 'add', name, 'type', 'dummy'], { stdio: 'ignore' });
  } catch {
    execFileSync(IP!, ['link', 'add', name, 'type', 'bridge'], { stdio: 'ignore' });
  }
}

/** `ip -o monitor link`, its events written to a report file, once its socket is subscribed. */
async function startMonitor(): Promise<{ pid: number; report: string; fd: number }> {
  const report = path.join(tempDir('criu-ts-netlink-'), 'report');
  const pid = await startCommand([IP!, '-o', 'monitor', 'link'], { stdout: report });
  let fd = -1;
  await waitFor(() => {
    fd = netlinkFds(pid).find((f) => (diagOf(pid, f)?.groups?.[0] ?? 0) & RTMGRP_LINK) ?? -1;
    return fd >= 0 && procState(pid) === 'S';
  }, 'ip monitor to subscribe to link events');
  return { pid, report, fd };
}

/** A link created and deleted from outside: the monitor prints both events. */
async function expectLinkEvents(m: { pid: number; report: string }): Promise<void> {
  const name = linkName();
  const from = readLines(m.report).length;
  addLink(name);
  await waitForLine(m.report, new RegExp(`^\\d+: ${name}[:@]`), { pid: m.pid, fromLine: from });
  execFileSync(IP!, ['link', 'del', name], { stdio: 'ignore' });
  await waitForLine(m.report, new RegExp(`^Deleted \\d+: ${name}[:@]`), { pid: m.pid, fromLine: from });
}

describe.skipIf(!IP)('criu-ts restore: netlink sockets', () => {
  it('ip monitor link, restored, prints the events of a link created from outside', async () => {
    const m = await startMonitor();
    await expectLinkEvents(m);
    const before = netlinkFds(m.pid).map((fd) => socketState(m.pid, fd));
    expect(before.find((s) => s.diag?.portid === m.pid)).toBeDefined();
    const dir = await cliDump(m.pid);
    const nl = ImageDir.open(dir)
      .files()
      .filter((f) => f.nlsk)
      .map((f) => f.nlsk!);
    expect(nl.find((e) => e.portid === m.pid)).toMatchObject({ protocol: 0, groups: [RTMGRP_LINK] });
    await cliKillAndRestore(dir);
    expect(netlinkFds(m.pid).map((fd) => socketState(m.pid, fd))).toEqual(before);
    await expectLinkEvents(m);
  });

  it('port ids, groups past the first 32, destination port and group, O_NONBLOCK and options come back', async () => {
    const script = `
import os, signal, socket, sys
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
rx = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, ${NETLINK_USERSOCK})
rx.bind((0, 1 << 2))                                   # the task's pid as port id, group 3
tx = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, ${NETLINK_USERSOCK})
tx.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
tx.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 5)
tx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 50000)
tx.connect((rx.getsockname()[0], 1 << 2))              # rx's port and group 3: a kernel-chosen port id
tx.setblocking(False)
rt = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
rt.bind((0, 1 << 27))                                  # RTNLGRP_NSID
rt.setsockopt(270, 1, 36)                              # NETLINK_ADD_MEMBERSHIP RTNLGRP_STATS
out.write('READY %d %d %d\\n' % (rx.fileno(), tx.fileno(), rt.fileno()))
signal.sigwait([signal.SIGUSR1])
tx.send(b'to the port')
out.write('PORT %s\\n' % rx.recv(100).decode())
try: tx.recv(100)
except BlockingIOError: out.write('NONBLOCK\\n')
out.write('GROUP %s\\n' % rx.recv(100).decode())
`;
    const report = path.join(tempDir('criu-ts-netlink-'), 'report');
    const pid = await startCommand([PYTHON, '-c', script, report]);
    const fds = (await waitForLine(report, /^READY /, { pid })).split(' ').slice(1).map(Number);
    await waitFor(() => procState(pid) === 'S', 'the task to wait for SIGUSR1');
    const before = fds.map((fd) => socketState(pid, fd));
    const [rx, tx, rt] = before;
    expect(rx!.diag?.portid).toBe(pid);
    expect(rx!.diag?.groups?.[0]).toBe(1 << 2);
    expect(tx!.diag).toMatchObject({ state: 1, dstPortid: pid, dstGroup: 3 });
    expect(tx!.diag!.portid).not.toBe(pid);
    expect(rt!.diag!.groups?.slice(0, 2)).toEqual([1 << 27, 1 << 3]);
    const dir = await cliDump(pid);
    await cliKillAndRestore(dir);
    expect(fds.map((fd) => socketState(pid, fd))).toEqual(before);
    // The task talks on them: its connected socket reaches rx's port, rx gets what is sent to group 3.
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^NONBLOCK$/, { pid });
    expect(readLines(report)).toContain('PORT to the port');
    const sender = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_USERSOCK);
    try {
      sendmsg(sender, { iov: [Buffer.from('to the group')], name: encodeSockaddrNl(0, 1 << 2) });
    } catch (e) {
      // Sent to the group, then to port 0 as well, where no kernel socket listens for NETLINK_USERSOCK.
      if (!isSysError(e, 'ECONNREFUSED')) throw e;
    } finally {
      close(sender);
    }
    await waitForLine(report, /^GROUP to the group$/, { pid });
  });

  // A task that sent a request and then went on with something else: the answer waits in its socket.
  const pending = (request: 'answer' | 'dump') => `
import os, socket, struct, sys, time
out = open(sys.argv[1], 'a', buffering=1)
if '${request}' == 'answer':   # RTM_GETLINK of lo: one answer
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    req = struct.pack('=LHHLL', 32, 18, 1, 1, 0) + struct.pack('=BxHiII', 0, 0, 1, 0, 0)
else:                          # CTRL_CMD_GETFAMILY dump of every generic netlink family: many batches
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)
    req = struct.pack('=LHHLL', 20, 0x10, 0x301, 1, 0) + struct.pack('=BBH', 3, 1, 0)
s.send(req)
out.write('READY %d\\n' % s.fileno())
n = 0
while True:
    n += 1
    out.write('%d\\n' % n)
    time.sleep(0.01)
`;

  for (const [request, why] of [
    ['answer', /has unread data \(\d+ bytes queued\): refused/],
    ['dump', /is in the middle of a dump request: refused/],
  ] as const) {
    it(`a socket with ${request === 'answer' ? 'an unread answer' : 'a dump half answered'}: refused in one line naming pid and fd; the task runs on, its data still there`, async () => {
      const report = path.join(tempDir('criu-ts-netlink-'), 'report');
      const pid = await startCommand([PYTHON, '-c', pending(request), report]);
      const fd = Number((await waitForLine(report, /^READY /, { pid })).split(' ')[1]);
      await waitFor(() => queuedBytes(pid, fd) > 0, 'the answer to be queued');
      if (request === 'dump') expect((diagOf(pid, fd)?.flags ?? 0) & NDIAG_FLAG_CB_RUNNING).toBeTruthy();
      const queued = queuedBytes(pid, fd);
      const r = await runCli([
        'dump',
        '-t',
        String(pid),
        '-D',
        path.join(tempDir('criu-ts-netlink-img-'), 'i'),
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`pid ${pid} fd ${fd}: netlink socket \\d+ \\(protocol \\d+\\) `));
      expect(r.stderr).toMatch(why);
      await waitForMoreLines(report, 3, pid);
      expect(queuedBytes(pid, fd)).toBe(queued);
    });
  }

  it.skipIf(!haveCrit)('crit decode -i files.img shows the netlink socket entries', async () => {
    const m = await startMonitor();
    const dir = await cliDump(m.pid, ['-R']);
    const text = execFileSync(CRIT, ['decode', '-i', path.join(dir, 'files.img')], { encoding: 'utf8' });
    const nl = entries(pyParse(text))
      .filter((f) => f.type === 'NETLINKSK')
      .map((f) => obj(f.nlsk));
    expect(nl.length).toBe(netlinkFds(m.pid).length);
    const monitor = nl.find((e) => num(e.portid) === m.pid)!;
    expect(num(monitor.protocol)).toBe(0);
    expect((monitor.groups as number[]).map(num)).toEqual([RTMGRP_LINK]);
    expect(num(obj(monitor.opts).so_rcvbuf)).toBe(socketState(m.pid, m.fd).options[1]);
    // dump -R: the monitor still runs on its own socket.
    await expectLinkEvents(m);
  });
});
