// Unlinked directories and device nodes a task still holds come back from their ghosts, as CRIU makes
// them: a removed cwd (opened too: one directory), a removed directory inside a removed one, a device
// node (the null device) with its numbers and mode. The task checks them itself after restore; nothing
// of the ghosts is left on disk.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDumpKillRestore,
  PYTHON,
  readLines,
  startCommand,
  tempDir,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

const GHOSTS_PY = `
import os, signal, stat, sys
out = open(sys.argv[1], 'a', buffering=1)
d = sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
# a removed cwd, opened too
os.makedirs(d + '/cwd'); os.chdir(d + '/cwd'); cfd = os.open('.', os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(d + '/cwd')
# a removed directory inside a removed one
os.makedirs(d + '/p/c', 0o751); sub = os.open(d + '/p/c', os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(d + '/p/c'); os.rmdir(d + '/p')
# a device node (the null device)
os.mknod(d + '/null', stat.S_IFCHR | 0o640, os.makedev(1, 3))
dev = os.open(d + '/null', os.O_RDWR); os.chown(d + '/null', 1234, 5678); os.unlink(d + '/null')
out.write('READY\\n')
signal.sigwait([signal.SIGUSR1])
def check(name, f):
    try: ok = f()
    except Exception as e: out.write('FAIL %s %r\\n' % (name, e)); return
    out.write(('OK ' if ok else 'FAIL ') + name + '\\n')
def cwd():
    c, here = os.fstat(cfd), os.stat('.')
    return (os.readlink('/proc/self/cwd') == d + '/cwd (deleted)' and stat.S_ISDIR(c.st_mode)
            and (c.st_dev, c.st_ino) == (here.st_dev, here.st_ino) and c.st_nlink == 0)
check('cwd', cwd)
def inner():
    s = os.fstat(sub)
    return stat.S_ISDIR(s.st_mode) and s.st_nlink == 0 and stat.S_IMODE(s.st_mode) == 0o751
check('inner', inner)
def device():
    s = os.fstat(dev)
    return (stat.S_ISCHR(s.st_mode) and s.st_rdev == os.makedev(1, 3) and stat.S_IMODE(s.st_mode) == 0o640
            and (s.st_uid, s.st_gid) == (1234, 5678) and s.st_nlink == 0 and os.write(dev, b'z') == 1)
check('device', device)
out.write('DONE\\n')
signal.sigwait([signal.SIGUSR1])
`;

describe('criu-ts restore: unlinked directories and device nodes come back from their ghosts', () => {
  it('a removed cwd, a removed directory in a removed directory, a device node', async () => {
    const top = tempDir('criu-ts-core-ghostdirs-');
    const report = path.join(top, 'report');
    const d = path.join(top, 'd');
    fs.mkdirSync(d);
    const pid = await startCommand([PYTHON, '-c', GHOSTS_PY, report, d]);
    await waitForLine(report, /^READY$/, { pid });
    expect(fs.readdirSync(d)).toEqual([]);
    await cliDumpKillRestore(pid);
    // The ghosts are gone from disk again.
    expect(fs.readdirSync(d)).toEqual([]);
    expect(fs.readdirSync(top).sort()).toEqual(['d', 'report']);
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^DONE$/, { pid });
    expect(readLines(report).filter((l) => /^(OK|FAIL) /.test(l))).toEqual([
      'OK cwd',
      'OK inner',
      'OK device',
    ]);
  });
});
