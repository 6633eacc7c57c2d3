// eventfd, timerfd, signalfd and an epoll set watching them and a pipe, dumped, killed and restored:
// after restore the program finds every target ready in epoll and reads the values it was owed (the
// eventfd counter, the timer's unread expirations, the signal, the pipe's byte), and the periodic
// timer keeps firing (an expired, unread periodic timer shows 0 time left: restoring that 0 must not
// disarm it). The epoll set is shared with a forked child.
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  critDecodeAll,
  entries,
  haveCrit,
  PYTHON,
  procState,
  readLines,
  runCli,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

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

async function dump(pid: number, extra: string[] = []): Promise<string> {
  const dir = path.join(tempDir('criu-ts-events-img-'), 'images');
  const r = await runCli(['dump', '-t', String(pid), '-D', dir, ...extra]);
  if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
  return dir;
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

describe('criu-ts restore: eventfd, timerfd, signalfd, epoll', () => {
  it('an epoll set over an eventfd, a timerfd, a signalfd and a pipe: every value owed is there after restore', async () => {
    const w = await startEvents();
    const dir = await dump(w.pid);
    for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
    const r = await runCli(['restore', '-D', dir, '-d']);
    if (r.code !== 0 || r.stderr) throw new Error(`restore: exit ${r.code}: ${r.stderr}`);
    const files = ImageDir.open(dir).files();
    const timer = files.find((f) => f.tfd)!.tfd!;
    expect(timer.ticks).toBeGreaterThan(0n); // expired, unread...
    expect([timer.vsec, timer.vnsec]).toEqual([0n, 0n]); // ...so fdinfo showed no time left
    expect(files.find((f) => f.epfd)!.epfd!.tfd).toHaveLength(4);
    await expectOwed(w);
  });

  it('dump -R consumes nothing: the counter, the ticks, the signal and the byte are all still there', async () => {
    const w = await startEvents();
    await dump(w.pid, ['-R']);
    await expectOwed(w);
  });

  it.skipIf(!haveCrit)('crit decodes the eventfd, timerfd, signalfd and epoll entries', async () => {
    const w = await startEvents();
    const dir = await dump(w.pid, ['-R']);
    const { decoded, failures } = critDecodeAll(dir, ['files.img']);
    expect(failures).toEqual([]);
    const types = entries(decoded.get('files.img')).map((f) => f.type);
    for (const t of ['EVENTFD', 'TIMERFD', 'SIGNALFD', 'EVENTPOLL', 'PIPE']) expect(types).toContain(t);
  });
});
