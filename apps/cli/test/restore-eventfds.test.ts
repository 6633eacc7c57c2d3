// eventfd, epoll, signalfd and timerfd: dumped and restored on real processes (tools/workloads epoller),
// checked from outside through /proc/PID/fdinfo (read here, not by @criu-ts/bfd), crit's decoding of
// files.img and what the restored program itself reads: eventfd counters, timer expirations, signals
// arriving through the signalfd, events its epoll set reports.
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { type FileEntry, ImageDir } from '@criu-ts/images';
import { close, KCMP_FILE, kcmp, pidfdGetfd, pidfdOpen, writeAll } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  big,
  buildWorkloads,
  cleanup,
  cliDump,
  critDecodeAll,
  dumpAndKill,
  entries,
  failLines,
  haveCrit,
  num,
  type Obj,
  obj,
  PYTHON,
  procState,
  readLines,
  restoreDetached,
  runCli,
  startCommand,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

// epoller's fds (see tools/workloads/src/epoller.c).
const FD = {
  epoll: 4,
  evfd: 5,
  counter: 6,
  sem: 7,
  sigfd: 8,
  tick: 9,
  long: 10,
  lazy: 11,
  abs: 12,
  soon: 13,
};
const COUNTER = 0x123456789abn;
const NS = 1_000_000_000n;

// ---- /proc/PID/fdinfo, parsed here -----------------------------------------------------------------------

function fdinfo(pid: number, fd: number): string {
  return fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
}

