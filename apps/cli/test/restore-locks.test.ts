// File locks held before a dump are held after the restore, each by its owner on its file and range,
// and still keep a locker outside the tree out: flock() locks (one inherited by a child across fork: one
// lock for both), POSIX (fcntl) range locks and OFD locks, several of each kind on several files and in
// two processes (fdinfo numbers the locks of every fd from 1 again: they are told apart by what they
// are). Once the restored program lets go, the outside locker gets them. Without --file-locks the dump
// is refused, as CRIU refuses it, and the tree runs on with its locks.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  critDecodeAll,
  entries,
  fileLocksOf,
  haveCrit,
  num,
  PYTHON,
  procState,
  runCli,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

const HOLDER_PY = `
import fcntl, os, signal, struct, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
d = sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
rw = lambda name: os.open(d + '/' + name, os.O_RDWR | os.O_CREAT)
ofd = lambda fd, t, start, n: fcntl.fcntl(fd, 37, struct.pack('hhqqi4x', t, 0, start, n, 0))  # F_OFD_SETLK
a = open(d + '/flock', 'w'); fcntl.flock(a, fcntl.LOCK_EX)     # inherited by the child: one lock
e = open(d + '/flock2', 'w'); fcntl.flock(e, fcntl.LOCK_SH)
b = rw('posix'); fcntl.lockf(b, fcntl.LOCK_EX, 100, 10)         # bytes 10..109
fcntl.lockf(b, fcntl.LOCK_SH, 10, 200)                           # bytes 200..209, read
c = rw('ofd'); ofd(c, fcntl.F_WRLCK, 0, 0)                       # the whole file
g = rw('ofd2'); ofd(g, fcntl.F_WRLCK, 0, 10); ofd(g, fcntl.F_RDLCK, 20, 10)
if os.fork() == 0:
    h = rw('posix2'); fcntl.lockf(h, fcntl.LOCK_EX, 0, 5)        # the child's own: bytes 5..EOF
    i = open(d + '/flock3', 'w'); fcntl.flock(i, fcntl.LOCK_EX)
    out.write('CHILD %d\\n' % os.getpid()); signal.sigwait([signal.SIGUSR1]); os._exit(0)
out.write('READY\\n')
signal.sigwait([signal.SIGUSR1])
os.wait()
out.write('DONE\\n')
`;

// Exit 0 if the lock could be taken (non-blocking), 1 if someone holds it.
const TRY_PY = `
import fcntl, os, struct, sys
kind, path = sys.argv[1], sys.argv[2]
f = os.open(path, os.O_RDWR)
try:
    if kind == 'flock': fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    elif kind == 'posix': fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 50)
    else: fcntl.fcntl(f, 37, struct.pack('hhqqi4x', fcntl.F_WRLCK, 0, 0, 0, 0))
except OSError: sys.exit(1)
`;

function canLock(kind: string, file: string): boolean {
  try {
    execFileSync(PYTHON, ['-c', TRY_PY, kind, file]);
    return true;
  } catch {
    return false;
  }
}

async function startHolder() {
  const d = tempDir('criu-ts-locks-');
  const report = path.join(d, 'report');
  const pid = startTraceable([PYTHON, '-c', HOLDER_PY, report, d], { setsid: true });
  track(pid);
  const child = Number((await waitForLine(report, /^CHILD /, { pid })).split(' ')[1]);
  track(child);
  await waitForLine(report, /^READY$/, { pid });
  await waitFor(() => procState(pid) === 'S' && procState(child) === 'S', 'both waiting');
  return { pid, child, report, d };
}

const KINDS: Array<[string, string]> = [
  ['flock', 'flock'],
  ['posix', 'posix'],
  ['ofd', 'ofd'],
];

