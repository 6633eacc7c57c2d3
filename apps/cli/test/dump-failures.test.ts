// A failed dump harms nothing: it ends with one line naming the pid / fd / object, exit code 1, and
// every task is let go exactly as it was: untraced, in the same state, same maps, signals and fds, and
// its own checks keep passing. Cases: fds criu-ts cannot dump (an unlinked file over the ghost limit,
// a userfaultfd), tasks that exit during the dump, EPERM (a kernel thread; a tree holding the dumper itself), a full disk, Ctrl-C.
import fs from 'node:fs';
import path from 'node:path';
import { kill, SIGINT, SIGKILL, SIGUSR1 } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  CRIU_TS,
  cleanup,
  expectAsBefore,
  expectCountsOn,
  failLines,
  mountTmpfs,
  oneLineFailure,
  procState,
  readLines,
  runCli,
  snapshot,
  startCommand,
  startPythonCounter,
  startWorkload,
  tempDir,
  tracerPid,
  track,
  waitFor,
  waitForLine,
  waitForMoreLines,
  waitInPause,
  workloadPath,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
function canOpen(path: string): boolean {
  try {
    fs.closeSync(fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY));
    return true;
  } catch {
    return false;
  }
}

/** A userfaultfd: a kind of fd criu-ts has no driver for (CRIU neither), so a dump of it fails. */
const UFFD_PY = 'import ctypes; uffd = ctypes.CDLL(None).syscall(323, 0)';

afterEach(() => cleanup());

const newImagesDir = () => path.join(tempDir('criu-ts-core-fail-'), 'images');

