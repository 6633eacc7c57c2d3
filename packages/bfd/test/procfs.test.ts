// The one-shot readers (readStat, readStatus, procExists, readProcLink), /proc/sys, /proc/uptime,
// /proc/PID/cgroup and procPath, against real processes and the real files.

import { readFileSync, readlinkSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import {
  ProcDir,
  parseCgroup,
  parseUptime,
  procExists,
  procPath,
  readProcLink,
  readProcText,
  readStat,
  readStatus,
  readSysctl,
  readSysctlInt,
  readUptime,
} from '../src/index.js';
import { killStarted, start, waitFor } from './helpers.js';

afterEach(killStarted);

it('procPath spells /proc paths', () => {
  expect(procPath(12, 'fd', 3)).toBe('/proc/12/fd/3');
  expect(procPath('self', 'fd', 7)).toBe('/proc/self/fd/7');
  expect(procPath('thread-self', 'loginuid')).toBe('/proc/thread-self/loginuid');
  expect(procPath(5)).toBe('/proc/5');
});

it('reads a live child, then nothing once it is gone', async () => {
  const child = start('sleep', ['1000']);
  const stat = await waitFor(() => {
    const s = readStat(child.pid);
    return s?.comm === 'sleep' && s;
  }, 'sleep exec');
  expect(stat.ppid).toBe(process.pid);
  expect(readStatus(child.pid)?.tgid).toBe(child.pid);
  expect(readStatus(child.pid, child.pid)?.pid).toBe(child.pid);
  expect(readStat(child.pid, child.pid)?.comm).toBe('sleep');
  expect(procExists(child.pid)).toBe(true);
  expect(readProcLink(child.pid, 'exe')).toBe(readlinkSync(`/proc/${child.pid}/exe`));
  expect(readProcText(child.pid, 'cmdline')).toBe('sleep\x001000\0');
  await killStarted();
  await waitFor(() => !procExists(child.pid), 'child reaped');
  expect(readStat(child.pid)).toBeUndefined();
  expect(readStatus(child.pid)).toBeUndefined();
  expect(readProcLink(child.pid, 'exe')).toBeUndefined();
});

it('a pid beyond pid_max does not exist', () => {
  const max = readSysctlInt('kernel/pid_max');
  expect(max).toBe(Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')));
  expect(procExists(max)).toBe(false);
  expect(readStat(max)).toBeUndefined();
});

it('reads /proc/sys values as text and numbers', () => {
  expect(readSysctl('kernel/ostype')).toBe('Linux');
  expect(readSysctlInt('kernel/cap_last_cap')).toBeGreaterThanOrEqual(36);
  expect(() => readSysctlInt('kernel/ostype')).toThrow(/not a number/);
  expect(() => readSysctl('kernel/no-such-sysctl')).toThrow(/ENOENT/);
});

it('reads /proc/uptime', () => {
  expect(parseUptime('12345.67 54321.00\n')).toEqual({ up: 12345.67, idle: 54321 });
  expect(() => parseUptime('')).toThrow(/uptime/);
  const a = readUptime().up;
  const real = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  expect(Math.abs(real - a)).toBeLessThan(5);
});

it('parses /proc/PID/cgroup, paths with colons included', () => {
  expect(parseCgroup('12:cpu,cpuacct:/a:b\n0::/user.slice\n')).toEqual([
    { id: 12, name: 'cpu,cpuacct', path: '/a:b' },
    { id: 0, name: '', path: '/user.slice' },
  ]);
  const own = ProcDir.self().cgroups();
  expect(own.length).toBeGreaterThan(0);
  expect(own).toEqual(parseCgroup(readFileSync('/proc/self/cgroup', 'utf8')));
});
