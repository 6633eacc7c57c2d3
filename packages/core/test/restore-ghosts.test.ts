// Unlinked files a task still holds come back from their ghost images, whatever they are: a regular
// file (owner, mode, times, holes and all; one file however many names or opens it had), a directory
// (a removed cwd, a removed directory inside a removed one), a device node, an unnamed temporary file
// (O_TMPFILE). The task checks them itself after restore; nothing of the ghosts is left on disk.
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
  waitFor,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

const GHOSTS_PY = `
import os, signal, stat, sys
out = open(sys.argv[1], 'a', buffering=1)
d = sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
# a removed cwd, opened too, inside a removed parent
os.makedirs(d + '/p/c'); os.chdir(d + '/p/c'); cfd = os.open('.', os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(d + '/p/c'); os.rmdir(d + '/p')
# a device node (the null device)
os.mknod(d + '/null', stat.S_IFCHR | 0o640, os.makedev(1, 3))
dev = os.open(d + '/null', os.O_RDWR); os.unlink(d + '/null')
# one file opened by two names, with its owner, mode and times
f1 = os.open(d + '/a', os.O_RDWR | os.O_CREAT, 0o600); os.write(f1, b'hello')
os.link(d + '/a', d + '/b'); f2 = os.open(d + '/b', os.O_RDONLY)
os.fchown(f1, 1234, 5678); os.fchmod(f1, 0o741); os.utime(f1, (1000000000, 1100000000))
os.unlink(d + '/a'); os.unlink(d + '/b')
# a sparse file: data, a hole, data, a hole at the end
sp = os.open(d + '/sparse', os.O_RDWR | os.O_CREAT, 0o600)
os.pwrite(sp, b'x' * 4096, 0); os.pwrite(sp, b'y' * 4096, 8 * 4096); os.ftruncate(sp, 16 * 4096)
os.unlink(d + '/sparse')
# an unnamed temporary file, and an O_PATH fd
tf = os.open(d, os.O_RDWR | os.O_TMPFILE, 0o600); os.write(tf, b'tmp')
op = os.open(sys.argv[3], os.O_PATH)
out.write('READY\\n')
signal.sigwait([signal.SIGUSR1])
def check(name, ok): out.write(('OK ' if ok else 'FAIL ') + name + '\\n')
c, here = os.fstat(cfd), os.stat('.')
check('cwd', os.readlink('/proc/self/cwd').endswith(' (deleted)') and stat.S_ISDIR(c.st_mode)
      and (c.st_dev, c.st_ino) == (here.st_dev, here.st_ino) and c.st_nlink == 0)
s = os.fstat(dev)
check('dev', stat.S_ISCHR(s.st_mode) and s.st_rdev == os.makedev(1, 3) and stat.S_IMODE(s.st_mode) == 0o640
      and s.st_nlink == 0 and os.write(dev, b'z') == 1)
s1, s2 = os.fstat(f1), os.fstat(f2)
check('owner', (s1.st_uid, s1.st_gid, stat.S_IMODE(s1.st_mode)) == (1234, 5678, 0o741))
check('times', (int(s1.st_atime), int(s1.st_mtime)) == (1000000000, 1100000000))
check('links', (s1.st_dev, s1.st_ino) == (s2.st_dev, s2.st_ino) and s1.st_nlink == 0
      and os.pread(f2, 5, 0) == b'hello')
s = os.fstat(sp)
check('sparse', s.st_size == 16 * 4096 and os.lseek(sp, 0, os.SEEK_HOLE) == 4096
      and os.lseek(sp, 4096, os.SEEK_DATA) == 8 * 4096 and os.pread(sp, 4096, 0) == b'x' * 4096
      and os.pread(sp, 4096, 8 * 4096) == b'y' * 4096 and os.pread(sp, 4096, 4096) == bytes(4096))
check('tmpfile', os.fstat(tf).st_nlink == 0 and os.pread(tf, 3, 0) == b'tmp')
flags = int(open('/proc/self/fdinfo/%d' % op).read().split('flags:')[1].split()[0], 8)
check('opath', flags & os.O_PATH != 0)
out.write('DONE\\n')
signal.sigwait([signal.SIGUSR1])
`;

describe('criu-ts restore: unlinked files come back from their ghosts', () => {
  it('a removed cwd and directory, a device node, a file of two names, a sparse file, O_TMPFILE, O_PATH', async () => {
    const top = tempDir('criu-ts-core-ghosts-');
    const report = path.join(top, 'report');
    const d = path.join(top, 'd');
    fs.mkdirSync(d);
    const kept = path.join(top, 'kept');
    fs.writeFileSync(kept, 'O_PATH target');
    const pid = await startCommand([PYTHON, '-c', GHOSTS_PY, report, d, kept]);
    await waitForLine(report, /^READY$/, { pid });
    const before = fs.readdirSync(d).sort();
    await cliDumpKillRestore(pid);
    // The ghosts are gone from disk again: the directory holds what it held at the dump.
    expect(fs.readdirSync(d).sort()).toEqual(before);
    expect(fs.readdirSync(top).sort()).toEqual(['d', 'kept', 'report']);
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, /^(DONE|FAIL)/, { pid });
    await waitFor(() => readLines(report).includes('DONE'), 'all checks');
    const results = readLines(report).filter((l) => /^(OK|FAIL) /.test(l));
    expect(results).toEqual([
      'OK cwd',
      'OK dev',
      'OK owner',
      'OK times',
      'OK links',
      'OK sparse',
      'OK tmpfile',
      'OK opath',
    ]);
  });
});
