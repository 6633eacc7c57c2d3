// `criu-ts restore` of single-task workloads, end to end as a user runs it: start, `criu-ts dump` (which
// kills the task), reap it so its pid is free, `criu-ts restore -d`, then check from outside that the
// process runs on as if nothing happened: its own report (which the C workloads self-check), /proc, and
// memory checksums. The restored root is re-parented to this process (a child subreaper) when criu-ts
// exits, so cleanup() can kill and reap it by pid.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { type CoreEntry, type FsEntry, ImageDir, type MmEntry, type StatsEntry } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  counterNumbers,
  dumpAndKill,
  failLines,
  isConsecutiveFromOne,
  PYTHON,
  procStat,
  procState,
  procStatus,
  procSyscall,
  readFds,
  readLines,
  readMaps,
  restoreDetached,
  runCli,
  startCommand,
  startPythonCounter,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
  waitForMoreLines,
  waitInPause,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

// Sets up much of the per-task state a restore must give back, then counts like the C counter.
// (Same uid as the test: a task of another uid has its own test below.)
const STATE_PY = `
import ctypes, os, resource, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
out = open(sys.argv[1], 'a', buffering=1)
# signals: a handler, an ignored one, a blocked and pending one, an alternate stack
got = []
def on_usr1(sig, frame):
    it = signal.getitimer(signal.ITIMER_REAL)
    # os.write, not out.write: the handler may run while the main loop is inside out.write, and a
    # buffered file object refuses a reentrant call (RuntimeError).
    os.write(out.fileno(), ('STATE itimer=%.0f/%.0f umask=%o cwd=%s nofile=%s\\n' % (it[0] * 1000 > 0, it[1] * 1000, (lambda m: (os.umask(m), m)[1])(os.umask(0)), os.getcwd(), resource.getrlimit(resource.RLIMIT_NOFILE))).encode())
signal.signal(signal.SIGUSR1, on_usr1)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
signal.signal(signal.SIGALRM, lambda s, f: None)
signal.setitimer(signal.ITIMER_REAL, 100, 100)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2, signal.SIGWINCH])
os.kill(os.getpid(), signal.SIGUSR2)
signal.pthread_kill(__import__("threading").get_ident(), signal.SIGWINCH)
os.umask(0o027)
os.chdir('/tmp')
resource.setrlimit(resource.RLIMIT_NOFILE, (512, 4096))
resource.setrlimit(resource.RLIMIT_CORE, (0, 1 << 20))
PR_SET_NAME, PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 15, 1, 36, 38
libc.prctl(PR_SET_NAME, b'statekeeper', 0, 0, 0)
libc.prctl(PR_SET_PDEATHSIG, signal.SIGURG, 0, 0, 0)  # harmless: criu-ts (the parent) exits after -d
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
# an alternate signal stack
class stack_t(ctypes.Structure):
    _fields_ = [('sp', ctypes.c_void_p), ('flags', ctypes.c_int), ('size', ctypes.c_size_t)]
altstack = ctypes.create_string_buffer(65536)
assert libc.sigaltstack(ctypes.byref(stack_t(ctypes.addressof(altstack), 0, 65536)), None) == 0
# a POSIX timer (no signal, 1 s interval)
class sigevent(ctypes.Structure):
    _fields_ = [('value', ctypes.c_uint64), ('signo', ctypes.c_int), ('notify', ctypes.c_int), ('pad', ctypes.c_int * 12)]
class itimerspec(ctypes.Structure):
    _fields_ = [('isec', ctypes.c_long), ('insec', ctypes.c_long), ('vsec', ctypes.c_long), ('vnsec', ctypes.c_long)]
tid = ctypes.c_int(0)
for i in range(3):
    ev = sigevent(0x1234 + i, signal.SIGRTMIN + i, 1 if i != 1 else 0)
    assert libc.timer_create(1, ctypes.byref(ev), ctypes.byref(tid)) == 0
libc.timer_delete(0)
assert libc.timer_settime(2, 0, ctypes.byref(itimerspec(1, 0, 100, 0)), None) == 0
# credentials: groups, then uid/gid 1000 (keeping no caps)
os.setgroups([1000, 1001])
# drop CAP_NET_RAW (13) from the bounding set and from effective/permitted (uid stays 0: dumping a
# task of another uid needs CAP_SYS_RESOURCE for prlimit, which this machine does not have)
libc.prctl(24, 13, 0, 0, 0)
hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
data = (ctypes.c_uint32 * 6)()
assert libc.capget(hdr, data) == 0
data[0] &= ~(1 << 13); data[1] &= ~(1 << 13)
assert libc.capset(hdr, data) == 0, ctypes.get_errno()
libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
# seccomp: an allow-everything filter, twice (a chain of two)
class sock_filter(ctypes.Structure):
    _fields_ = [('code', ctypes.c_ushort), ('jt', ctypes.c_ubyte), ('jf', ctypes.c_ubyte), ('k', ctypes.c_uint)]
class sock_fprog(ctypes.Structure):
    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.POINTER(sock_filter))]
for k in (0x7fff0000, 0x7fff0000):
    prog = (sock_filter * 1)(sock_filter(0x06, 0, 0, k))
    fp = sock_fprog(1, prog)
    assert libc.prctl(22, 2, ctypes.byref(fp), 0, 0) == 0, ctypes.get_errno()
out.write('READY %d\\n' % os.getpid())
n = 0
while True:
    n += 1
    out.write('%d\\n' % n)
    time.sleep(0.01)
`;