describe('a dump that fails harms nothing', () => {
  it('an unlinked file over the ghost limit on fd 1 of a counter: exit 1 naming pid, fd and path; the counter counts on', async () => {
    const dir = tempDir('criu-ts-core-ghost-');
    const out = path.join(dir, 'out');
    const w = startWorkload('counter', ['5'], { stdout: out });
    fs.appendFileSync(out, Buffer.alloc(2 * 1024 * 1024, 1)); // 2 MiB on disk: over the default 1 MiB
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    fs.unlinkSync(out); // no name left: only a ghost file could carry it, and it is too big for one
    const before = snapshot(w.pid);
    const r = await runCli(['dump', '-t', String(w.pid), '-D', newImagesDir()]);
    const line = oneLineFailure(r);
    expect(line).toContain(`pid ${w.pid}`);
    expect(line).toMatch(/fd 1\b/);
    expect(line).toContain(`Can't dump ghost file ${out} of `); // CRIU's words
    await expectAsBefore(w.pid, before);
    await expectCountsOn(w.report, w.pid);
  });

  it('a python3 holding a userfaultfd (no driver): exit 1 naming the fd; python counts on', async () => {
    const py = await startPythonCounter(UFFD_PY);
    await waitForLine(py.report, /^3$/, { pid: py.pid });
    const before = snapshot(py.pid);
    const r = await runCli(['dump', '-t', String(py.pid), '-D', newImagesDir()]);
    const line = oneLineFailure(r);
    expect(line).toContain(`pid ${py.pid}`);
    expect(line).toMatch(/fd 3\b.*anon_inode:\[userfaultfd\]/);
    await expectAsBefore(py.pid, before);
    await expectCountsOn(py.report, py.pid);
  });

  it.skipIf(!canOpen('/dev/tty1'))(
    'a virtual console (/dev/tty1), which restore cannot open again yet: exit 1 naming it; python counts on',
    async () => {
      const py = await startPythonCounter("t = os.open('/dev/tty1', os.O_RDONLY | os.O_NOCTTY)");
      await waitForLine(py.report, /^3$/, { pid: py.pid });
      const before = snapshot(py.pid);
      const r = await runCli(['dump', '-t', String(py.pid), '-D', newImagesDir()]);
      expect(oneLineFailure(r)).toMatch(
        new RegExp(`pid ${py.pid} fd 3: the terminal /dev/tty1: only the shell's terminal`),
      );
      await expectAsBefore(py.pid, before);
      await expectCountsOn(py.report, py.pid);
    },
  );

  it('a task killed while the dump holds the tree: exit 1 naming it; the others run on', async () => {
    // sh -> {memhog (dumped first: lower pid, 256 MiB to copy), sleep (killed meanwhile)}
    const attempt = async () => {
      const dir = tempDir('criu-ts-core-gone-');
      const report = path.join(dir, 'report');
      const sh = await startCommand([
        '/bin/sh',
        '-c',
        '"$0" "$1" 256 & /usr/bin/sleep 1000 & wait',
        workloadPath('memhog'),
        report,
      ]);
      const sum = await waitForLine(report, /^SUM /, { timeoutMs: 60_000 });
      let kids: number[] = [];
      await waitFor(() => {
        kids = fs.readFileSync(`/proc/${sh}/task/${sh}/children`, 'utf8').trim().split(/\s+/).map(Number);
        return kids.length === 2;
      }, 'two children of the shell');
      track(...kids);
      const hog = Number(readLines(report)[0]!.split(' ')[1]);
      const sleeper = kids.find((k) => k !== hog)!;
      expect(hog).toBeLessThan(sleeper);
      await waitInPause(hog);
      await waitFor(() => [sh, sleeper].every((p) => procState(p) === 'S'), 'the tree asleep');
      const hogBefore = snapshot(hog);
      let killedWhileTraced = false;
      const r = await runCli(['dump', '-t', String(sh), '-D', newImagesDir()], (cli) => {
        void waitFor(
          () => tracerPid(sleeper) > 0 || procState(cli) === 'gone',
          'the dump to seize sleep',
          30_000,
        )
          .catch(() => undefined)
          .then(() => {
            killedWhileTraced = tracerPid(sleeper) === cli;
            kill(sleeper, SIGKILL);
          });
      });
      return { r, sh, hog, sleeper, sum, report, hogBefore, killedWhileTraced };
    };
    // On a loaded machine this test can react too late: the dump already went past the sleep and
    // succeeded (exit 0, the tree killed as by default). That proves nothing either way: try again.
    let a = await attempt();
    for (let i = 0; i < 2 && a.r.code === 0; i++) a = await attempt();
    expect(a.killedWhileTraced, 'sleep was killed while the dump held it').toBe(true);
    const line = oneLineFailure(a.r);
    expect(line).toContain(String(a.sleeper));
    await expectAsBefore(a.hog, a.hogBefore);
    await waitFor(() => tracerPid(a.sh) === 0 && procState(a.sh) === 'S', 'the shell untraced, waiting');
    const n = readLines(a.report).length;
    kill(a.hog, SIGUSR1);
    expect(await waitForLine(a.report, /^SUM /, { pid: a.hog, fromLine: n })).toBe(a.sum);
  });

  it('EPERM, a kernel thread (kthreadd): exit 1 naming pid 2 and EPERM', async () => {
    // Not pid 1: on this machine pid 1 is the session's own supervisor, which a test must never seize.
    expect(fs.readFileSync('/proc/2/comm', 'utf8').trim()).toBe('kthreadd');
    const r = await runCli(['dump', '-t', '2', '-D', newImagesDir()]);
    const line = oneLineFailure(r);
    expect(line).toMatch(/\bpid 2\b/);
    expect(line).toMatch(/EPERM/);
    expect(procState(2)).not.toBe('gone');
  });

  it("a tree that holds criu-ts itself: exit 1 in CRIU's words, naming criu-ts; the tree runs on", async () => {
    const dir = tempDir('criu-ts-core-self-');
    const err = path.join(dir, 'err');
    const rc = path.join(dir, 'rc');
    // The shell dumps its own tree, criu-ts included; then becomes a sleep.
    const sh = await startCommand([
      '/bin/sh',
      '-c',
      '"$0" dump -t $$ -D "$1" -R 2>"$2"; echo "rc=$?" >"$3"; exec /usr/bin/sleep 1000',
      CRIU_TS,
      path.join(dir, 'images'),
      err,
      rc,
    ]);
    await waitForLine(rc, /^rc=/, { pid: sh, timeoutMs: 30_000 });
    expect(readLines(rc)).toEqual(['rc=1']);
    const lines = readLines(err);
    expect(lines, lines.join('\n')).toHaveLength(1);
    expect(lines[0]).toMatch(/The criu itself is within dumped tree: criu-ts is pid \d+ of it/);
    // The shell went on (it wrote rc and exec'ed sleep), untraced.
    await waitFor(() => fs.readlinkSync(`/proc/${sh}/exe`) === '/usr/bin/sleep', 'the shell to exec sleep');
    expect(tracerPid(sh)).toBe(0);
  });

  it('a full disk (64 KiB tmpfs): exit 1 with ENOSPC; the counter counts on, as before', async () => {
    const mnt = path.join(tempDir('criu-ts-core-full-'), 'mnt');
    mountTmpfs(mnt, '64k');
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const before = snapshot(w.pid);
    const r = await runCli(['dump', '-t', String(w.pid), '-D', path.join(mnt, 'images')]);
    const line = oneLineFailure(r);
    expect(line).toMatch(/ENOSPC|no space/i);
    await expectAsBefore(w.pid, before);
    await expectCountsOn(w.report, w.pid);
  });

  it('a full disk: the message names the image file it could not write', async () => {
    const mnt = path.join(tempDir('criu-ts-core-full-'), 'mnt');
    mountTmpfs(mnt, '64k');
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^3$/, { pid: w.pid });
    const r = await runCli(['dump', '-t', String(w.pid), '-D', path.join(mnt, 'images')]);
    const line = oneLineFailure(r);
    expect(line).toMatch(/[a-z]+(-\d+)?\.img/);
  });

  it('Ctrl-C while dumping a 256 MiB memhog: exit 1; memhog keeps its checksum', async () => {
    const attempt = async () => {
      const w = startWorkload('memhog', ['256']);
      const sum = await waitForLine(w.report, /^SUM /, { pid: w.pid, timeoutMs: 60_000 });
      await waitInPause(w.pid);
      const before = snapshot(w.pid);
      let sentWhileTraced = false;
      const r = await runCli(['dump', '-t', String(w.pid), '-D', newImagesDir()], (cli) => {
        // SIGINT as soon as the dump has seized the memhog (its memory takes a while to copy).
        void waitFor(
          () => tracerPid(w.pid) > 0 || procState(cli) === 'gone',
          'the dump to seize memhog',
          30_000,
        )
          .catch(() => undefined)
          .then(() => {
            sentWhileTraced = tracerPid(w.pid) === cli;
            if (sentWhileTraced) kill(cli, SIGINT);
          });
      });
      return { w, sum, before, r, sentWhileTraced };
    };
    // A loaded machine may let the dump finish before the SIGINT lands (exit 0, memhog killed, as a
    // dump without -R does): that says nothing about Ctrl-C; try again with a new memhog.
    let a = await attempt();
    for (let i = 0; i < 2 && a.r.code === 0; i++) a = await attempt();
    expect(a.sentWhileTraced, 'SIGINT was sent while the dump held memhog').toBe(true);
    const line = oneLineFailure(a.r);
    expect(line).toMatch(/interrupted|SIGINT/);
    await expectAsBefore(a.w.pid, a.before);
    const n = readLines(a.w.report).length;
    kill(a.w.pid, SIGUSR1);
    expect(await waitForLine(a.w.report, /^SUM /, { pid: a.w.pid, fromLine: n })).toBe(a.sum);
  });
});

