// pidfds (pidfd_open(2)) a task holds: of its own child (both in the tree), of a process that had died
// and been reaped before the dump, of a live process outside the tree. After the restore the program
// itself uses them: it signals its child through the pidfd, polls it and waits for it with
// waitid(P_PIDFD); a dead process's pidfd polls readable and fdinfo says Pid -1.
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDump,
  cliDumpKillRestore,
  critDecodeAll,
  entries,
  haveCrit,
  num,
  obj,
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

const O_NONBLOCK = 0o4000;
const CLD_EXITED = 1;

/**
 * A parent with a pidfd of its child. On SIGUSR1 it signals the child through the pidfd (the child
 * then exits with 7), polls the pidfd and reaps the child with waitid(P_PIDFD).
 */
const PARENT_PY = `
import os, select, signal, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
child = os.fork()
if child == 0:
    signal.sigwait([signal.SIGUSR1]); os._exit(7)
pfd = os.pidfd_open(child)
out.write('READY %d %d\\n' % (child, pfd))
signal.sigwait([signal.SIGUSR1])
signal.pidfd_send_signal(pfd, signal.SIGUSR1)
p = select.poll(); p.register(pfd, select.POLLIN)
ready = p.poll(10000)
info = os.waitid(os.P_PIDFD, pfd, os.WEXITED)
out.write('WAITED %s %d %d %d\\n' % ('readable' if ready else 'timeout', info.si_pid, info.si_code, info.si_status))
`;

/**
 * A task with a non-blocking pidfd of a child that has exited and been reaped, and a pidfd of a process
 * outside the tree (argv[2]). On SIGUSR1 it polls the dead one and tries to wait for it.
 */
const DEAD_PY = `
import os, select, signal, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
r, w = os.pipe()
gone = os.fork()
if gone == 0:
    os.close(w); os.read(r, 1); os._exit(5)     # exits once the parent closes its end (or dies)
dead = os.pidfd_open(gone, ${O_NONBLOCK})
again = os.pidfd_open(gone)                   # a second pidfd of the same process
os.close(w); os.close(r)
os.waitpid(gone, 0)
outside = os.pidfd_open(int(sys.argv[2]))
out.write('READY %d %d %d\\n' % (gone, dead, outside))
signal.sigwait([signal.SIGUSR1])
p = select.poll(); p.register(dead, select.POLLIN)
readable = 'readable' if p.poll(0) else 'not-readable'
try:
    os.waitid(os.P_PIDFD, dead, os.WEXITED | os.WNOHANG); waited = 'waited'
except ChildProcessError:
    waited = 'ECHILD'
out.write('DEAD %s %s\\n' % (readable, waited))
out.write('SAME %s\\n' % (os.fstat(dead).st_ino == os.fstat(again).st_ino))
`;

