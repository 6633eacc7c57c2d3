// File leases (F_SETLEASE) held before a dump are held after the restore: a read lease, a write lease,
// write leases being broken (an open from elsewhere was refused with EWOULDBLOCK and the holder told),
// one to a read lease and one to none, and a read lease taken by a parent and held only by its child.
// Checked from outside: /proc/locks shows the same leases on the same files, each lease still breaks
// (an opener outside the tree is refused and the holder gets its SIGIO), and the restore itself sends
// the holder no signal: the breaks it told the task about before the dump are not told again.
import fs from 'node:fs';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDump,
  cliKillAndRestore,
  PYTHON,
  procState,
  readLines,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

const LEASES_PY = `
import fcntl, os, signal, sys
os.closerange(3, 65536)
F_SETLEASE, F_GETLEASE = 1024, 1025
out = open(sys.argv[1], 'a', buffering=1)
d = sys.argv[2]
sigio = [0]
signal.signal(signal.SIGIO, lambda *a: sigio.__setitem__(0, sigio[0] + 1))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
def lease(name, mode, kind):
    fd = os.open(d + '/' + name, mode | os.O_CREAT, 0o644)
    fcntl.fcntl(fd, F_SETLEASE, kind)
    return fd
def breaks(name, mode):
    try: os.close(os.open(d + '/' + name, mode | os.O_NONBLOCK)); out.write('FAIL %s not broken\\n' % name)
    except BlockingIOError: pass
fds = {'r': lease('r', os.O_RDONLY, fcntl.F_RDLCK), 'w': lease('w', os.O_WRONLY, fcntl.F_WRLCK),
       'down': lease('down', os.O_WRONLY, fcntl.F_WRLCK), 'gone': lease('gone', os.O_RDWR, fcntl.F_WRLCK)}
breaks('down', os.O_RDONLY); breaks('gone', os.O_WRONLY)
shared = lease('shared', os.O_RDONLY, fcntl.F_RDLCK)
if os.fork() == 0:
    out.write('CHILD %d\\n' % os.getpid())
    signal.sigwait([signal.SIGUSR1])
    out.write('CHILD LEASE %d\\n' % fcntl.fcntl(shared, F_GETLEASE))
    os._exit(0)
os.close(shared)
out.write('READY %d\\n' % sigio[0])
signal.sigwait([signal.SIGUSR1])
out.write('LEASES %s\\n' % ' '.join('%s=%d' % (n, fcntl.fcntl(fd, F_GETLEASE)) for n, fd in fds.items()))
out.write('SIGIO %d\\n' % sigio[0])
signal.sigwait([signal.SIGUSR1])
out.write('SIGIO %d\\n' % sigio[0])
os.wait()
out.write('DONE\\n')
`;

/** The lease lines of /proc/locks on the files of `dir`: "MODE TYPE PID INODE", sorted. */
function leasesIn(dir: string): string[] {
  const names = new Map(fs.readdirSync(dir).map((n) => [String(fs.statSync(path.join(dir, n)).ino), n]));
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/locks', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] !== 'LEASE') continue;
    const name = names.get(f[5]?.split(':')[2] ?? '');
    if (name) out.push(`${name} ${f[2]} ${f[3]} ${f[4]}`);
  }
  return out.sort();
}

describe('criu-ts restore: file leases', () => {
  it('read, write and broken leases come back on their files, still break, and the restore sends no signal', async () => {
    const dir = tempDir('criu-ts-leases-');
    const files = path.join(dir, 'files');
    fs.mkdirSync(files);
    const report = path.join(dir, 'report');
    const pid = startTraceable([PYTHON, '-c', LEASES_PY, report, files], { setsid: true });
    track(pid);
    const child = Number((await waitForLine(report, /^CHILD \d+$/, { pid })).split(' ')[1]);
    track(child);
    await waitForLine(report, /^READY 2$/, { pid });
    await waitFor(() => procState(pid) === 'S' && procState(child) === 'S', 'both waiting');
    const before = leasesIn(files);
    expect(before).toEqual([
      `down BREAKING READ ${pid}`,
      `gone BREAKING UNLCK ${pid}`,
      `r ACTIVE READ ${pid}`,
      `shared ACTIVE READ ${pid}`,
      `w ACTIVE WRITE ${pid}`,
    ]);
    const images = await cliDump(pid, ['--file-locks']);
    await cliKillAndRestore(images, ['--file-locks']);
    // The same leases; the one the parent took is held (and so set again) by the child that has it.
    expect(leasesIn(files)).toEqual(
      before.map((l) => (l.startsWith('shared') ? `shared ACTIVE READ ${child}` : l)),
    );
    process.kill(pid, 'SIGUSR1');
    process.kill(child, 'SIGUSR1');
    // F_GETLEASE: 0 read, 1 write, 2 none (a lease being broken answers the type it is broken to).
    expect(await waitForLine(report, /^LEASES /, { pid })).toBe('LEASES r=0 w=1 down=0 gone=2');
    // The two breaks before the dump were told once: the restore breaking them again tells nothing.
    expect(await waitForLine(report, /^SIGIO /, { pid })).toBe('SIGIO 2');
    await waitForLine(report, /^CHILD LEASE 0$/, { pid });
    // A lease still breaks: an opener is refused and the holder told.
    expect(() => fs.openSync(path.join(files, 'r'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)).toThrow(
      /EAGAIN/,
    );
    expect(leasesIn(files)).toContain(`r BREAKING UNLCK ${pid}`);
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^DONE$/, { pid });
    expect(readLines(report).filter((l) => l.startsWith('SIGIO '))).toEqual(['SIGIO 2', 'SIGIO 3']);
    expect(readLines(report).filter((l) => l.startsWith('FAIL'))).toEqual([]);
  });
});