// An unlinked file it keeps appending to and re-reads, a MAP_SHARED and a MAP_PRIVATE file mapping.
const FILES_PY = `
import mmap, os, sys, time
out = open(sys.argv[1], 'a', buffering=1)
d = sys.argv[2]
g = open(os.path.join(d, 'ghost'), 'w+')
os.unlink(os.path.join(d, 'ghost'))
sf = open(os.path.join(d, 'shared'), 'r+b')
m = mmap.mmap(sf.fileno(), 4096, mmap.MAP_SHARED)
pf = open(os.path.join(d, 'private'), 'rb')
pm = mmap.mmap(pf.fileno(), 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
out.write('READY %d\\n' % os.getpid())
n = 0
while True:
    n += 1
    g.write('%d\\n' % n)
    g.flush()
    m[0:8] = n.to_bytes(8, 'little')
    pm[0:8] = n.to_bytes(8, 'little')
    g.seek(0)
    lines = g.read().split()
    g.seek(0, 2)
    if lines != [str(i) for i in range(1, n + 1)]:
        out.write('FAIL ghost %d\\n' % n)
    if int.from_bytes(pm[0:8], 'little') != n or pm[8] != 7:
        out.write('FAIL private %d\\n' % n)
    out.write('%d\\n' % n)
    time.sleep(0.01)
`;

/** The parts of a task's images that must come back as they were (not registers, not times left). */
function taskState(dir: string, pid: number): unknown {
  const img = ImageDir.open(dir);
  const core = img.core(pid) as CoreEntry;
  const tc = core.tc!;
  const th = core.thread_core!;
  const mm = img.mm(pid) as MmEntry;
  const timers = tc.timers!;
  const interval = (t: { isec: bigint; iusec: bigint }) => [t.isec, t.iusec];
  return {
    tc: {
      comm: tc.comm,
      personality: tc.personality,
      sigactions: tc.sigactions,
      rlimits: tc.rlimits,
      child_subreaper: tc.child_subreaper,
      signals_s: tc.signals_s,
      itimers: [interval(timers.real), interval(timers.virt), interval(timers.prof)],
      posix: (timers.posix ?? []).map((t) => [
        t.it_id,
        t.clock_id,
        t.si_signo,
        t.it_sigev_notify,
        t.sival_ptr,
        t.isec,
        t.insec,
      ]),
    },
    thread: {
      clear_tid_addr: core.thread_info!.clear_tid_addr,
      tls: core.thread_info!.tls,
      fs_base: core.thread_info!.gpregs.fs_base,
      ...th,
    },
    mm: { ...mm, vmas: mm.vmas?.map((v) => ({ ...v, shmid: 0n })), exe_file_id: 0 },
    fs: { ...(img.fs(pid) as FsEntry), cwd_id: 0, root_id: 0 },
    seccomp: img.has('seccomp') ? img.read('seccomp') : [],
  };
}