/** The `key:` line of /proc/PID/fdinfo/FD. */
function fdinfoField(pid: number, fd: number, key: string): string {
  const text = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  const m = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${key} in fdinfo of pid ${pid} fd ${fd}:\n${text}`);
  return m[1]!.trim();
}

/** Start PARENT_PY; its pid, its child's and the pidfd's fd number, once it waits for SIGUSR1. */
async function startParent(): Promise<{ pid: number; child: number; fd: number; report: string }> {
  const report = path.join(tempDir('criu-ts-pidfd-'), 'report');
  const pid = startTraceable([PYTHON, '-c', PARENT_PY, report], { setsid: true });
  track(pid);
  const [child, fd] = (await waitForLine(report, /^READY /, { pid })).split(' ').slice(1).map(Number);
  track(child!);
  await waitFor(() => procState(pid) === 'S' && procState(child!) === 'S', 'both waiting');
  return { pid, child: child!, fd: fd!, report };
}

/** Start DEAD_PY with a pidfd of `outside`; its pid, the dead child's pid and both pidfds' fd numbers. */
async function startDeadHolder(
  outside: number,
): Promise<{ pid: number; gone: number; dead: number; out: number; report: string }> {
  const report = path.join(tempDir('criu-ts-pidfd-dead-'), 'report');
  const pid = startTraceable([PYTHON, '-c', DEAD_PY, report, String(outside)], { setsid: true });
  track(pid);
  const [gone, dead, out] = (await waitForLine(report, /^READY /, { pid })).split(' ').slice(1).map(Number);
  await waitFor(() => procState(pid) === 'S', 'waiting');
  return { pid, gone: gone!, dead: dead!, out: out!, report };
}

/** The parent signals its child through the pidfd and reaps it by the pidfd: exit status 7. */
async function expectWaitThroughPidfd(p: { pid: number; child: number; report: string }): Promise<void> {
  process.kill(p.pid, 'SIGUSR1');
  await waitForLine(p.report, /^WAITED /, { pid: p.pid });
  expect(readLines(p.report)).toContain(`WAITED readable ${p.child} ${CLD_EXITED} 7`);
}

describe('criu-ts restore: pidfds', () => {
  it('a parent waits for its child through its pidfd after restore (both in the tree)', async () => {
    const p = await startParent();
    const dir = await cliDumpKillRestore(p.pid);
    const entry = ImageDir.open(dir)
      .files()
      .find((f) => f.pidfd);
    expect(entry?.pidfd).toMatchObject({ nspid: p.child, flags: 0o2 });
    expect(fdinfoField(p.pid, p.fd, 'Pid')).toBe(String(p.child));
    await expectWaitThroughPidfd(p);
  });

  it('a pidfd of a reaped process comes back dead: readable, Pid -1, not waitable; one outside the tree is reopened', async () => {
    const h = await startDeadHolder(process.pid);
    expect(fdinfoField(h.pid, h.dead, 'Pid')).toBe('-1');
    const dir = await cliDumpKillRestore(h.pid);
    const pidfds = ImageDir.open(dir)
      .files()
      .flatMap((f) => (f.pidfd ? [f.pidfd] : []));
    expect(pidfds.map((e) => e.nspid).sort()).toEqual([-1, -1, process.pid].sort());
    expect(fdinfoField(h.pid, h.dead, 'Pid')).toBe('-1');
    expect(Number.parseInt(fdinfoField(h.pid, h.dead, 'flags'), 8) & O_NONBLOCK).toBe(O_NONBLOCK);
    expect(fdinfoField(h.pid, h.out, 'Pid')).toBe(String(process.pid));
    expect(fs.existsSync(`/proc/${h.gone}`)).toBe(false);
    process.kill(h.pid, 'SIGUSR1');
    await waitForLine(h.report, /^SAME /, { pid: h.pid });
    expect(readLines(h.report)).toContain('DEAD readable ECHILD');
    expect(readLines(h.report)).toContain('SAME True'); // both name one (dead) process again
  });

  it('a pidfd of a process outside the tree that has gone by the restore is refused, naming it', async () => {
    const outside = startTraceable(['/bin/sleep', '1000']);
    track(outside);
    const h = await startDeadHolder(outside);
    const dir = await cliDump(h.pid);
    const id = ImageDir.open(dir)
      .files()
      .find((f) => f.pidfd?.nspid === outside)?.id;
    killAndReap(outside);
    killAndReap(h.pid);
    const r = await runCli(['restore', '-D', dir, '-d']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`pidfd ${id} names pid ${outside}, which no longer exists`);
    expect(procState(h.pid)).toBe('gone');
  });

  it('crit decodes files.img with the PIDFD entry', async () => {
    if (!haveCrit) return;
    const p = await startParent();
    const dir = await cliDump(p.pid, ['-R']);
    const id = ImageDir.open(dir)
      .files()
      .find((f) => f.pidfd)?.id;
    const { decoded, failures } = critDecodeAll(dir, ['files.img']);
    expect(failures).toEqual([]);
    const entry = entries(decoded.get('files.img')).find((e) => num(e.id) === id);
    if (entry?.type === 'PIDFD') {
      expect(num(obj(entry.pidfd).nspid)).toBe(p.child);
    } else {
      // crit 3.17 knows neither fd type PIDFD (20) nor file_entry's field pidfd (22): it drops both as
      // unknown and shows the entry with its id alone. A crit that knows pidfds takes the branch above.
      expect(entry).toEqual({ id });
    }
    await expectWaitThroughPidfd(p);
  });

  it('a dump with -R leaves the pidfd working', async () => {
    const p = await startParent();
    await cliDump(p.pid, ['-R']);
    expect(fdinfoField(p.pid, p.fd, 'Pid')).toBe(String(p.child));
    await expectWaitThroughPidfd(p);
  });
});
