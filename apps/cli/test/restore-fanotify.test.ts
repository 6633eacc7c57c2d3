// fanotify and /dev/console: `criu-ts dump` then `criu-ts restore` of real processes (tools/workloads
// fsnotify, python3), checked from outside - the events a restored fanotify group still reports for
// files written after the restore, its marks as /proc/PID/fdinfo shows them, the console fd's link and
// flags - and the images through crit. A group's unread events are dropped at dump, as CRIU drops them,
// and the dump log says so.
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  critDecodeAll,
  dumpAndKill,
  entries,
  failLines,
  haveCrit,
  mountTmpfs,
  num,
  type Obj,
  obj,
  PYTHON,
  procState,
  procSyscall,
  readFds,
  readLines,
  restoreDetached,
  runCli,
  startCommand,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** fsnotify's fanotify group (see tools/workloads/src/fsnotify.c). */
const GROUP_FD = 4;
const FAN_CLOSE_WRITE = 0x8;
const FAN_MARK_IGNORED_SURV_MODIFY = 0x40;
const SYS_RT_SIGSUSPEND = 130;

function imagesDir(): string {
  return path.join(tempDir('criu-ts-fanotify-img-'), 'images');
}

/** The fdinfo lines of fd `fd` of `pid` that start with `prefix`, sorted. */
function fdinfoLines(pid: number, fd: number, prefix: string): string[] {
  return fs
    .readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .sort();
}

function decoded(dir: string, img: string): Obj[] {
  const { decoded: d, failures } = critDecodeAll(dir, [img]);
  expect(failures).toEqual([]);
  return entries(d.get(img));
}

/** fsnotify fanotify-unread asleep in sigsuspend(), where its state and signal mask hold still. */
async function waitInSigsuspend(pid: number): Promise<void> {
  await waitFor(
    () => procState(pid) === 'S' && procSyscall(pid) === SYS_RT_SIGSUSPEND,
    () => `pid ${pid} asleep in sigsuspend() (${procState(pid)}, syscall ${procSyscall(pid)})`,
  );
}

/** A report line of fsnotify for a close-write of `file`. */
const closeWriteOf = (file: string) => `FAN mask=${FAN_CLOSE_WRITE.toString(16)} path=${file}`;

describe('criu-ts dump/restore: fanotify', () => {
  it('unread events are dropped as CRIU drops them (the log says so); the marks come back', async () => {
    const watched = tempDir('criu-ts-fanotify-q-');
    const w = startWorkload('fsnotify', ['fanotify-unread', watched]);
    await waitForLine(w.report, /^QUEUED$/, { pid: w.pid });
    await waitInSigsuspend(w.pid);
    const marks = fdinfoLines(w.pid, GROUP_FD, 'fanotify');
    const dir = imagesDir();
    const logFile = path.join(path.dirname(dir), 'dump.log');
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-v4', '-o', logFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.readFileSync(logFile, 'utf8')).toMatch(
      new RegExp(`pid ${w.pid} fd ${GROUP_FD} \\(fanotify\\): \\d+ bytes of unread events are dropped`),
    );
    killAndReap(w.pid);
    expect(procState(w.pid)).toBe('gone');
    await restoreDetached(dir);
    track(w.pid);
    expect(fdinfoLines(w.pid, GROUP_FD, 'fanotify')).toEqual(marks);
    // The queued event is gone; a file written after the restore is reported.
    fs.writeFileSync(path.join(watched, 'after'), 'x');
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^DRAINED$/, { pid: w.pid });
    const lines = readLines(w.report);
    expect(lines).toContain(closeWriteOf(path.join(watched, 'after')));
    expect(lines).not.toContain(closeWriteOf(path.join(watched, 'queued')));
    expect(failLines(w.report)).toEqual([]);
  });

  it('inode and mount marks come back: the restored group reports files written after the restore', async () => {
    const base = tempDir('criu-ts-fanotify-');
    const watched = path.join(base, 'watched');
    const mnt = path.join(base, 'mnt');
    fs.mkdirSync(watched);
    mountTmpfs(mnt, '1m');
    const w = startWorkload('fsnotify', ['fanotify', watched, mnt]);
    await waitForLine(w.report, /^MARKED$/, { pid: w.pid });
    const marks = fdinfoLines(w.pid, GROUP_FD, 'fanotify');
    // The flags line, two inode marks (the directory, and "ignored" with its ignored mask), a mount mark.
    expect(marks).toHaveLength(4);
    const fdBefore = readFds(w.pid).find((f) => f.fd === GROUP_FD);
    expect(fdBefore?.link).toBe('anon_inode:[fanotify]');

    const dir = await dumpAndKill(w.pid);
    if (haveCrit) {
      const ffy = obj(decoded(dir, 'files.img').find((e) => e.type === 'FANOTIFY')!.ffy);
      const byType = (t: string) => (ffy.mark as Obj[]).filter((m) => m.type === t);
      expect(
        byType('INODE')
          .map((m) => obj(obj(m.ie).f_handle).path)
          .sort(),
      ).toEqual([watched, path.join(watched, 'ignored')]);
      const ignoring = byType('INODE').find((m) => num(m.ignored_mask) !== 0)!;
      expect(num(ignoring.ignored_mask)).toBe(FAN_CLOSE_WRITE);
      expect(num(ignoring.mflags)).toBe(FAN_MARK_IGNORED_SURV_MODIFY);
      expect(byType('MOUNT').map((m) => obj(m.me).path)).toEqual([mnt]);
    }

    const n = readLines(w.report).length;
    await restoreDetached(dir);
    expect(fdinfoLines(w.pid, GROUP_FD, 'fanotify')).toEqual(marks);
    expect(readFds(w.pid).find((f) => f.fd === GROUP_FD)).toEqual(fdBefore);
    fs.writeFileSync(path.join(watched, 'ignored'), 'x');
    fs.writeFileSync(path.join(watched, 'one'), 'x');
    fs.writeFileSync(path.join(mnt, 'two'), 'x');
    const from = { pid: w.pid, fromLine: n };
    await waitForLine(w.report, (l) => l === closeWriteOf(path.join(watched, 'one')), from);
    await waitForLine(w.report, (l) => l === closeWriteOf(path.join(mnt, 'two')), from);
    // Events come in order: the write of "ignored" came first, and its ignored mask held.
    expect(readLines(w.report).slice(n)).toEqual([
      closeWriteOf(path.join(watched, 'one')),
      closeWriteOf(path.join(mnt, 'two')),
    ]);
  });
});

