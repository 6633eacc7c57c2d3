// `criu-ts cpuinfo dump|check` and --cpu-cap on dump and restore, as CRIU has them: cpuinfo.img written
// only when asked (CRIU's default writes none), a restore whose image claims what this CPU lacks refused
// before any task exists (no pid, no stub), accepted with --cpu-cap=none, and real workloads dumped and
// restored through the check.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { type CpuinfoX86Entry, ImageDir } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  counterNumbers,
  dumpAndKill,
  isConsecutiveFromOne,
  oneLineFailure,
  procState,
  restoreDetached,
  restoreStubs,
  runCli,
  startWorkload,
  tempDir,
  track,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const CRIU = '/tmp/criu-zdtm-main/criu/criu';

/** Rewrites DIR/cpuinfo.img's x86 entry with `edit`. */
function editCpuinfo(dir: string, edit: (e: CpuinfoX86Entry) => void): void {
  const entry = ImageDir.open(dir).one('cpuinfo');
  edit(entry.x86_entry?.[0] as CpuinfoX86Entry);
  ImageDir.open(dir).write('cpuinfo', undefined, [entry]);
}

/** Claims AVX-512 state, PKRU and AMX tiles, and an XSAVE area 8 KiB larger: some of it this CPU lacks. */
function claimMore(e: CpuinfoX86Entry): void {
  e.xfeatures_mask = (e.xfeatures_mask ?? 0n) | 0xe0n | 0x200n | 0x60000n;
  e.xsave_size = (e.xsave_size ?? 0) + 8192;
}

/** A counter that has counted to 3. */
async function counter() {
  const w = startWorkload('counter');
  await waitForLine(w.report, /^3$/, { pid: w.pid });
  return w;
}

describe('criu-ts cpuinfo', () => {
  it('dump then check: exit 0, silent; the image is the one CRIU writes here', async () => {
    const dir = path.join(tempDir('cpuinfo-cli-'), 'images');
    expect(await runCli(['cpuinfo', 'dump', '-D', dir])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await runCli(['cpuinfo', 'check', '-D', dir])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await runCli(['cpuinfo', 'check', '-D', dir, '--cpu-cap'])).toMatchObject({ code: 0, stderr: '' });
    // -v4 -o: the log says what was compared, in the work dir.
    expect((await runCli(['cpuinfo', 'check', '-D', dir, '-v4', '-o', 'c.log'])).code).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'c.log'), 'utf8')).toMatch(
      /cpu: fpu: xfeatures_mask 0x[0-9a-f]+ xsave_size \d+/,
    );
    if (fs.existsSync(CRIU)) {
      const theirs = tempDir('cpuinfo-criu-');
      execFileSync(CRIU, ['cpuinfo', 'dump', '-D', theirs], { stdio: 'ignore' });
      const a = fs.readFileSync(path.join(dir, 'cpuinfo.img'));
      expect(a.equals(fs.readFileSync(path.join(theirs, 'cpuinfo.img')))).toBe(true);
      // And CRIU's check takes ours, as ours takes CRIU's.
      execFileSync(CRIU, ['cpuinfo', 'check', '-D', dir, '--cpu-cap'], { stdio: 'ignore' });
      expect((await runCli(['cpuinfo', 'check', '-D', theirs, '--cpu-cap'])).code).toBe(0);
    }
  });

  it('check of an image claiming what this CPU lacks: exit 1, one line naming it; ^fpu lets XSAVE claims by', async () => {
    const dir = tempDir('cpuinfo-cli-');
    expect((await runCli(['cpuinfo', 'dump', '-D', dir])).code).toBe(0);
    editCpuinfo(dir, claimMore);
    const line = oneLineFailure(await runCli(['cpuinfo', 'check', '-D', dir]));
    expect(line).toMatch(
      /^criu-ts: cpu: CPU xfeatures has unsupported bits \(0x[0-9a-f]+\): missing .*AMX Tile data/,
    );
    // ins alone (^fpu) does not compare XSAVE state; none means all for `cpuinfo check`, as CRIU's.
    expect(await runCli(['cpuinfo', 'check', '-D', dir, '--cpu-cap=^fpu'])).toMatchObject({
      code: 0,
      stderr: '',
    });
    expect(oneLineFailure(await runCli(['cpuinfo', 'check', '-D', dir, '--cpu-cap=none']))).toContain(
      'xfeatures',
    );
  });

  it("CRIU's refusals: no action, an unknown one, a bad --cpu-cap, no image, a broken image", async () => {
    expect(oneLineFailure(await runCli(['cpuinfo']))).toBe(
      'criu-ts: cpuinfo requires an action: dump or check',
    );
    expect(oneLineFailure(await runCli(['cpuinfo', 'show']))).toBe(
      'criu-ts: unknown cpuinfo sub-command: show',
    );
    expect(oneLineFailure(await runCli(['cpuinfo', 'check', '--cpu-cap=fast']))).toBe(
      "criu-ts: Unknown FPU mode `fast' selected",
    );
    const empty = tempDir('cpuinfo-cli-');
    expect(oneLineFailure(await runCli(['cpuinfo', 'check', '-D', empty]))).toMatch(
      /^criu-ts: cpu: No cpuinfo image \(/,
    );
    fs.writeFileSync(
      path.join(empty, 'cpuinfo.img'),
      Buffer.from([0x19, 0x43, 0x56, 0x54, 0x13, 0x40, 0x40, 0x61, 0x8d]),
    );
    expect(oneLineFailure(await runCli(['cpuinfo', 'check', '-D', empty]))).toMatch(
      /^criu-ts: cpu: .*cpuinfo\.img: at byte 8: /,
    );
    // dump fails as CRIU's does (255) where the image cannot be written.
    const blocked = tempDir('cpuinfo-cli-');
    fs.mkdirSync(path.join(blocked, 'cpuinfo.img'));
    const r = await runCli(['cpuinfo', 'dump', '-D', blocked]);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/^criu-ts: cannot write .*cpuinfo\.img: it exists and is a directory/);
  });
});

