// fdinfo of real eventfd, epoll, inotify, fanotify, timerfd, signalfd, locked files and a pipe.

import { readFileSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { ProcDir, parseFdInfo } from '../src/index.js';
import { firstLine, killStarted, start, waitSleeping } from './helpers.js';
import { refFdInfo } from './reference.js';

afterEach(killStarted);

const SCRIPT = `
import ctypes, fcntl, json, os, select, signal, sys, tempfile
libc = ctypes.CDLL(None, use_errno=True)
d = tempfile.mkdtemp(prefix="bfd-fdinfo-")
out = {"dir": d}
out["eventfd"] = os.eventfd(5, os.EFD_SEMAPHORE)
r, w = os.pipe()
out["pipe"] = r
ep = select.epoll()
ep.register(r, select.EPOLLIN)
ep.register(out["eventfd"], select.EPOLLOUT)
out["epoll"] = ep.fileno()
ino = libc.inotify_init1(0)
out["inotify_wd"] = libc.inotify_add_watch(ino, d.encode(), 0x100 | 0x200)
out["inotify"] = ino
fan = libc.fanotify_init(0, 0)
if fan >= 0:
    libc.fanotify_mark(fan, 1, 0x8, -100, d.encode())
    libc.fanotify_mark(fan, 1 | 0x10, 0x8, -100, b"/")
out["fanotify"] = fan
class ts(ctypes.Structure): _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]
class its(ctypes.Structure): _fields_ = [("i", ts), ("v", ts)]
tfd = libc.timerfd_create(1, 0)
libc.timerfd_settime(tfd, 0, ctypes.byref(its(ts(1, 500), ts(100, 0))), None)
out["timerfd"] = tfd
mask = ctypes.c_ulonglong((1 << (10 - 1)) | (1 << (12 - 1)))
out["signalfd"] = libc.signalfd(-1, ctypes.byref(mask), 0)
f = open(os.path.join(d, "posix"), "w"); fcntl.lockf(f, fcntl.LOCK_EX)
g = open(os.path.join(d, "flock"), "w"); fcntl.flock(g, fcntl.LOCK_SH)
out["posix"] = f.fileno()
out["flock"] = g.fileno()
print(json.dumps(out), flush=True)
signal.pause()
`;

it('parses every fd kind of a live process', async () => {
  const py = start('python3', ['-c', SCRIPT]);
  const fds = JSON.parse(await firstLine(py)) as Record<string, number> & { dir: string };
  await waitSleeping(py.pid);
  const dir = ProcDir.open(py.pid);
  try {
    // parse and reference over the same bytes (a timer's it_value moves between two reads)
    const info = (fd: number) => {
      const bytes = Buffer.from(dir.readBytes(`fdinfo/${fd}`));
      const parsed = parseFdInfo(bytes, bytes.length);
      expect(parsed).toEqual(refFdInfo(bytes.toString('utf8')));
      if (fd !== fds.timerfd) {
        expect(dir.fdinfo(fd)).toEqual(refFdInfo(readFileSync(`/proc/${py.pid}/fdinfo/${fd}`, 'utf8')));
      }
      return parsed;
    };
    const ev = info(fds.eventfd!);
    expect(ev.eventfd?.count).toBe(5n);
    expect(ev.eventfd?.semaphore).toBe(true);
    expect(ev.flags & 0o3).toBe(2); // O_RDWR

    const ep = info(fds.epoll!);
    expect(ep.epoll?.map((t) => t.tfd).sort()).toEqual([fds.pipe, fds.eventfd].sort());
    const pipeTfd = ep.epoll!.find((t) => t.tfd === fds.pipe)!;
    expect(pipeTfd.events & 1).toBe(1); // EPOLLIN
    expect(pipeTfd.data).toBe(BigInt(fds.pipe!)); // python stores the fd in data
    expect(pipeTfd.ino).toBe(info(fds.pipe!).ino);

    const ino = info(fds.inotify!);
    expect(ino.inotify).toHaveLength(1);
    expect(ino.inotify![0]!.wd).toBe(fds.inotify_wd);
    expect(ino.inotify![0]!.mask & 0x300).toBe(0x300);

    if (fds.fanotify! >= 0) {
      const fan = info(fds.fanotify!).fanotify!;
      expect(fan.marks.map((m) => m.kind).sort()).toEqual(['inode', 'mount']);
      expect(fan.marks.every((m) => m.mask === 8)).toBe(true);
    }

    const t = info(fds.timerfd!).timerfd!;
    expect(t.clockid).toBe(1);
    expect(t.itInterval).toEqual({ sec: 1n, nsec: 500n });
    expect(t.itValue.sec <= 100n).toBe(true);

    expect(info(fds.signalfd!).sigmask).toBe(0xa00n);

    const posix = info(fds.posix!).locks!;
    expect(posix).toHaveLength(1);
    expect(posix[0]).toMatchObject({
      type: 'POSIX',
      access: 'WRITE',
      pid: py.pid,
      blocked: false,
      end: undefined,
    });
    const fl = info(fds.flock!).locks!;
    expect(fl[0]).toMatchObject({ type: 'FLOCK', access: 'READ', pid: py.pid });
    expect(fl[0]!.ino).toBe(info(fds.flock!).ino);

    // every fd of the process agrees with the reference
    for (const fd of dir.fds()) info(fd);
  } finally {
    dir.close();
    const d = fds.dir;
    if (d?.startsWith('/tmp/bfd-fdinfo-'))
      (await import('node:fs')).rmSync(d, { recursive: true, force: true });
  }
});

it('an epoll fdinfo larger than a page (500 targets) is read whole', async () => {
  const py = start('python3', [
    '-c',
    [
      'import os, select, signal',
      'ep = select.epoll()',
      'fds = [os.eventfd(0) for _ in range(500)]',
      '[ep.register(f, select.EPOLLIN) for f in fds]',
      'print(ep.fileno(), flush=True)',
      'signal.pause()',
    ].join('\n'),
  ]);
  const epfd = Number(await firstLine(py));
  await waitSleeping(py.pid);
  const dir = ProcDir.open(py.pid);
  try {
    const text = readFileSync(`/proc/${py.pid}/fdinfo/${epfd}`, 'utf8');
    expect(text.length).toBeGreaterThan(4096 * 4);
    const info = dir.fdinfo(epfd);
    expect(info.epoll).toHaveLength(500);
    expect(info).toEqual(refFdInfo(text));
  } finally {
    dir.close();
  }
});