function field(text: string, key: string): string {
  const m = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${key} in fdinfo:\n${text}`);
  return m[1]!.trim();
}

function eventfdState(pid: number, fd: number): { count: bigint; semaphore: string } {
  const t = fdinfo(pid, fd);
  return { count: BigInt(`0x${field(t, 'eventfd-count')}`), semaphore: field(t, 'eventfd-semaphore') };
}

interface TimerState {
  clockid: number;
  ticks: bigint;
  flags: string;
  /** it_value and it_interval in ns */
  value: bigint;
  interval: bigint;
}

function timerState(pid: number, fd: number): TimerState {
  const t = fdinfo(pid, fd);
  const ts = (k: string) => {
    const m = /\((\d+), (\d+)\)/.exec(field(t, k))!;
    return BigInt(m[1]!) * NS + BigInt(m[2]!);
  };
  return {
    clockid: Number(field(t, 'clockid')),
    ticks: BigInt(field(t, 'ticks')),
    flags: field(t, 'settime flags'),
    value: ts('it_value'),
    interval: ts('it_interval'),
  };
}

function epollTargets(pid: number, fd: number): string[] {
  return [...fdinfo(pid, fd).matchAll(/^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)/gm)]
    .map((m) => `${m[1]} ${m[2]} ${m[3]}`)
    .sort();
}

/** link and fdinfo flags (O_NONBLOCK, O_CLOEXEC...) of epoller's fds 4-13. */
function fdFlags(pid: number): string[] {
  const out: string[] = [];
  for (let fd = FD.epoll; fd <= FD.soon; fd++)
    out.push(`${fd} ${fs.readlinkSync(`/proc/${pid}/fd/${fd}`)} ${field(fdinfo(pid, fd), 'flags')}`);
  return out;
}

/** Write `value` into eventfd `fd` of task `pid`, through our own duplicate of it (pidfd_getfd). */
function writeEventfd(pid: number, fd: number, value: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(value, 0);
  writeFd(pid, fd, b);
}

/** Write `data` into fd `fd` of task `pid`, through our own duplicate of it (pidfd_getfd). */
function writeFd(pid: number, fd: number, data: Buffer): void {
  const pidfd = pidfdOpen(pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      writeAll(mine, data);
    } finally {
      close(mine);
    }
  } finally {
    close(pidfd);
  }
}

// ---- dump and restore ------------------------------------------------------------------------------------

/** The files.img entry behind fd `fd` of task `pid` in an image directory. */
function entryOf(dir: string, pid: number, fd: number): FileEntry {
  const d = ImageDir.open(dir);
  const id = d.fdinfo(d.ids(pid).files_id).find((f) => f.fd === fd)!.id;
  return d.files().find((f) => f.id === id)!;
}

/** Send SIGUSR2 and return the STATE lines epoller writes (COUNTER, SEM, LAZY, TICKS). */
async function askState(pid: number, report: string): Promise<Record<string, string>> {
  const from = readLines(report).length;
  process.kill(pid, 'SIGUSR2');
  await waitForLine(report, /^STATE done$/, { pid, fromLine: from });
  const out: Record<string, string> = {};
  for (const l of readLines(report).slice(from)) {
    const sp = l.indexOf(' ');
    if (sp > 0) out[l.slice(0, sp)] = l.slice(sp + 1);
  }
  return out;
}

/** epoller after READY, with its 20 ms timer expired and not read (fdinfo: ticks, nothing left). */
async function startEpoller(args: string[] = []) {
  const w = startWorkload('epoller', args);
  await waitForLine(w.report, /^READY /, { pid: w.pid });
  await waitFor(() => {
    const t = timerState(w.pid, FD.lazy);
    return t.ticks >= 1n && t.value === 0n;
  }, 'the 20 ms timer to expire unread');
  return w;
}

describe('criu-ts dump/restore: eventfd, epoll, signalfd, timerfd', () => {
  it('an epoll set watching an eventfd, a timerfd and a signalfd reads the right values after restore', async () => {
    const w = await startEpoller();
    const before = {
      sigmask: field(fdinfo(w.pid, FD.sigfd), 'sigmask'),
      targets: epollTargets(w.pid, FD.epoll),
      long: timerState(w.pid, FD.long),
      abs: timerState(w.pid, FD.abs),
      at: process.hrtime.bigint(),
      flags: fdFlags(w.pid),
    };
    expect(before.targets).toHaveLength(4);
    expect(eventfdState(w.pid, FD.counter)).toEqual({ count: COUNTER, semaphore: '0' });
    expect(eventfdState(w.pid, FD.sem)).toEqual({ count: 3n, semaphore: '1' });

    const dir = await dumpAndKill(w.pid);

    // The images: the expired periodic timer is written with its missed periods counted and the time to
    // its next period (not fdinfo's 0), still periodic.
    const lazy = entryOf(dir, w.pid, FD.lazy).tfd!;
    expect(lazy.ticks).toBeGreaterThanOrEqual(1n);
    expect(lazy.isec * NS + lazy.insec).toBe(20_000_000n);
    expect(lazy.vsec * NS + lazy.vnsec).toBeGreaterThan(0n);
    expect(lazy.vsec * NS + lazy.vnsec).toBeLessThanOrEqual(20_000_000n);
    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['files.img']);
      expect(failures).toEqual([]);
      const files = entries(decoded.get('files.img'));
      const byType = (t: string) => files.filter((e) => e.type === t);
      const efds = byType('EVENTFD').map((e) => obj(e.efd));
      const counters = efds.map((e) => big(e.counter));
      expect(counters.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual([0n, 3n, COUNTER]);
      // EFD_SEMAPHORE rides in bit 0 of flags (an eventfd is always O_RDWR, 02)
      expect(efds.filter((e) => (num(e.flags) & 3) === 3).map((e) => big(e.counter))).toEqual([3n]);
      const sg = obj(byType('SIGNALFD')[0]!.sgfd);
      expect(big(sg.sigmask)).toBe(BigInt(`0x${before.sigmask}`));
      expect(byType('TIMERFD')).toHaveLength(5);
      const ep = obj(byType('EVENTPOLL')[0]!.epfd);
      const tfds = (ep.tfd as Obj[]).map((t) => obj(t));
      expect(tfds.map((t) => `${num(t.tfd)} ${num(t.data)}`).sort()).toEqual(['13 5', '5 1', '8 3', '9 4']);
    }

    await restoreDetached(dir);
    const after = process.hrtime.bigint();
    // fdinfo of the restored task: same epoll targets, counters, mask; timers with the time they had left.
    expect(epollTargets(w.pid, FD.epoll)).toEqual(before.targets);
    expect(fdFlags(w.pid)).toEqual(before.flags);
    expect(eventfdState(w.pid, FD.counter)).toEqual({ count: COUNTER, semaphore: '0' });
    expect(eventfdState(w.pid, FD.sem)).toEqual({ count: 3n, semaphore: '1' });
    expect(field(fdinfo(w.pid, FD.sigfd), 'sigmask')).toBe(before.sigmask);
    const elapsed = after - before.at + 1_000_000n;
    for (const [fd, was] of [
      [FD.long, before.long],
      [FD.abs, before.abs],
    ] as const) {
      const now = timerState(w.pid, fd);
      expect({ clockid: now.clockid, flags: now.flags, interval: now.interval }).toEqual({
        clockid: was.clockid,
        flags: was.flags,
        interval: 0n,
      });
      expect(now.value).toBeLessThanOrEqual(was.value);
      expect(now.value).toBeGreaterThanOrEqual(was.value - elapsed);
    }
    expect(timerState(w.pid, FD.abs).flags).toBe('01');
    const lazyNow = timerState(w.pid, FD.lazy);
    expect(lazyNow.interval).toBe(20_000_000n);
    expect(lazyNow.ticks).toBeGreaterThanOrEqual(lazy.ticks);

    // What the program reads: an eventfd value written from outside, through its epoll set...
    writeEventfd(w.pid, FD.evfd, 42n);
    await waitForLine(w.report, /^EVENTFD 42$/, { pid: w.pid });
    // ...a signal, through its signalfd...
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^SIGNAL 10$/, { pid: w.pid });
    // ...and what it did not watch: the counters as they were, the unread expirations of the dump.
    const st = await askState(w.pid, w.report);
    expect(st.COUNTER).toBe(COUNTER.toString(16));
    expect(st.SEM).toBe('1 1 1 EAGAIN');
    expect(BigInt(st.LAZY!)).toBeGreaterThanOrEqual(lazy.ticks);
    const [total, ms] = st.TICKS!.split(' ').map(Number) as [number, number];
    expect(total).toBeGreaterThan(0);
    expect(total * 100).toBeLessThanOrEqual(ms + 100);
    // The timers go on: the 20 ms one expires again (the kernel counts one tick until it is read), the
    // 100 ms one in the epoll set is read again.
    await waitFor(() => timerState(w.pid, FD.lazy).ticks >= 1n, 'the 20 ms timer to expire after restore');
    let st2 = await askState(w.pid, w.report);
    expect(st2.COUNTER).toBe('EAGAIN');
    for (let i = 0; i < 500 && Number(st2.TICKS!.split(' ')[0]) <= total; i++) {
      await new Promise((r) => setTimeout(r, 20));
      st2 = await askState(w.pid, w.report);
    }
    expect(Number(st2.TICKS!.split(' ')[0])).toBeGreaterThan(total);
    // The 1.5 s one-shot fired once, before or after the dump.
    await waitForLine(w.report, /^ONESHOT 1$/, { pid: w.pid });
    expect(readLines(w.report).filter((l) => l.startsWith('ONESHOT'))).toEqual(['ONESHOT 1']);
    expect(failLines(w.report)).toEqual([]);
  });

  it('with a pipe in the set too: data written into the pipe after restore is reported', async () => {
    const w = await startEpoller(['pipe']);
    const targets = epollTargets(w.pid, FD.epoll);
    expect(targets.map((t) => t.split(' ')[0]).sort()).toEqual(['13', '14', '5', '8', '9']);
    const dir = await dumpAndKill(w.pid);
    await restoreDetached(dir);
    expect(epollTargets(w.pid, FD.epoll)).toEqual(targets);
    writeFd(w.pid, 15, Buffer.from('hello through the pipe\n'));
    await waitForLine(w.report, /^PIPE hello through the pipe$/, { pid: w.pid });
    writeEventfd(w.pid, FD.evfd, 7n);
    await waitForLine(w.report, /^EVENTFD 7$/, { pid: w.pid });
    process.kill(w.pid, 'SIGHUP');
    await waitForLine(w.report, /^SIGNAL 1$/, { pid: w.pid });
    expect(failLines(w.report)).toEqual([]);
  });

  it('a periodic timer written as CRIU writes it (0 left, expired unread) stays periodic with its ticks', async () => {
    const w = await startEpoller();
    const dir = await dumpAndKill(w.pid);
    // CRIU stores fdinfo's it_value as is: (0, 0) for an expired unread periodic timer.
    const d = ImageDir.open(dir);
    const files = d.files();
    const lazyId = entryOf(dir, w.pid, FD.lazy).id;
    const lazy = files.find((f) => f.id === lazyId)!.tfd!;
    lazy.vsec = 0n;
    lazy.vnsec = 0n;
    lazy.ticks = 5n;
    d.write('files', undefined, files);
    await restoreDetached(dir);
    const t = timerState(w.pid, FD.lazy);
    expect(t.interval).toBe(20_000_000n);
    expect(t.ticks).toBeGreaterThanOrEqual(5n);
    const st = await askState(w.pid, w.report);
    expect(BigInt(st.LAZY!)).toBeGreaterThanOrEqual(5n);
    await waitFor(() => timerState(w.pid, FD.lazy).ticks >= 1n, 'the timer to expire again after restore');
    expect(failLines(w.report)).toEqual([]);
  });

  it('an epoll shared by parent and child after fork: targets only the child holds come back', async () => {
    const w = await startEpoller(['fork']);
    const childLine = await waitForLine(w.report, /^CHILD \d+$/, { pid: w.pid });
    const child = Number(childLine.split(' ')[1]);
    track(child);
    const targets = epollTargets(w.pid, FD.epoll);
    expect(targets).toHaveLength(5);
    expect(fs.existsSync(`/proc/${w.pid}/fd/16`)).toBe(false);
    const dir = await dumpAndKill(w.pid, { kill: [w.pid, child] });
    await restoreDetached(dir);
    track(child);
    // One epoll description in both tasks, with every target (fd 16 only in the child).
    expect(kcmp(w.pid, child, KCMP_FILE, FD.epoll, FD.epoll)).toBe(0);
    expect(epollTargets(w.pid, FD.epoll)).toEqual(targets);
    expect(fs.existsSync(`/proc/${w.pid}/fd/16`)).toBe(false);
    expect(fs.readlinkSync(`/proc/${child}/fd/16`)).toBe('anon_inode:[eventfd]');
    // The child writes its eventfd: the parent's epoll reports it (EPOLLIN, one-shot).
    const from = readLines(w.report).length;
    process.kill(child, 'SIGUSR1');
    await waitForLine(w.report, /^CHILD wrote 7$/, { pid: child, fromLine: from });
    await waitForLine(w.report, /^XFD 1$/, { pid: w.pid, fromLine: from });
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^SIGNAL 10$/, { pid: w.pid, fromLine: from });
    expect(failLines(w.report)).toEqual([]);
  });

  it('dump -R consumes nothing: eventfd counters and timer ticks stay for the program', async () => {
    const w = await startEpoller();
    const ticks = timerState(w.pid, FD.lazy).ticks;
    const dir = path.join(tempDir('criu-ts-eventfds-'), 'images');
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-R']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(eventfdState(w.pid, FD.counter)).toEqual({ count: COUNTER, semaphore: '0' });
    expect(eventfdState(w.pid, FD.sem)).toEqual({ count: 3n, semaphore: '1' });
    expect(timerState(w.pid, FD.lazy).ticks).toBeGreaterThanOrEqual(ticks);
    const dumped = entryOf(dir, w.pid, FD.lazy).tfd!.ticks;
    writeEventfd(w.pid, FD.evfd, 5n);
    await waitForLine(w.report, /^EVENTFD 5$/, { pid: w.pid });
    const st = await askState(w.pid, w.report);
    expect(st.COUNTER).toBe(COUNTER.toString(16));
    expect(st.SEM).toBe('1 1 1 EAGAIN');
    expect(BigInt(st.LAZY!)).toBeGreaterThanOrEqual(dumped);
    expect(failLines(w.report)).toEqual([]);
  });
});

describe('criu-ts dump/restore: epoll targets closed or renumbered', () => {
  // A python3 task whose epoll watches an eventfd by a number the task then closes (the epoll keeps the
  // target: a dup still holds the file), optionally reusing the number for another eventfd. It reports
  // every event its epoll gives, with the value read from the dup.
  const script = (reuse: boolean) => `
import os, select, sys
out = open(sys.argv[1], 'a', buffering=1)
ep = select.epoll()
e = os.eventfd(0, os.EFD_NONBLOCK)
ep.register(e, select.EPOLLIN)
keep = os.dup(e)
os.close(e)
other = e
${reuse ? 'other = os.eventfd(0, os.EFD_NONBLOCK)\nassert other == e' : ''}
out.write('READY %d %d %d %d\\n' % (os.getpid(), ep.fileno(), e, keep))
while True:
    for fd, ev in ep.poll(-1):
        out.write('EVENT %d %x %d\\n' % (fd, ev, os.eventfd_read(keep)))
`;

  for (const reuse of [false, true]) {
    it(
      reuse
        ? 'a target number reused for another file: the watch comes back on the file, under its dup'
        : 'a target whose fd was closed while a dup lives on: the watch comes back under the dup',
      async () => {
        const dir = tempDir('criu-ts-eventfds-py-');
        const report = path.join(dir, 'report');
        const pid = await startCommand([PYTHON, '-c', script(reuse), report]);
        const ready = await waitForLine(report, /^READY /, { pid });
        const [epfd, tfd, keep] = ready.split(' ').slice(2).map(Number) as [number, number, number];
        // The kernel still shows the target under the closed number (python adds EPOLLERR|EPOLLHUP).
        const before = epollTargets(pid, epfd);
        expect(before).toHaveLength(1);
        const [num0, events, data] = before[0]!.split(' ') as [string, string, string];
        expect([Number(num0), events]).toEqual([tfd, '19']);
        const images = await dumpAndKill(pid);
        // As CRIU writes it: the target under the number where the task still has its file.
        const tfds = entryOf(images, pid, epfd).epfd!.tfd!;
        expect(tfds.map((t) => [t.tfd, t.events, t.data])).toEqual([[keep, 0x19, BigInt(`0x${data}`)]]);
        await restoreDetached(images);
        track(pid);
        expect(epollTargets(pid, epfd)).toEqual([`${keep} ${events} ${data}`]);
        const from = readLines(report).length;
        // Another eventfd at the old number wakes nothing; the watched file does, with its data.
        if (reuse) writeEventfd(pid, tfd, 3n);
        writeEventfd(pid, keep, 5n);
        await waitForLine(report, /^EVENT /, { pid, fromLine: from });
        expect(readLines(report).slice(from)).toEqual([`EVENT ${tfd} 1 5`]);
      },
    );
  }

  it('an epoll only in flight in a socket queue keeps its target (a task of the tree adds it back)', async () => {
    const script = `
import os, select, signal, socket, sys
out = open(sys.argv[1], 'a', buffering=1)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
ep = select.epoll()
ep.register(b.fileno(), select.EPOLLIN)
for _ in range(2):
    socket.send_fds(a, [b'x'], [ep.fileno()])
ep.close()
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
out.write('READY %d %d\\n' % (os.getpid(), b.fileno()))
signal.sigwait([signal.SIGUSR1])
msg, fds, _f, _a = socket.recv_fds(b, 16, 4)
got = select.epoll.fromfd(fds[0]).poll(0)
out.write('POLL %s\\n' % ' '.join('%d:%x' % (fd, ev) for fd, ev in got))
`;
    const dir = tempDir('criu-ts-eventfds-py-');
    const report = path.join(dir, 'report');
    const pid = await startCommand([PYTHON, '-c', script, report]);
    const ready = await waitForLine(report, /^READY /, { pid });
    const b = Number(ready.split(' ')[2]);
    const images = await dumpAndKill(pid);
    await restoreDetached(images);
    track(pid);
    process.kill(pid, 'SIGUSR1');
    // The second datagram is still queued: the epoll that came back in the first reports it.
    expect(await waitForLine(report, /^POLL/, { pid })).toBe(`POLL ${b}:1`);
  });

  // What restore cannot bring back is still refused, with the tree running on.
  const refused = {
    'a target open only in a child that does not hold the epoll': {
      setup: `
if os.fork() == 0:
    os.close(ep.fileno())
    while True: time.sleep(1)
os.close(keep)`,
      message: /no task holding the epoll has open any more/,
    },
    'one file watched under two numbers, one of them since closed': {
      setup: `
ep.register(keep, select.EPOLLIN)`,
      message: /watches the file of fd \d+ twice/,
    },
  };
  for (const [name, { setup, message }] of Object.entries(refused)) {
    it(`refused: ${name}`, async () => {
      const dir = tempDir('criu-ts-eventfds-py-');
      const report = path.join(dir, 'report');
      const body = `
import os, select, sys, time
out = open(sys.argv[1], 'a', buffering=1)
ep = select.epoll()
e = os.eventfd(0)
ep.register(e, select.EPOLLIN)
keep = os.dup(e)
os.close(e)
${setup}
out.write('READY %d\\n' % os.getpid())
n = 0
while True:
    n += 1
    out.write('%d\\n' % n)
    time.sleep(0.01)
`;
      const pid = await startCommand([PYTHON, '-c', body, report]);
      await waitForLine(report, /^READY /, { pid });
      for (const c of fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean))
        track(Number(c));
      const r = await runCli(['dump', '-t', String(pid), '-D', path.join(dir, 'images')]);
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      // The task runs on untouched.
      const n = readLines(report).length;
      await waitForLine(report, (_l, i) => i >= n + 3, { pid, fromLine: n });
      expect(procState(pid)).not.toBe('gone');
    });
  }
});

describe('criu-ts dump/restore: epoll inside epoll, flags passed through', () => {
  it('an epoll watching another epoll (EPOLLET) and an eventfd (EPOLLEXCLUSIVE)', async () => {
    const script = `
import os, select, sys, time
out = open(sys.argv[1], 'a', buffering=1)
outer = select.epoll()
inner = select.epoll()
e = os.eventfd(0, os.EFD_NONBLOCK)
x = os.eventfd(0, os.EFD_NONBLOCK)
inner.register(e, select.EPOLLIN | select.EPOLLET)
outer.register(inner.fileno(), select.EPOLLIN)
outer.register(x, select.EPOLLIN | select.EPOLLEXCLUSIVE)
out.write('READY %d %d %d %d %d\\n' % (os.getpid(), outer.fileno(), inner.fileno(), e, x))
while True:
    for fd, ev in outer.poll(-1):
        if fd == inner.fileno():
            for fd2, ev2 in inner.poll(0):
                out.write('INNER %d %x %d\\n' % (fd2, ev2, os.eventfd_read(e)))
        else:
            out.write('OUTER %d %x %d\\n' % (fd, ev, os.eventfd_read(x)))
`;
    const dir = tempDir('criu-ts-eventfds-py-');
    const report = path.join(dir, 'report');
    const pid = await startCommand([PYTHON, '-c', script, report]);
    const ready = await waitForLine(report, /^READY /, { pid });
    const [, , outer, inner, e, x] = ready.split(' ').map(Number) as number[];
    const before = [epollTargets(pid, outer!), epollTargets(pid, inner!)];
    // events as the kernel keeps them: EPOLLIN | EPOLLERR | EPOLLHUP, plus EPOLLEXCLUSIVE or EPOLLET
    // (python sets only the low half of data: the rest is whatever was on its stack, kept as is)
    const events = (l: string[]) => l.map((t) => t.split(' ').slice(0, 2).join(' ')).sort();
    expect(events(before[0]!)).toEqual([`${inner} 19`, `${x} 10000019`].sort());
    expect(events(before[1]!)).toEqual([`${e} 80000019`]);
    const images = await dumpAndKill(pid);
    await restoreDetached(images);
    expect([epollTargets(pid, outer!), epollTargets(pid, inner!)]).toEqual(before);
    writeEventfd(pid, e!, 3n);
    await waitForLine(report, new RegExp(`^INNER ${e} 1 3$`), { pid });
    writeEventfd(pid, x!, 4n);
    await waitForLine(report, new RegExp(`^OUTER ${x} 1 4$`), { pid });
  });
});

const EVENTS_PY = `
import ctypes, os, select, signal, struct, sys, time
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
libc = ctypes.CDLL(None, use_errno=True)
libc.timerfd_create.restype = ctypes.c_int
def check(r, what):
    if r < 0: out.write('FAIL %s errno=%d\\n' % (what, ctypes.get_errno())); sys.exit(1)
    return r
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGUSR2])
efd = os.eventfd(0)
os.eventfd_write(efd, 5)
tfd = check(libc.timerfd_create(1, 0), 'timerfd_create')  # CLOCK_MONOTONIC
spec = struct.pack('qqqq', 0, 30_000_000, 0, 30_000_000)   # every 30 ms
check(libc.timerfd_settime(tfd, 0, spec, None), 'timerfd_settime')
mask = struct.pack('Q', 1 << (signal.SIGUSR1 - 1))
sfd = check(libc.signalfd(-1, mask, 0), 'signalfd')
r, w = os.pipe()
os.write(w, b'x')
ep = select.epoll()
for fd in (efd, tfd, sfd, r): ep.register(fd, select.EPOLLIN)
names = {efd: 'eventfd', tfd: 'timerfd', sfd: 'signalfd', r: 'pipe'}
if os.fork() == 0:                    # a child holding the same epoll set
    out.write('CHILD %d\\n' % os.getpid())
    signal.sigwait([signal.SIGUSR2]); sys.exit(0)
