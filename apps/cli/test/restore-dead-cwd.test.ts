// A task whose working directory is /proc/PID of a child that has died since (zdtm's unhashed_proc):
// the restored task is back in that dead directory, getcwd() fails with ENOENT as before, and no
// process with that pid is left behind (the helper that held it while the task entered it is gone).
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
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

const DEAD_CWD_PY = `
import errno, os, signal, sys
os.closerange(3, 65536)
out = open(sys.argv[1], 'a', buffering=1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
child = os.fork()
if child == 0:
    signal.pause(); os._exit(0)
os.chdir('/proc/%d' % child)
os.kill(child, signal.SIGKILL); os.waitpid(child, 0)
out.write('READY %d\\n' % child)
while True:
    signal.sigwait([signal.SIGUSR1])
    try: out.write('CWD %s\\n' % os.getcwd())
    except OSError as e: out.write('CWD %s %s\\n' % (errno.errorcode[e.errno], os.readlink('/proc/self/cwd')))
`;

describe('criu-ts restore: a cwd in /proc/PID of a dead task', () => {
  it('comes back in the dead directory (getcwd: ENOENT), and the pid is free again', async () => {
    const dir = tempDir('criu-ts-dead-cwd-');
    const report = path.join(dir, 'report');
    const pid = startTraceable([PYTHON, '-c', DEAD_CWD_PY, report], { setsid: true });
    track(pid);
    const dead = Number((await waitForLine(report, /^READY \d+$/, { pid })).split(' ')[1]);
    await waitFor(() => procState(pid) === 'S', 'waiting');
    const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    expect(cwd).toBe(`/proc/${dead} (deleted)`);
    process.kill(pid, 'SIGUSR1');
    const before = await waitForLine(report, /^CWD /, { pid });
    expect(before).toBe(`CWD ENOENT /proc/${dead} (deleted)`);
    const images = await cliDump(pid);
    await cliKillAndRestore(images);
    expect(fs.readlinkSync(`/proc/${pid}/cwd`)).toBe(cwd);
    expect(fs.existsSync(`/proc/${dead}`)).toBe(false);
    process.kill(pid, 'SIGUSR1');
    await waitForLine(report, (l, i) => i > 1 && l.startsWith('CWD '), { pid });
    expect(fs.readFileSync(report, 'utf8').trim().split('\n').slice(-2)).toEqual([before, before]);
  });
});
