// inotify after restore: `tail -f` (which waits on inotify) shows a line appended after the restore,
// and a program whose watches have non-consecutive numbers (it removed one) gets events for the
// right directories with the same watch descriptors it had.
import fs from 'node:fs';
import path from 'node:path';
import { startTraceable } from '@criu-ts/compel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  cliDump,
  cliDumpKillRestore,
  cliKillAndRestore,
  critDecodeAll,
  entries,
  haveCrit,
  PYTHON,
  procState,
  readLines,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

// Watches a (wd 1), b (wd 2, then removed) and c (wd 3), then reports every event: wd and name.
const WATCHER_PY = `
import ctypes, os, struct, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
IN_CREATE = 0x100
wds = [libc.inotify_add_watch(fd, d.encode(), IN_CREATE) for d in sys.argv[2:5]]
libc.inotify_rm_watch(fd, wds[1])
os.read(fd, 4096)                       # the IN_IGNORED of the removal
out.write('WATCHING %d %d\\n' % (wds[0], wds[2]))
while True:
    buf = os.read(fd, 4096)
    at = 0
    while at < len(buf):
        wd, mask, cookie, n = struct.unpack_from('iIII', buf, at)
        name = buf[at + 16:at + 16 + n].rstrip(b'\\0').decode()
        out.write('EVENT %d %s\\n' % (wd, name))
        at += 16 + n
`;

describe('criu-ts restore: inotify', () => {
  it('`tail -f` shows a line appended after the restore', async () => {
    const d = tempDir('criu-ts-tail-');
    const file = path.join(d, 'log');
    const out = path.join(d, 'out');
    fs.writeFileSync(file, 'before\n');
    const pid = startTraceable(
      [
        PYTHON,
        '-c',
        'import os, sys; os.closerange(3, 65536); os.execv(sys.argv[1], sys.argv[1:])',
        '/usr/bin/tail',
        '-f',
        file,
      ],
      { setsid: true, stdout: out },
    );
    track(pid);
    await waitFor(() => fs.existsSync(out) && readLines(out).includes('before'), 'tail to print');
    await waitFor(
      () =>
        fs
          .readdirSync(`/proc/${pid}/fd`)
          .some((f) => fs.readlinkSync(`/proc/${pid}/fd/${f}`).includes('inotify')),
      'tail to watch',
    );
    await cliDumpKillRestore(pid);
    fs.appendFileSync(file, 'after restore\n');
    await waitFor(() => readLines(out).includes('after restore'), 'tail to show the new line');
    expect(readLines(out)).toEqual(['before', 'after restore']);
  });

  it('watch descriptors keep their numbers (1 and 3, after a removal) and report the right directories', async () => {
    const d = tempDir('criu-ts-watch-');
    const dirs = ['a', 'b', 'c'].map((n) => path.join(d, n));
    for (const x of dirs) fs.mkdirSync(x);
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', WATCHER_PY, report, ...dirs], { setsid: true });
    track(pid);
    await waitForLine(report, /^WATCHING 1 3$/, { pid });
    await waitFor(() => procState(pid) === 'S', 'watcher waiting');
    const dir = await cliDumpKillRestore(pid);
    fs.writeFileSync(path.join(dirs[0]!, 'in-a'), '');
    fs.writeFileSync(path.join(dirs[1]!, 'in-b'), ''); // not watched any more
    fs.writeFileSync(path.join(dirs[2]!, 'in-c'), '');
    await waitForLine(report, /^EVENT 3 in-c$/, { pid });
    expect(readLines(report).filter((l) => l.startsWith('EVENT'))).toEqual(['EVENT 1 in-a', 'EVENT 3 in-c']);
    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['files.img']);
      expect(failures).toEqual([]);
      const ify = entries(decoded.get('files.img')).find((f) => f.type === 'INOTIFY');
      expect((ify!.ify as { wd: unknown[] }).wd).toHaveLength(2);
    }
  });
});

describe("--force-irmap and --irmap-scan-path (CRIU's irmap)", () => {
  it('dump --force-irmap --irmap-scan-path: the watch comes back and reports events', async () => {
    const d = tempDir('criu-ts-irmap-cli-');
    const dirs = ['a', 'b', 'c'].map((n) => path.join(d, n));
    for (const x of dirs) fs.mkdirSync(x);
    const report = path.join(d, 'report');
    const pid = startTraceable([PYTHON, '-c', WATCHER_PY, report, ...dirs], { setsid: true });
    track(pid);
    await waitForLine(report, /^WATCHING 1 3$/, { pid });
    await waitFor(() => procState(pid) === 'S', 'watcher waiting');
    const dir = await cliDump(pid, ['--force-irmap', '--irmap-scan-path', d]);
    await cliKillAndRestore(dir);
    fs.writeFileSync(path.join(dirs[2]!, 'in-c'), '');
    await waitForLine(report, /^EVENT 3 in-c$/, { pid });
  });
});