describe('pids that are not the root of a process tree', () => {
  it('a thread id (not a process id): refused, naming the thread; the process untouched', async () => {
    const w = startWorkload('threads', ['2']);
    await waitForLine(w.report, /^TICK /, { pid: w.pid });
    const first = fs.readdirSync(`/proc/${w.pid}/task`).map(Number);
    await waitForMoreLines(w.report, 1, w.pid);
    const again = new Set(fs.readdirSync(`/proc/${w.pid}/task`).map(Number));
    const worker = first.find((t) => t !== w.pid && again.has(t))!;
    expect(worker).toBeDefined();
    const dir = newImagesDir();
    const r = await runCli(['dump', '-t', String(worker), '-D', dir, '--shell-job', '-R']);
    try {
      const line = oneLineFailure(r);
      expect(line).toContain(String(worker));
      expect(line).toMatch(/thread/);
    } finally {
      await waitFor(() => tracerPid(w.pid) === 0, 'threads untraced');
      await waitForMoreLines(w.report, 1, w.pid);
      expect(failLines(w.report)).toEqual([]);
    }
  });

  it('a zombie as the root: refused with a line saying the pid is a zombie', async () => {
    const w = startWorkload('zombie');
    const zpid = Number((await waitForLine(w.report, /^ZOMBIE /, { pid: w.pid })).split(' ')[1]);
    track(zpid);
    const r = await runCli(['dump', '-t', String(zpid), '-D', newImagesDir(), '--shell-job', '-R']);
    const line = oneLineFailure(r);
    expect(procState(zpid)).toBe('Z');
    expect(line).toContain(String(zpid));
    expect(line).toMatch(/zombie/i);
  });
});