/** What /proc tells of the state STATE_PY sets up. */
function procSnapshot(pid: number): string[] {
  const status = fs
    .readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .filter((l) =>
      /^(Name|Umask|Uid|Gid|Groups|SigPnd|ShdPnd|SigBlk|SigIgn|SigCgt|Cap|NoNewPrivs|Seccomp)/.test(l),
    );
  return [
    ...status,
    fs.readFileSync(`/proc/${pid}/limits`, 'utf8'),
    fs.readFileSync(`/proc/${pid}/timers`, 'utf8'),
    fs.readlinkSync(`/proc/${pid}/cwd`),
    fs.readFileSync(`/proc/${pid}/personality`, 'utf8'),
  ];
}

/** mm fields of /proc/PID/stat (code, data, brk, stack, args, env), auxv, exe, cwd, comm, ids. */
function mmShape(pid: number): string[] {
  const st = procStat(pid);
  return [
    ...[26, 27, 28, 45, 46, 47, 48, 49, 50, 51].map((n) => st.f(n)),
    fs.readFileSync(`/proc/${pid}/auxv`).toString('hex'),
    fs.readlinkSync(`/proc/${pid}/exe`),
    fs.readlinkSync(`/proc/${pid}/cwd`),
    fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1'),
    fs.readFileSync(`/proc/${pid}/environ`, 'latin1'),
    st.comm,
    `${st.f(5)} ${st.f(6)}`,
  ];
}

/** The maps lines that must survive a restore (all of them, anonymous areas included). */
const mapsShape = (pid: number) =>
  readMaps(pid).map(
    (m) => `${m.start.toString(16)}-${m.end.toString(16)} ${m.prot} ${m.shared} ${m.pgoff} ${m.path}`,
  );

