// startTraceable / killAndReap: argv passed verbatim, stdio files, cwd, env, setsid; reaping is bounded.
import fs from 'node:fs';
import path from 'node:path';
import { __WALL, isSysError, kill, SIGTERM, WNOHANG, waitpid } from '@criu-ts/sys';
import { afterEach, describe, expect, it } from 'vitest';
import { killAndReap, startTraceable } from '../src/index.js';
import {
  buildWorkloads,
  cleanup,
  procState,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

afterEach(() => cleanup());

const ppidOf = (pid: number) =>
  Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);

describe('startTraceable', () => {
  it('passes argv verbatim, redirects stdio, sets cwd and env; the process is our re-parented child', async () => {
    const dir = tempDir();
    const input = path.join(dir, 'in');
    fs.writeFileSync(input, 'from stdin\n');
    const weird = ['a b', "it's", '$HOME', '"q"', '`id`', '*', ';exit 3', ''];
    const script = 'printf "%s|" "$@"; echo; pwd; echo "$FOO"; cat; echo err >&2; exec sleep 1000';
    const pid = startTraceable(['/bin/sh', '-c', script, 'sh', ...weird], {
      cwd: dir,
      env: { FOO: 'bar baz', PATH: '/usr/bin:/bin' },
      stdin: input,
      stdout: path.join(dir, 'out'),
      stderr: path.join(dir, 'err'),
    });
    track(pid);
    expect(ppidOf(pid)).toBe(process.pid);
    await waitFor(() => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep'), 'exec sleep');
    expect(fs.readFileSync(path.join(dir, 'out'), 'utf8')).toBe(
      `${weird.join('|')}|\n${dir}\nbar baz\nfrom stdin\n`,
    );
    expect(fs.readFileSync(path.join(dir, 'err'), 'utf8')).toBe('err\n');
  });

  it('returns only once argv[0] is exec-ed', () => {
    const pid = startTraceable(['/bin/sleep', '1000']);
    track(pid);
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('/bin/sleep\x001000\x00');
  });

  it('setsid: a new session led by the process itself (same pid)', () => {
    const pid = startTraceable(['/bin/sleep', '1000'], { setsid: true });
    track(pid);
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    expect(Number(f[3])).toBe(pid); // session
    expect(Number(f[2])).toBe(pid); // process group
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('/bin/sleep\x001000\x00');
  });
});

describe('killAndReap', () => {
  it('kills and reaps: nothing is left, not even a zombie', () => {
    const pid = startTraceable(['/bin/sleep', '1000']);
    killAndReap(pid);
    expect(procState(pid)).toBe('gone');
    let err: unknown;
    try {
      waitpid(pid, __WALL | WNOHANG);
    } catch (e) {
      err = e;
    }
    expect(isSysError(err, 'ECHILD')).toBe(true);
  });

  it('reaps a child that already exited', async () => {
    // (Not /bin/true: a process that ends before the intermediate shell exits may be reaped by the shell.)
    const pid = startTraceable(['/bin/sleep', '1000']);
    kill(pid, SIGTERM);
    await waitFor(() => procState(pid) === 'Z', 'zombie');
    killAndReap(pid);
    expect(procState(pid)).toBe('gone');
  });

  it('gives up after the timeout for a pid that is not ours and does not go away', async () => {
    // The zombie child of the zombie workload: SIGKILL does nothing, its parent never reaps it.
    await buildWorkloads();
    const w = startWorkload('zombie');
    const z = Number((await waitForLine(w.report, /^ZOMBIE /, { pid: w.pid })).split(' ')[1]);
    track(z);
    const t0 = Date.now();
    expect(() => killAndReap(z, 50)).toThrow(/still there/);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(procState(z)).toBe('Z');
  });
});