out.write('READY\\n')
signal.sigwait([signal.SIGUSR2])      # the dump happens here; the timer expires unread meanwhile
ready = sorted(names[fd] for fd, ev in ep.poll(2))
out.write('READYSET %s\\n' % ' '.join(ready))
count = os.eventfd_read(efd)
ticks = struct.unpack('Q', os.read(tfd, 8))[0]
signo = struct.unpack('I', os.read(sfd, 128)[:4])[0]
out.write('VALUES eventfd=%d ticks>0=%s signo=%d pipe=%s\\n' % (count, ticks > 0, signo, os.read(r, 1).decode()))
t0 = time.monotonic()
for i in range(5): os.read(tfd, 8)   # blocks until the timer fires again: it must still be periodic
out.write('PERIODIC %s\\n' % (time.monotonic() - t0 < 5))
`;

async function startEvents(): Promise<{ pid: number; child: number; report: string }> {
  const d = tempDir('criu-ts-events-');
  const report = path.join(d, 'report');
  const pid = startTraceable([PYTHON, '-c', EVENTS_PY, report], { setsid: true });
  track(pid);
  await waitForLine(report, /^READY$/, { pid });
  const child = Number((await waitForLine(report, /^CHILD /, { pid })).split(' ')[1]);
  track(child);
  await waitFor(() => procState(pid) === 'S' && procState(child) === 'S', 'both in sigwait');
  // Let the 30 ms timer expire unread at least once before the dump.
  const t0 = Date.now();
  await waitFor(() => Date.now() - t0 > 100, 'the timer to expire');
  return { pid, child, report };
}

async function expectOwed(w: { pid: number; child: number; report: string }): Promise<void> {
  process.kill(w.pid, 'SIGUSR1');
  process.kill(w.pid, 'SIGUSR2');
  await waitForLine(w.report, /^PERIODIC /, { pid: w.pid });
  const lines = readLines(w.report);
  expect(lines).toContain('READYSET eventfd pipe signalfd timerfd');
  expect(lines).toContain('VALUES eventfd=5 ticks>0=True signo=10 pipe=x');
  expect(lines).toContain('PERIODIC True');
  process.kill(w.child, 'SIGUSR2');
}

describe('criu-ts restore: eventfd, timerfd, signalfd, epoll (python3, with a pipe)', () => {
  it('an epoll set over an eventfd, a timerfd, a signalfd and a pipe: every value owed is there after restore', async () => {
    const w = await startEvents();
    const dir = await cliDump(w.pid);
    for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
    const r = await runCli(['restore', '-D', dir, '-d']);
    if (r.code !== 0 || r.stderr) throw new Error(`restore: exit ${r.code}: ${r.stderr}`);
    const files = ImageDir.open(dir).files();
    const timer = files.find((f) => f.tfd)!.tfd!;
    // Expired, unread: fdinfo showed 0 left and one tick; the dump counted the missed periods and the
    // time to the next one instead.
    expect(timer.ticks).toBeGreaterThan(0n);
    const left = timer.vsec * NS + timer.vnsec;
    expect(left > 0n && left <= 30_000_000n).toBe(true);
    expect(files.find((f) => f.epfd)!.epfd!.tfd).toHaveLength(4);
    await expectOwed(w);
  });

  it('dump -R consumes nothing: the counter, the ticks, the signal and the byte are all still there', async () => {
    const w = await startEvents();
    await cliDump(w.pid, ['-R']);
    await expectOwed(w);
  });

  it.skipIf(!haveCrit)('crit decodes the eventfd, timerfd, signalfd and epoll entries', async () => {
    const w = await startEvents();
    const dir = await cliDump(w.pid, ['-R']);
    const { decoded, failures } = critDecodeAll(dir, ['files.img']);
    expect(failures).toEqual([]);
    const types = entries(decoded.get('files.img')).map((f) => f.type);
    for (const t of ['EVENTFD', 'TIMERFD', 'SIGNALFD', 'EVENTPOLL', 'PIPE']) expect(types).toContain(t);
  });
});