describe('criu-ts restore: file locks', () => {
  it('flock (one inherited by a child), POSIX and OFD locks, several per file and process, are held again by their owners and keep an outside locker out', async () => {
    const w = await startHolder();
    for (const [kind, file] of KINDS) expect(canLock(kind, path.join(w.d, file)), kind).toBe(false);
    const before = fileLocksOf([w.pid, w.child], w.d);
    expect(before).toHaveLength(9);
    const dir = path.join(tempDir('criu-ts-locks-img-'), 'images');
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir, '--file-locks']);
    if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
    const locks = ImageDir.open(dir).messages<{ flag: number; pid: number }>('filelocks');
    // Each lock once (the inherited flock too, with the parent that took it): 3 flock, 3 POSIX, 3 OFD.
    expect(locks.map((l) => l.flag).sort()).toEqual([1, 1, 1, 2, 2, 2, 4, 4, 4]);
    expect(
      locks
        .filter((l) => l.pid === w.child)
        .map((l) => l.flag)
        .sort(),
    ).toEqual([1, 2]);
    for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
    expect(fileLocksOf([w.pid, w.child], w.d)).toEqual([]);
    for (const [kind, file] of KINDS) expect(canLock(kind, path.join(w.d, file)), `${kind} free`).toBe(true);
    const rr = await runCli(['restore', '-D', dir, '-d', '--file-locks']);
    if (rr.code !== 0 || rr.stderr) throw new Error(`restore: exit ${rr.code}: ${rr.stderr}`);
    for (const e of ImageDir.open(dir).pstree()) track(e.pid);
    // Same kinds, types, owners (a flock shows the pid that took it), files and ranges.
    expect(fileLocksOf([w.pid, w.child], w.d)).toEqual(before);
    for (const [kind, file] of KINDS) expect(canLock(kind, path.join(w.d, file)), `${kind} held`).toBe(false);
    process.kill(w.child, 'SIGUSR1');
    process.kill(w.pid, 'SIGUSR1');
    await waitFor(() => procState(w.pid) === 'gone' || procState(w.pid) === 'Z', 'the holder to exit');
    for (const [kind, file] of KINDS)
      expect(canLock(kind, path.join(w.d, file)), `${kind} released`).toBe(true);
  });

  it("without --file-locks the dump is refused with CRIU's message and the tree runs on with its locks", async () => {
    const w = await startHolder();
    const before = fileLocksOf([w.pid, w.child], w.d);
    const dir = path.join(tempDir('criu-ts-locks-img-'), 'images');
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'Some file locks are hold by dumping tasks! You can try --file-locks to dump them.',
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.existsSync(path.join(dir, 'filelocks.img'))).toBe(false);
    await waitFor(() => procState(w.pid) === 'S' && procState(w.child) === 'S', 'both waiting again');
    expect(fileLocksOf([w.pid, w.child], w.d)).toEqual(before);
    process.kill(w.child, 'SIGUSR1');
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^DONE$/, { pid: w.pid });
  });

  it.skipIf(!haveCrit)(
    "crit decodes filelocks.img: CRIU's flags and types (F_RDLCK / F_WRLCK for flock too)",
    async () => {
      const w = await startHolder();
      const dir = path.join(tempDir('criu-ts-locks-img-'), 'images');
      const r = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-R', '--file-locks']);
      expect(r.code).toBe(0);
      const { decoded, failures } = critDecodeAll(dir, ['filelocks.img']);
      expect(failures).toEqual([]);
      const got = entries(decoded.get('filelocks.img')).map(
        (e) =>
          `${num(e.flag)} ${num(e.type)} ${num(e.start)} ${num(e.len)}${num(e.pid) === w.child ? ' child' : ''}`,
      );
      expect(got.sort()).toEqual(
        [
          '2 1 0 0', // flock LOCK_EX (inherited)
          '2 0 0 0', // flock LOCK_SH
          '2 1 0 0 child',
          '1 1 10 100', // POSIX write, bytes 10..109
          '1 0 200 10', // POSIX read
          '1 1 5 0 child', // POSIX write to the end of the file
          '4 1 0 0', // OFD write, whole file
          '4 1 0 10',
          '4 0 20 10',
        ].sort(),
      );
      for (const [kind, file] of KINDS)
        expect(canLock(kind, path.join(w.d, file)), `${kind} after -R`).toBe(false);
    },
  );
});
