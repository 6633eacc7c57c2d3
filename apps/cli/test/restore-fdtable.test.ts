// Tasks sharing one fd table (clone(CLONE_FILES)): dumped once, restored as one table again (the child
// is cloned with CLONE_FILES), checked from outside (kcmp(KCMP_FILES), /proc/PID/fd) and by the
// programs themselves (an fd one opens after the restore is the other's too). A table shared with a
// task other than the parent cannot come back: refused at dump, the tree running on.
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { KCMP_FILES, kcmp } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  cliDump,
  failLines,
  PYTHON,
  procState,
  readLines,
  restoreDetached,
  runCli,
  startCommand,
  startWorkload,
  tempDir,
  track,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

describe('criu-ts dump/restore: a shared fd table (CLONE_FILES)', () => {
  it('parent and child share one table again; a third task keeps its own', async () => {
    const w = startWorkload('fdshare');
    const line = await waitForLine(w.report, /^CHILD /, { pid: w.pid });
    const [child, grand] = line.split(' ').slice(1).map(Number) as [number, number];
    track(child);
    track(grand);
    expect(kcmp(w.pid, child, KCMP_FILES)).toBe(0);
    const dir = await cliDump(w.pid);
    const img = ImageDir.open(dir);
    expect(img.ids(child).files_id).toBe(img.ids(w.pid).files_id);
    expect(img.ids(grand).files_id).not.toBe(img.ids(w.pid).files_id);
    for (const p of [grand, child, w.pid]) killAndReap(p);
    await restoreDetached(dir);
    expect(kcmp(w.pid, child, KCMP_FILES)).toBe(0);
    expect(kcmp(w.pid, grand, KCMP_FILES)).not.toBe(0);
    expect(fs.readdirSync(`/proc/${child}/fd`).sort()).toEqual(fs.readdirSync(`/proc/${w.pid}/fd`).sort());
    // An fd the child opens now is the parent's too; a byte the parent writes into the child's pipe
    // reaches it; the grandchild's own table does not get the fd.
    process.kill(child, 'SIGUSR1');
    await waitForLine(w.report, /^OPENED$/, { pid: child });
    expect(fs.readlinkSync(`/proc/${w.pid}/fd/40`)).toBe('/dev/null');
    process.kill(w.pid, 'SIGUSR2');
    await waitForLine(w.report, /^GOT x$/, { pid: child });
    process.kill(grand, 'SIGUSR1');
    expect(await waitForLine(w.report, /^GRAND /, { pid: grand })).toBe('GRAND 40 closed');
    expect(failLines(w.report)).toEqual([]);
  });

  it('a table shared with a task that is not the parent is refused; the tree runs on', async () => {
    // The child gets the parent's table by CLONE_FILES, then the parent unshares it: the grandchild the
    // child then clones with CLONE_FILES shares the child's table, not its parent's... which is the
    // child: allowed. So: the parent clones A and B with CLONE_FILES, then unshares its own table: A and B
    // share one table that their parent does not have.
    const script = `
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
CLONE_FILES, SIGCHLD = 0x400, 17
out = open(sys.argv[1], 'a', buffering=1)
kids = []
for _ in range(2):
    pid = libc.syscall(56, CLONE_FILES | SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        while True: time.sleep(1)
    kids.append(pid)
libc.unshare(CLONE_FILES)
out.write('READY %d %d %d\\n' % (os.getpid(), kids[0], kids[1]))
n = 0
while True:
    n += 1
    out.write('%d\\n' % n)
    time.sleep(0.01)
`;
    const dir = tempDir('criu-ts-fdt-py-');
    const report = path.join(dir, 'report');
    const pid = await startCommand([PYTHON, '-c', script, report]);
    const [a, b] = (await waitForLine(report, /^READY /, { pid })).split(' ').slice(2).map(Number) as [
      number,
      number,
    ];
    track(a);
    track(b);
    expect(kcmp(a, b, KCMP_FILES)).toBe(0);
    expect(kcmp(pid, a, KCMP_FILES)).not.toBe(0);
    const r = await runCli(['dump', '-t', String(pid), '-D', path.join(dir, 'images')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(
      `tasks ${a} and ${b} share one fd table (CLONE_FILES), and ${b}'s parent does not`,
    );
    const n = readLines(report).length;
    await waitForLine(report, (_l, i) => i >= n + 3, { pid, fromLine: n });
    expect(procState(pid)).not.toBe('gone');
  });
});
