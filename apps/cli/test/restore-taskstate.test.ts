// `criu-ts restore` of task state that only the task (or its parent) can see: audit loginuid,
// scheduling policy with SCHED_RESET_ON_FORK, membarrier registrations, the parent-death signal, nice,
// the signal a stopped task was stopped with, and seccomp filters of a task that could not install
// them again itself, shared by its threads. The workloads report what they read of themselves;
// /proc of the restored tasks is checked too.
import fs from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  dumpAndKill,
  failLines,
  procState,
  readLines,
  restoreDetached,
  startInShellSession,
  startWorkload,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** The last line starting with `tag`, without its tag and counter. */
function lastState(report: string, tag: string, fromLine = 0): string | undefined {
  const l = readLines(report)
    .slice(fromLine)
    .filter((x) => x.startsWith(`${tag} `) && x.split(' ').length > 2);
  return l.at(-1)?.split(' ').slice(2).join(' ');
}

describe('criu-ts restore: task state', () => {
  it('loginuid, SCHED_RR|SCHED_RESET_ON_FORK, membarrier, PR_SET_PDEATHSIG and nice come back', async () => {
    const w = startWorkload('taskstate', ['state']);
    await waitForLine(w.report, /^CHILD \d+$/, { pid: w.pid });
    const child = Number(
      readLines(w.report)
        .find((l) => /^CHILD \d+$/.test(l))!
        .split(' ')[1],
    );
    track(child);
    await waitFor(
      () => lastState(w.report, 'PARENT') !== undefined && lastState(w.report, 'CHILD') !== undefined,
      'both tasks reporting',
    );
    const parentBefore = lastState(w.report, 'PARENT');
    const childBefore = lastState(w.report, 'CHILD');
    expect(parentBefore).toBe('loginuid=3 policy=0x40000002 prio=3 membarrier=ok');
    expect(childBefore).toBe('loginuid=3 pdeath=10 nice=7');

    const dir = await dumpAndKill(w.pid, { kill: [w.pid, child] });
    const from = readLines(w.report).length;
    await restoreDetached(dir);
    await waitFor(
      () =>
        lastState(w.report, 'PARENT', from) !== undefined && lastState(w.report, 'CHILD', from) !== undefined,
      'both restored tasks reporting',
    );
    expect(lastState(w.report, 'PARENT', from)).toBe(parentBefore);
    expect(lastState(w.report, 'CHILD', from)).toBe(childBefore);
    // From outside: the loginuid of both, and the RT priority and policy of the parent (/proc stat
    // fields 40 and 41; the reset-on-fork flag is only seen from inside).
    for (const p of [w.pid, child]) expect(fs.readFileSync(`/proc/${p}/loginuid`, 'utf8')).toBe('3');
    const stat = fs.readFileSync(`/proc/${w.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect([f[37], f[38]]).toEqual(['3', '2']);
    expect(failLines(w.report)).toEqual([]);
  });

  it('a task stopped by SIGTSTP is stopped by SIGTSTP again (its parent sees signal 20)', async () => {
    const w = await startInShellSession('taskstate', ['tstp']);
    await waitForLine(w.report, /^STOPPED \d+ sig=20$/, { pid: w.pid });
    const child = Number(
      readLines(w.report)
        .find((l) => /^CHILD \d+$/.test(l))!
        .split(' ')[1],
    );
    track(child);
    expect(procState(child)).toBe('T');
    const dir = await dumpAndKill(w.pid, { kill: [w.pid, child], extra: ['--shell-job'] });
    const from = readLines(w.report).length;
    await restoreDetached(dir, ['--shell-job']);
    await waitForLine(w.report, /^STOPPED /, { pid: w.pid, fromLine: from });
    await waitFor(() => procState(child) === 'T', `restored ${child} stopped`);
    expect(lastState(w.report, 'STOPPED', from)).toBe('sig=20');
    expect(failLines(w.report)).toEqual([]);
  });

  it('seccomp: a filter of a task without privileges comes back, shared by its threads (a later TSYNC works)', async () => {
    const w = startWorkload('seccomp_tsync');
    await waitForLine(w.report, /^TICK \d+ getppid=77$/, { pid: w.pid });
    // The thread reports its tid on its own, not necessarily before the main loop's first tick.
    await waitForLine(w.report, /^THREAD \d+$/, { pid: w.pid });
    const tid = Number(
      readLines(w.report)
        .find((l) => /^THREAD \d+$/.test(l))!
        .split(' ')[1],
    );
    await waitFor(() => procStatusField(w.pid, w.pid, 'Uid').startsWith('65534'), 'the uid change');
    const dir = await dumpAndKill(w.pid, { kill: [w.pid] });
    const from = readLines(w.report).length;
    await restoreDetached(dir);
    await waitForLine(w.report, /^TICK \d+ getppid=77$/, { pid: w.pid, fromLine: from });
    for (const t of [w.pid, tid]) {
      expect(procStatusField(w.pid, t, 'Seccomp')).toBe('2');
      expect(procStatusField(w.pid, t, 'Uid')).toBe('65534\t65534\t65534\t65534');
    }
    process.kill(w.pid, 'SIGUSR1');
    await waitForLine(w.report, /^THREAD getpgid=/, { pid: w.pid, fromLine: from });
    const after = readLines(w.report).slice(from);
    expect(after.find((l) => l.startsWith('TSYNC '))).toBe('TSYNC 0');
    expect(after.find((l) => l.startsWith('THREAD getpgid='))).toBe('THREAD getpgid=78');
    expect(failLines(w.report)).toEqual([]);
  });
});

/** A field of /proc/PID/task/TID/status. */
function procStatusField(pid: number, tid: number, name: string): string {
  const line = fs
    .readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim() ?? '';
}