describe('--cpu-cap on dump and restore', () => {
  it('default: dump writes no cpuinfo.img (as CRIU 4.2) and restore does not look for one', async () => {
    const w = await counter();
    const dir = await dumpAndKill(w.pid);
    expect(fs.existsSync(path.join(dir, 'cpuinfo.img'))).toBe(false);
    await restoreDetached(dir);
    await waitForMoreLines(w.report, 2, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
    killAndReap(w.pid);
    // The same images restored with --cpu-cap: refused, there is no cpuinfo.img to check.
    const r = await runCli(['restore', '-D', dir, '-d', '--cpu-cap']);
    expect(oneLineFailure(r)).toMatch(/^criu-ts: cpu: No cpuinfo image \(/);
    expect(procState(w.pid)).toBe('gone');
  });

  it('dump --cpu-cap writes cpuinfo.img; restore --cpu-cap checks it and the counter counts on', async () => {
    const w = await counter();
    const dir = await dumpAndKill(w.pid, { extra: ['--cpu-cap'] });
    expect(fs.readFileSync(path.join(dir, 'cpuinfo.img')).readUInt32LE(4)).toBe(0x61404013);
    await restoreDetached(dir, ['--cpu-cap=all', '-v4', '-o', 'restore.log']);
    await waitForMoreLines(w.report, 2, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'restore.log'), 'utf8')).toContain('cpu: fpu: xfeatures_mask');
  });

  it('an image claiming what this CPU lacks: restore refused before any task exists; --cpu-cap=none restores it', async () => {
    const w = await counter();
    const dir = await dumpAndKill(w.pid, { extra: ['--cpu-cap=fpu'] });
    editCpuinfo(dir, claimMore);
    const counted = counterNumbers(w.report).length;
    for (const cap of ['--cpu-cap', '--cpu-cap=fpu', '--cpu-cap=^ins']) {
      const r = await runCli(['restore', '-D', dir, '-d', cap]);
      expect(oneLineFailure(r)).toMatch(
        /^criu-ts: cpu: CPU xfeatures has unsupported bits \(0x[0-9a-f]+\): missing /,
      );
      // Nothing was made: no task with the pid, no stub, nothing counted.
      expect(procState(w.pid)).toBe('gone');
      expect(restoreStubs()).toEqual([]);
      expect(counterNumbers(w.report)).toHaveLength(counted);
    }
    track(w.pid);
    await restoreDetached(dir, ['--cpu-cap=none']);
    await waitForMoreLines(w.report, 2, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });

  it('restore with the default cap ignores a cpuinfo.img that would be refused (CRIU checks only with --cpu-cap)', async () => {
    const w = await counter();
    const dir = await dumpAndKill(w.pid, { extra: ['--cpu-cap'] });
    editCpuinfo(dir, claimMore);
    await restoreDetached(dir);
    await waitForMoreLines(w.report, 2, w.pid);
    expect(isConsecutiveFromOne(counterNumbers(w.report))).toBe(true);
  });
});
