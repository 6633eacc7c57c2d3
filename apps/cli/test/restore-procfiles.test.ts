// /proc files a task holds open: its own /proc/PID/status and its child's are opened again once those
// pids exist (after the restore created them), and read the restored tasks; a /proc file of a task
// that has died since comes back as a dead task's file (a helper holds that pid while it is opened).
import { existsSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  critDecodeAll,
  entries,
  haveCrit,
  num,
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

const HOLDER_PY = `
import os, signal, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
child = os.fork()
if child == 0: signal.sigwait([signal.SIGUSR1]); os._exit(0)
mine = open('/proc/self/status')
theirs = open('/proc/%d/status' % child)
gone = 0
if len(sys.argv) > 2:                  # hold the status of a task that then dies
    gone = os.fork()
    if gone == 0: os._exit(0)
    dead = open('/proc/%d/status' % gone)
    os.waitpid(gone, 0)
out.write('READY %d %d %d\\n' % (child, gone, dead.fileno() if gone else -1))
signal.sigwait([signal.SIGUSR1])
pid_of = lambda f: [l.split()[1] for l in f.read().splitlines() if l.startswith('Pid:')][0]
mine.seek(0); theirs.seek(0)
out.write('PIDS %s %s\\n' % (pid_of(mine), pid_of(theirs)))
if gone:
    try:
        dead.seek(0); dead.read(); out.write('DEAD readable\\n')
    except OSError as e:
        out.write('DEAD errno %d\\n' % e.errno)
`;

describe('criu-ts restore: /proc files', () => {
  it('a task reads its own and its child status files (/proc/PID/status) after restore', async () => {
    const d = tempDir('criu-ts-proc-');
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', HOLDER_PY, report], { setsid: true });
    track(pid);
    const child = Number((await waitForLine(report, /^READY /, { pid })).split(' ')[1]);
    track(child);
    await waitFor(() => procState(pid) === 'S', 'waiting');
    const dir = path.join(tempDir('criu-ts-proc-img-'), 'images');
    const r = await runCli(['dump', '-t', String(pid), '-D', dir]);
    if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
    for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
    const rr = await runCli(['restore', '-D', dir, '-d']);
    if (rr.code !== 0 || rr.stderr) throw new Error(`restore: exit ${rr.code}: ${rr.stderr}`);
    for (const e of ImageDir.open(dir).pstree()) track(e.pid);
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^PIDS /, { pid });
    expect(readLines(report)).toContain(`PIDS ${pid} ${child}`);
    process.kill(child, 'SIGUSR1');
  });

  it("a task's own /proc/self/fdinfo/N, held open, names fd N again once N is back (a lower fd number too)", async () => {
    // The fdinfo file is held at fd 3, below the eventfd it names (fd 4): restore opens it after fd 4.
    const script = `
import os, signal, sys
os.closerange(3, 65536)
r, w = os.pipe()
os.close(r)
info = os.open('/proc/self/fdinfo/%d' % w, os.O_RDONLY)
efd = os.eventfd(0)
os.dup2(efd, w)
os.close(efd)
os.eventfd_write(w, 0x1234)
info2 = os.open('/proc/self/fdinfo/%d' % w, os.O_RDONLY)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
out.write('READY %d %d %d\\n' % (info, w, info2))
signal.sigwait([signal.SIGUSR1])
for f in (info, info2):
    os.lseek(f, 0, 0)
    count = [l.split()[1] for l in os.read(f, 4096).decode().splitlines() if l.startswith('eventfd-count')]
    out.write('COUNT %s\\n' % (count[0] if count else 'none'))
out.write('DONE\\n')
`;
    const d = tempDir('criu-ts-proc-');
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', script, report], { setsid: true });
    track(pid);
    const [info, efd, info2] = (await waitForLine(report, /^READY /, { pid }))
      .split(' ')
      .slice(1)
      .map(Number);
    expect(info).toBeLessThan(efd!);
    const dir = path.join(tempDir('criu-ts-proc-img-'), 'images');
    const r = await runCli(['dump', '-t', String(pid), '-D', dir]);
    if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
    killAndReap(pid);
    const rr = await runCli(['restore', '-D', dir, '-d']);
    if (rr.code !== 0 || rr.stderr) throw new Error(`restore: exit ${rr.code}: ${rr.stderr}`);
    track(pid);
    expect(readlinkSync(`/proc/${pid}/fd/${info}`)).toBe(`/proc/${pid}/fdinfo/${efd}`);
    expect(readlinkSync(`/proc/${pid}/fd/${info2}`)).toBe(`/proc/${pid}/fdinfo/${efd}`);
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^DONE$/, { pid });
    expect(readLines(report).filter((l) => l.startsWith('COUNT'))).toEqual(['COUNT 1234', 'COUNT 1234']);
  });

  it('a /proc file of a task that has died comes back dead: ESRCH on read, the pid free again', async () => {
    const d = tempDir('criu-ts-proc-dead-');
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', HOLDER_PY, report, 'dead'], { setsid: true });
    track(pid);
    const [child, gone, fd] = (await waitForLine(report, /^READY /, { pid })).split(' ').slice(1).map(Number);
    track(child!);
    await waitFor(() => procState(pid) === 'S', 'waiting');
    const dir = path.join(d, 'images');
    const r = await runCli(['dump', '-t', String(pid), '-D', dir]);
    if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['remap-fpath.img']);
      expect(failures).toEqual([]);
      const remaps = entries(decoded.get('remap-fpath.img')).map((e) => `${e.remap_type} ${num(e.remap_id)}`);
      expect(remaps).toEqual([`PROCFS ${gone}`]);
    }
    for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
    const rr = await runCli(['restore', '-D', dir, '-d']);
    if (rr.code !== 0 || rr.stderr) throw new Error(`restore: exit ${rr.code}: ${rr.stderr}`);
    for (const e of ImageDir.open(dir).pstree()) track(e.pid);
    expect(readlinkSync(`/proc/${pid}/fd/${fd}`)).toBe(`/proc/${gone}/status`);
    expect(existsSync(`/proc/${gone}`)).toBe(false); // the helper is gone again
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^DEAD /, { pid });
    expect(readLines(report)).toEqual(expect.arrayContaining([`PIDS ${pid} ${child}`, 'DEAD errno 3']));
    process.kill(child!, 'SIGUSR1');
  });

  it('a cwd in /proc/PID of a task that has died comes back there: getcwd fails with ENOENT, the link names it', async () => {
    const d = tempDir('criu-ts-proc-cwd-');
    const report = path.join(d, 'report');
    const script = [
      'import os, signal, sys',
      'os.closerange(3, 65536)',
      "out = open(sys.argv[1], 'a', buffering=1)",
      'child = os.fork()',
      'if child == 0: signal.pause(); os._exit(0)',
      "os.chdir('/proc/%d' % child)",
      'os.kill(child, 9); os.waitpid(child, 0)',
      'signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])',
      "out.write('READY %d %d\\n' % (os.getpid(), child))",
      'signal.sigwait([signal.SIGUSR1])',
      'try:',
      "    os.getcwd(); r = 'getcwd ok'",
      'except OSError as e:',
      "    r = 'getcwd errno %d' % e.errno",
      "out.write('CWD %s %s\\n' % (r, os.readlink('/proc/self/cwd')))",
    ].join('\n');
    const pid = startTraceable([PYTHON, '-c', script, report], { setsid: true });
    track(pid);
    const gone = Number((await waitForLine(report, /^READY /, { pid })).split(' ')[2]);
    await waitFor(() => procState(pid) === 'S', 'waiting');
    const dir = path.join(d, 'images');
    const r = await runCli(['dump', '-t', String(pid), '-D', dir]);
    if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
    killAndReap(pid);
    const rr = await runCli(['restore', '-D', dir, '-d']);
    if (rr.code !== 0 || rr.stderr) throw new Error(`restore: exit ${rr.code}: ${rr.stderr}`);
    track(pid);
    expect(existsSync(`/proc/${gone}`)).toBe(false); // the helper is gone again
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^CWD /, { pid });
    expect(readLines(report)).toContain(`CWD getcwd errno 2 /proc/${gone} (deleted)`);
  });
});
