// `criu-ts restore` of anonymous hugetlb memory: a private MAP_HUGETLB mapping comes back hugetlb
// (VmFlags ht, KernelPageSize 2048 kB) with its contents; a shared one is refused at dump with a
// clear line, and the task runs on. Needs free huge pages (/proc/sys/vm/nr_hugepages).
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  failLines,
  procState,
  readLines,
  runCli,
  startWorkload,
  tempDir,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** Free 2 MiB huge pages now. */
function freeHugePages(): number {
  const m = /^HugePages_Free:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** The smaps fields of the VMA of `pid` that starts at `addr`. */
function smapsOf(pid: number, addr: bigint): Record<string, string> {
  const out: Record<string, string> = {};
  let inside = false;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (m) inside = BigInt(`0x${m[1]}`) === addr;
    else if (inside) {
      const i = line.indexOf(':');
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
    }
  }
  return out;
}

const mapAddr = (report: string) =>
  BigInt(
    `0x${
      readLines(report)
        .find((l) => l.startsWith('MAP '))!
        .split(' ')[1]
    }`,
  );

describe.skipIf(freeHugePages() < 4)('criu-ts restore: hugetlb', () => {
  it('a private MAP_HUGETLB mapping comes back hugetlb with its contents', async () => {
    const w = startWorkload('hugetlb', ['private']);
    await waitForLine(w.report, /^CHECK \d+ ok$/, { pid: w.pid });
    const addr = mapAddr(w.report);
    const dir = path.join(tempDir('criu-ts-hugetlb-'), 'images');
    const d = await runCli(['dump', '-t', String(w.pid), '-D', dir]);
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    killAndReap(w.pid);
    expect(procState(w.pid)).toBe('gone');
    const from = readLines(w.report).length;
    const r = await runCli(['restore', '-D', dir, '-d']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await waitForLine(w.report, /^CHECK \d+ /, { pid: w.pid, fromLine: from });
    expect(readLines(w.report).slice(from).at(-1)).toMatch(/ ok$/);
    const sm = smapsOf(w.pid, addr);
    expect(sm.VmFlags?.split(' ')).toContain('ht');
    expect(sm.KernelPageSize).toBe('2048 kB');
    expect(failLines(w.report)).toEqual([]);
  });

  it('a shared MAP_HUGETLB mapping is refused at dump, naming it; the task runs on', async () => {
    const w = startWorkload('hugetlb', ['shared']);
    await waitForLine(w.report, /^CHECK \d+ ok$/, { pid: w.pid });
    const dir = path.join(tempDir('criu-ts-hugetlb-'), 'images');
    const d = await runCli(['dump', '-t', String(w.pid), '-D', dir]);
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/hugetlb memory other than private anonymous .* is not supported yet/);
    expect(d.stderr).toContain(`pid ${w.pid} VMA ${mapAddr(w.report).toString(16)}-`);
    await waitForMoreLines(w.report, 3, w.pid);
    expect(failLines(w.report)).toEqual([]);
  });
});
