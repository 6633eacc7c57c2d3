// How files are opened again at restore, checked by the task itself after dump -> kill -> restore:
//  - namespace files (/proc/self/ns/net, uts) name the same namespaces as the task's own;
//  - a memfd the task holds read-write can still be executed (fexecve): the fd is the memfd's own
//    description, not a reopened one that would count as a writer (ETXTBSY);
//  - a shared mapping of a file opened read-write, mapped read-only, can be made writable again
//    (mprotect): the mapping's file is opened read-write as it was, whatever the protection says.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDump,
  cliKillAndRestore,
  PYTHON,
  readLines,
  startCommand,
  tempDir,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

const HOLDER = `
import ctypes, os, signal, sys
out = open(sys.argv[1], 'a', buffering=1)
net = os.open('/proc/self/ns/net', os.O_RDONLY)
uts = os.open('/proc/self/ns/uts', os.O_RDONLY)
mfd = os.memfd_create('script', 0)
os.write(mfd, b'#!/bin/true\\n')
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
f = os.open(os.path.join(sys.argv[2], 'mapped'), os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(f, 8192)
addr = libc.mmap(None, 8192, 1, 1, f, 0)          # PROT_READ, MAP_SHARED
os.close(f)
if libc.mprotect(addr + 4096, 4096, 3) != 0: raise SystemExit('mprotect')
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
out.write('READY %d\\n' % os.getpid())
n = 0
while True:
    signal.sigwait([signal.SIGUSR1])
    n += 1
    link = lambda p: os.readlink(p)
    out.write('NS %s %s\\n' % (link('/proc/self/fd/%d' % net), link('/proc/self/ns/net')))
    out.write('NS %s %s\\n' % (link('/proc/self/fd/%d' % uts), link('/proc/self/ns/uts')))
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(mfd, ['true'], {})
        except OSError as e:
            os._exit(e.errno)
    out.write('EXEC %d\\n' % os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    if n > 1:
        rc = libc.mprotect(addr, 4096, 3)
        out.write('MPROTECT %d %d\\n' % (rc, ctypes.get_errno() if rc else 0))
    out.write('DONE %d\\n' % n)
`;

async function checks(pid: number, report: string, k: number): Promise<string[]> {
  const from = readLines(report).length;
  process.kill(pid, 'SIGUSR1');
  await waitForLine(report, new RegExp(`^DONE ${k}$`), { pid });
  return readLines(report).slice(from, -1);
}

describe('criu-ts restore: files opened again as they were', () => {
  it('namespace files, an executable memfd and a read-only part of a read-write shared mapping', async () => {
    const d = tempDir('criu-ts-core-opens-');
    const report = path.join(d, 'report');
    const pid = await startCommand([PYTHON, '-c', HOLDER, report, d]);
    await waitForLine(report, /^READY /, { pid });
    const before = await checks(pid, report, 1);
    const ns = (lines: string[]) => lines.filter((l) => l.startsWith('NS '));
    for (const l of ns(before)) expect(l.split(' ')[1]).toBe(l.split(' ')[2]);
    expect(before).toContain('EXEC 0');

    const images = await cliDump(pid);
    expect(fs.readdirSync(images)).toContain('files.img');
    await cliKillAndRestore(images);
    const after = await checks(pid, report, 2);
    expect(ns(after)).toEqual(ns(before)); // the same namespaces, by the fd and by /proc/self/ns
    expect(after).toContain('EXEC 0'); // not ETXTBSY (26)
    expect(after).toContain('MPROTECT 0 0'); // not EACCES (13)
  });
});