describe('criu-ts dump/restore: terminals other than the shell`s', () => {
  it('/dev/console is opened again on /dev/console, with the flags it had', async () => {
    const script = `
import os, sys, time
out = open(sys.argv[1], 'a', buffering=1)
fd = os.open('/dev/console', os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
out.write('READY %d fd=%d\\n' % (os.getpid(), fd))
n = 0
while True:
    n += 1
    out.write('%d %s\\n' % (n, os.isatty(fd)))
    time.sleep(0.01)
`;
    const report = path.join(tempDir('criu-ts-console-'), 'report');
    const pid = await startCommand([PYTHON, '-c', script, report]);
    const fd = Number(/fd=(\d+)/.exec(await waitForLine(report, /^READY /, { pid }))![1]);
    await waitForLine(report, /^3 True$/, { pid });
    const before = readFds(pid).find((f) => f.fd === fd);
    expect(before?.link).toBe('/dev/console');
    const rdev = fs.statSync(`/proc/${pid}/fd/${fd}`).rdev;

    const dir = await dumpAndKill(pid);
    if (haveCrit) {
      expect(decoded(dir, 'tty-info.img').map((i) => i.type)).toEqual(['CONSOLE']);
      const files = decoded(dir, 'files.img');
      const tty = obj(files.find((e) => e.type === 'TTY')!.tty);
      const reg = files.find((e) => e.id === tty.regf_id);
      expect(obj(reg?.reg).name).toBe('/dev/console');
    }

    await restoreDetached(dir);
    expect(readFds(pid).find((f) => f.fd === fd)).toEqual(before);
    expect(fs.statSync(`/proc/${pid}/fd/${fd}`).rdev).toBe(rdev);
    await waitForMoreLines(report, 5, pid);
    expect(readLines(report).at(-1)).toMatch(/^\d+ True$/);
  });

  it('a pty master is refused at dump, naming it (ptys cannot come back yet); the task runs on', async () => {
    const script = `
import os, sys, time
master, slave = os.openpty()
os.close(slave)
open(sys.argv[1], 'w').write('READY %d\\n' % os.getpid())
while True:
    time.sleep(1)
`;
    const report = path.join(tempDir('criu-ts-pty-'), 'report');
    const pid = await startCommand([PYTHON, '-c', script, report]);
    await waitForLine(report, /^READY /, { pid });
    const r = await runCli([
      'dump',
      '-t',
      String(pid),
      '-D',
      path.join(tempDir('criu-ts-pty-img-'), 'images'),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `pid ${pid} fd \\d+: the master of pty \\d+ \\(/dev/\\S*ptmx\\): ptys other than the shell's terminal are not supported yet`,
      ),
    );
    expect(procState(pid)).toBe('S');
  });
});
