// File locks held before a dump are held after the restore, and still keep a locker outside the tree
// out: a flock() inherited by a child across fork (one lock for both), a POSIX (fcntl) range lock and
// an OFD lock. Once the restored program lets go, the outside locker gets them.
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
  haveCrit,
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
a = open(d + '/flock', 'w'); fcntl.flock(a, fcntl.LOCK_EX)
b = open(d + '/posix', 'w'); fcntl.lockf(b, fcntl.LOCK_EX, 100, 10)    # bytes 10..109
c = os.open(d + '/ofd', os.O_RDWR | os.O_CREAT)
fcntl.fcntl(c, 37, struct.pack('hhqqi4x', fcntl.F_WRLCK, 0, 0, 0, 0))  # F_OFD_SETLK, whole file
if os.fork() == 0:
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
  it('flock (inherited by a child), POSIX and OFD locks are held again and keep an outside locker out', async () => {
    const w = await startHolder();
    for (const [kind, file] of KINDS) expect(canLock(kind, path.join(w.d, file)), kind).toBe(false);
    const dir = path.join(tempDir('criu-ts-locks-img-'), 'images');
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir]);
    if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
    const locks = ImageDir.open(dir).messages<{ flag: number }>('filelocks');
    expect(locks.map((l) => l.flag).sort()).toEqual([1, 2, 4]); // one flock, though two tasks hold it
    for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
    for (const [kind, file] of KINDS) expect(canLock(kind, path.join(w.d, file)), `${kind} free`).toBe(true);
    const rr = await runCli(['restore', '-D', dir, '-d']);
    if (rr.code !== 0 || rr.stderr) throw new Error(`restore: exit ${rr.code}: ${rr.stderr}`);
    for (const e of ImageDir.open(dir).pstree()) track(e.pid);
    for (const [kind, file] of KINDS) expect(canLock(kind, path.join(w.d, file)), `${kind} held`).toBe(false);
    process.kill(w.child, 'SIGUSR1');
    process.kill(w.pid, 'SIGUSR1');
    await waitFor(() => procState(w.pid) === 'gone' || procState(w.pid) === 'Z', 'the holder to exit');
    for (const [kind, file] of KINDS)
      expect(canLock(kind, path.join(w.d, file)), `${kind} released`).toBe(true);
  });

  it.skipIf(!haveCrit)('crit decodes filelocks.img', async () => {
    const w = await startHolder();
    const dir = path.join(tempDir('criu-ts-locks-img-'), 'images');
    const r = await runCli(['dump', '-t', String(w.pid), '-D', dir, '-R']);
    expect(r.code).toBe(0);
    const { decoded, failures } = critDecodeAll(dir, ['filelocks.img']);
    expect(failures).toEqual([]);
    expect(entries(decoded.get('filelocks.img'))).toHaveLength(3);
    for (const [kind, file] of KINDS)
      expect(canLock(kind, path.join(w.d, file)), `${kind} after -R`).toBe(false);
    expect(fs.existsSync(path.join(dir, 'filelocks.img'))).toBe(true);
  });
});