describe('criu-ts restore: single-threaded tasks', () => {
  it('counter: same pid, maps, fds; counts on without repeating or skipping a number', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^20$/, { pid: w.pid });
    const maps = mapsShape(w.pid);
    const fds = readFds(w.pid).map((f) => `${f.fd} ${f.link} ${f.flags.toString(8)}`);
    const mm = mmShape(w.pid);
    const dir = await dumpAndKill(w.pid);
    const before = counterNumbers(w.report).length;
    await restoreDetached(dir);
    expect(procState(w.pid)).toMatch(/[RS]/);
    await waitForMoreLines(w.report, 20, w.pid);
    const ns = counterNumbers(w.report);
    expect(ns.length).toBeGreaterThanOrEqual(before + 20);
    expect(isConsecutiveFromOne(ns)).toBe(true);
    expect(failLines(w.report)).toEqual([]);
    expect(mapsShape(w.pid)).toEqual(maps);
    expect(readFds(w.pid).map((f) => `${f.fd} ${f.link} ${f.flags.toString(8)}`)).toEqual(fds);
    expect(mmShape(w.pid)).toEqual(mm);
    // Its stats: pages restored, times, in stats-restore; the images otherwise untouched.
    const stats = ImageDir.open(dir).one<StatsEntry>('stats-%s', 'restore').restore!;
    expect(Number(stats.pages_restored)).toBeGreaterThan(0);
    expect(stats.restore_time).toBeGreaterThan(stats.forking_time);
  });

  it('memhog 64 MiB keeps its checksum (SIGUSR1 -> the same SUM)', async () => {
    const w = startWorkload('memhog', ['64']);
    const sum = await waitForLine(w.report, /^SUM /, { pid: w.pid });
    await waitInPause(w.pid);
    const dir = await dumpAndKill(w.pid);
    await restoreDetached(dir);
    const n = readLines(w.report).length;
    process.kill(w.pid, 'SIGUSR1');
    const again = await waitForLine(w.report, /^SUM /, { pid: w.pid, fromLine: n });
    expect(again).toBe(sum);
    expect(failLines(w.report)).toEqual([]);
  });

  it('sleeper in nanosleep resumes, sleeps at least as long as asked, reports SLEPT', async () => {
    // Long enough that a dump on a loaded machine ends well before the sleep would.
    const w = startWorkload('sleeper', ['4000']);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await waitFor(() => procState(w.pid) === 'S', 'sleeper asleep');
    const dir = await dumpAndKill(w.pid);
    expect(readLines(w.report).filter((l) => l.startsWith('SLEPT '))).toEqual([]);
    await restoreDetached(dir);
    // The interrupted clock_nanosleep runs again with its arguments (a fresh full sleep): never short.
    const slept = await waitForLine(w.report, /^SLEPT /, { pid: w.pid, timeoutMs: 20_000 });
    expect(Number(slept.split(' ')[1])).toBeGreaterThanOrEqual(4000);
    expect(failLines(w.report)).toEqual([]);
  });

  it('reader continues at the next line; its fd position is where it was', async () => {
    const dirw = tempDir('criu-ts-restore-reader-');
    const file = path.join(dirw, 'numbers');
    fs.writeFileSync(file, Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join(''));
    const w = startWorkload('reader', [file]);
    await waitForLine(w.report, /^LINE 10$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid);
    const lines = readLines(w.report).filter((l) => l.startsWith('LINE '));
    const last = Number(lines.at(-1)!.split(' ')[1]);
    const pos = (n: number) => String(Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('').length);
    // The images hold the position exactly after the last reported line (or one more, if it had read
    // the next already); the restored reader then goes on from there without a gap or a repeat.
    const reg = ImageDir.open(dir)
      .files()
      .find((f) => f.reg?.name === file)!.reg!;
    expect([pos(last), pos(last + 1)]).toContain(String(reg.pos));
    await restoreDetached(dir);
    await waitForLine(w.report, new RegExp(`^LINE ${last + 10}$`), { pid: w.pid });
    const after = readLines(w.report)
      .filter((l) => l.startsWith('LINE '))
      .map((l) => Number(l.split(' ')[1]));
    expect(after.every((v, i) => v === i + 1)).toBe(true);
    expect(failLines(w.report)).toEqual([]);
  });

  it('appender keeps appending with O_APPEND: the file holds 1..N exactly', async () => {
    const dirw = tempDir('criu-ts-restore-appender-');
    const file = path.join(dirw, 'log');
    const w = startWorkload('appender', [file]);
    await waitForLine(w.report, /^N 10$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid);
    const n = Number(readLines(w.report).at(-1)!.split(' ')[1]);
    await restoreDetached(dir);
    await waitForLine(w.report, new RegExp(`^N ${n + 10}$`), { pid: w.pid });
    const nums = fs.readFileSync(file, 'utf8').trim().split('\n').map(Number);
    expect(nums.every((v, i) => v === i + 1)).toBe(true);
    expect(nums.length).toBeGreaterThanOrEqual(n + 10);
    expect(failLines(w.report)).toEqual([]);
  });

  it('pipe_reader blocked in read() on a FIFO resumes and reads what is written', async () => {
    const dirw = tempDir('criu-ts-restore-fifo-');
    const fifo = path.join(dirw, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const w = startWorkload('pipe_reader', [fifo]);
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    await waitFor(() => procSyscall(w.pid) === 0, 'pipe_reader in read()');
    const dir = path.join(tempDir('criu-ts-restore-'), 'images');
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    killAndReap(w.pid);
    await restoreDetached(dir);
    fs.writeFileSync(fifo, 'hello\n');
    await waitForLine(w.report, /^READ hello$/, { pid: w.pid });
  });

  it('`sleep 1000` comes back asleep in clock_nanosleep, for the time it had left', async () => {
    const pid = await startCommand(['/bin/sleep', '1000']);
    await waitFor(() => procState(pid) === 'S' && procSyscall(pid) === 230, 'sleep asleep');
    const t0 = Date.now();
    await waitFor(() => Date.now() - t0 > 2100, 'two seconds of sleep');
    const dir = await dumpAndKill(pid);
    await restoreDetached(dir);
    await waitFor(
      () => procState(pid) === 'S' && procSyscall(pid) === 230,
      () => `sleep ${pid} asleep again (${procState(pid)})`,
    );
    // clock_nanosleep(clock, flags, req, rem) was restarted with req = rem: what was left at the dump.
    const args = fs
      .readFileSync(`/proc/${pid}/syscall`, 'utf8')
      .trim()
      .split(' ')
      .map((x) => BigInt(x));
    const req = Buffer.alloc(16);
    const mem = fs.openSync(`/proc/${pid}/mem`, 'r');
    try {
      fs.readSync(mem, req, 0, 16, args[3]!);
    } finally {
      fs.closeSync(mem);
    }
    expect(args[3]).toBe(args[4]);
    const left = req.readBigInt64LE(0);
    expect(left).toBeLessThanOrEqual(997n);
    expect(left).toBeGreaterThan(900n);
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('/bin/sleep\x001000\x00');
    expect(fs.readlinkSync(`/proc/${pid}/exe`)).toBe(fs.realpathSync('/bin/sleep'));
  });

  it('`sleep` of another user (nobody) with its own rlimits: dumped and restored without CAP_SYS_RESOURCE', async () => {
    // prlimit64() on a task of another uid needs CAP_SYS_RESOURCE, which this machine's root lacks:
    // the limits must be read by the task itself (in the parasite batch).
    const drop = [
      'import os, resource',
      'os.closerange(3, 65536)',
      'resource.setrlimit(resource.RLIMIT_NOFILE, (123, 456))',
      'os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)',
      "os.execv('/bin/sleep', ['/bin/sleep', '1000'])",
    ].join('\n');
    const pid = startTraceable([PYTHON, '-c', drop], { setsid: true });
    track(pid);
    await waitFor(() => procState(pid) === 'S' && procSyscall(pid) === 230, 'sleep as nobody asleep');
    const limits = () => fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
    const before = limits();
    expect(before).toMatch(/Max open files\s+123\s+456/);
    expect(procStatus(pid).Uid).toBe('65534\t65534\t65534\t65534');
    const dir = await dumpAndKill(pid);
    await restoreDetached(dir);
    await waitFor(() => procState(pid) === 'S' && procSyscall(pid) === 230, 'sleep asleep again');
    expect(limits()).toBe(before);
    expect(procStatus(pid).Uid).toBe('65534\t65534\t65534\t65534');
  });

  it('a python3 loop counts on', async () => {
    const w = await startPythonCounter();
    await waitForLine(w.report, /^20$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid);
    const before = counterNumbers(w.report).length;
    await restoreDetached(dir);
    await waitForMoreLines(w.report, 20, w.pid);
    const ns = counterNumbers(w.report);
    expect(ns.length).toBeGreaterThanOrEqual(before + 20);
    expect(isConsecutiveFromOne(ns)).toBe(true);
  });

  it('a python3 task with signal handlers, a pending blocked signal, itimer, POSIX timers, rlimits, umask, cwd, groups, caps, no_new_privs, seccomp: /proc shows the same', async () => {
    const dirw = tempDir('criu-ts-restore-state-');
    const report = path.join(dirw, 'report');
    const pid = await startCommand([PYTHON, '-c', STATE_PY, report]);
    await waitForLine(report, /^5$/, { pid });
    process.kill(pid, 'SIGUSR1');
    const state = await waitForLine(report, /^STATE /, { pid });
    const before = procSnapshot(pid);
    const dir = await dumpAndKill(pid);
    await restoreDetached(dir);
    expect(procSnapshot(pid)).toEqual(before);
    const n = readLines(report).length;
    process.kill(pid, 'SIGUSR1');
    expect(await waitForLine(report, /^STATE /, { pid, fromLine: n })).toBe(state);
    await waitForMoreLines(report, 10, pid);
    expect(isConsecutiveFromOne(counterNumbers(report))).toBe(true);
    // What /proc does not show, the dumper reads from inside the task: dump the restored task (-R)
    // and compare with the first images.
    const again = path.join(tempDir('criu-ts-restore-again-'), 'images');
    const r = await runCli(['dump', '-t', String(pid), '-D', again, '-R']);
    expect(r.code).toBe(0);
    expect(taskState(again, pid)).toEqual(taskState(dir, pid));
  });

  it('an unlinked file (ghost), a shared and a private file mapping: contents and sharing survive', async () => {
    const d = tempDir('criu-ts-restore-files-');
    fs.writeFileSync(path.join(d, 'shared'), Buffer.alloc(4096));
    fs.writeFileSync(path.join(d, 'private'), Buffer.alloc(4096, 7));
    const report = path.join(d, 'report');
    const pid = await startCommand([PYTHON, '-c', FILES_PY, report, d]);
    await waitForLine(report, /^10$/, { pid });
    const dir = await dumpAndKill(pid);
    await restoreDetached(dir);
    await waitForMoreLines(report, 10, pid);
    expect(failLines(report)).toEqual([]);
    const ns = counterNumbers(report);
    expect(isConsecutiveFromOne(ns)).toBe(true);
    const ghost = readFds(pid).find((f) => f.link.endsWith('(deleted)'));
    expect(ghost?.link).toBe(`${path.join(d, 'ghost')} (deleted)`);
    expect(fs.existsSync(path.join(d, 'ghost'))).toBe(false);
    // The shared mapping writes through to the file; the private one never does.
    const shared = fs.readFileSync(path.join(d, 'shared')).readBigUInt64LE(0);
    expect(Number(shared)).toBeGreaterThanOrEqual(ns.at(-1)! - 1);
    expect(fs.readFileSync(path.join(d, 'private')).equals(Buffer.alloc(4096, 7))).toBe(true);
  });

  it('credentials and root from the images (edited: uid/gid 1000, no capabilities, chroot to its cwd)', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid);
    // The dump of a task of another uid needs CAP_SYS_RESOURCE (prlimit64 on it), which this machine
    // lacks: edit root's images instead.
    const img = ImageDir.open(dir);
    const core = img.core(w.pid) as CoreEntry;
    const cr = core.thread_core!.creds!;
    Object.assign(cr, {
      uid: 1000,
      euid: 1000,
      suid: 1000,
      fsuid: 1000,
      gid: 1001,
      egid: 1001,
      sgid: 1001,
      fsgid: 1001,
    });
    cr.groups = [1001, 1002];
    cr.cap_eff = [0, 0];
    cr.cap_prm = [0, 0];
    cr.cap_inh = [0, 0];
    img.write('core-%u', w.pid, [core]);
    const fsImg = img.fs(w.pid) as FsEntry;
    fsImg.root_id = fsImg.cwd_id;
    img.write('fs-%u', w.pid, [fsImg]);
    await restoreDetached(dir);
    const st = fs.readFileSync(`/proc/${w.pid}/status`, 'utf8');
    expect(st).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(st).toMatch(/^Gid:\s+1001\s+1001\s+1001\s+1001$/m);
    expect(st).toMatch(/^Groups:\s+1001 1002\s*$/m);
    expect(st).toMatch(/^CapEff:\s+0+$/m);
    expect(st).toMatch(/^CapPrm:\s+0+$/m);
    expect(fs.readlinkSync(`/proc/${w.pid}/root`)).toBe(fs.readlinkSync(`/proc/${w.pid}/cwd`));
    await waitForMoreLines(w.report, 10, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });

  it('the same images restored a second time (after killing the first restored task)', async () => {
    const w = startWorkload('counter', ['5']);
    await waitForLine(w.report, /^10$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid);
    const atDump = counterNumbers(w.report).length;
    await restoreDetached(dir);
    await waitForMoreLines(w.report, 10, w.pid);
    killAndReap(w.pid);
    const firstRun = counterNumbers(w.report);
    expect(isConsecutiveFromOne(firstRun)).toBe(true);
    await restoreDetached(dir);
    await waitForMoreLines(w.report, 10, w.pid);
    // The second run starts again from the dumped count: its numbers follow the dumped ones.
    const all = counterNumbers(w.report);
    const second = all.slice(firstRun.length);
    expect(second[0]).toBe(atDump + 1);
    expect(second.every((v, i) => v === atDump + 1 + i)).toBe(true);
  });
});
