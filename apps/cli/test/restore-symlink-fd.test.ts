// An fd on a symlink itself (open with O_PATH|O_NOFOLLOW, the only way to hold one) comes back on the
// same link, not on what it points to: a dangling relative link and one to a file. Checked from outside
// (/proc/PID/fd names the links, fdinfo keeps O_PATH|O_NOFOLLOW) and by the task, which reads the links
// through its fds (readlinkat(fd, "")) and finds them still links (fstat).
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

const LINKS_PY = `
import os, signal, stat, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
d = sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
open(d + '/file', 'w').write('data')
os.symlink('nowhere/at/all', d + '/dangling')
os.symlink(d + '/file', d + '/tofile')
fds = [os.open(d + '/' + n, os.O_PATH | os.O_NOFOLLOW) for n in ('dangling', 'tofile')]
out.write('READY %s\\n' % ' '.join(map(str, fds)))
signal.sigwait([signal.SIGUSR1])
for fd in fds:
    out.write('LINK %d %s %s\\n' % (fd, os.readlink('', dir_fd=fd), stat.S_ISLNK(os.stat(fd).st_mode)))
`;

const O_PATH = 0o10000000;
const O_NOFOLLOW = 0o400000;

function fdFlags(pid: number, fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
  return Number.parseInt(m?.[1] ?? '0', 8);
}

describe('criu-ts restore: fds on symlinks', () => {
  it('O_PATH|O_NOFOLLOW fds on a dangling link and a link to a file stay on the links', async () => {
    const dir = tempDir('criu-ts-symlink-fd-');
    const d = path.join(dir, 'links');
    fs.mkdirSync(d);
    const report = path.join(dir, 'report');
    const pid = startTraceable([PYTHON, '-c', LINKS_PY, report, d], { setsid: true });
    track(pid);
    const fds = (await waitForLine(report, /^READY /, { pid })).split(' ').slice(1).map(Number);
    await waitFor(() => procState(pid) === 'S', 'waiting');
    const seen = () =>
      fds.map((fd) => [fs.readlinkSync(`/proc/${pid}/fd/${fd}`), fdFlags(pid, fd) & (O_PATH | O_NOFOLLOW)]);
    const before = seen();
    expect(before).toEqual([
      [path.join(d, 'dangling'), O_PATH | O_NOFOLLOW],
      [path.join(d, 'tofile'), O_PATH | O_NOFOLLOW],
    ]);
    const images = await cliDump(pid);
    await cliKillAndRestore(images);
    expect(seen()).toEqual(before);
    process.kill(pid, 'SIGUSR1');
    await waitFor(
      () => readLines(report).filter((l) => l.startsWith('LINK ')).length === 2,
      'both links read',
    );
    expect(readLines(report).filter((l) => l.startsWith('LINK '))).toEqual([
      `LINK ${fds[0]} nowhere/at/all True`,
      `LINK ${fds[1]} ${path.join(d, 'file')} True`,
    ]);
  });
});
