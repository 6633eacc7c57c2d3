// CPUINFO_DUMP, CPUINFO_CHECK and criu_opts.cpu_cap over swrk, as CRIU answers them: the image CRIU's
// (byte for byte when CRIU is here), a failed check a reply naming what is missing with the connection
// going on (keep_open), cpu_cap as CRIU takes it (its bits plus the image), and a RESTORE whose image
// claims what this CPU lacks refused before any task exists. Also through @criu-ts/rpc's client.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { type CpuinfoX86Entry, ImageDir } from '@criu-ts/images';
import { CriuClient, CriuReqType } from '@criu-ts/rpc';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  REPO,
  readLines,
  startSwrk,
  startWorkload,
  stateOf,
  tempDir,
  track,
  waitFor,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const CRIU = '/tmp/criu-zdtm-main/criu/criu';
const CPU_CAP = { FPU: 1, CPU: 2, INS: 4 };

function claimMore(dir: string): void {
  const entry = ImageDir.open(dir).one('cpuinfo');
  const e = entry.x86_entry?.[0] as CpuinfoX86Entry;
  e.xfeatures_mask = (e.xfeatures_mask ?? 0n) | 0xe0n | 0x200n | 0x60000n;
  ImageDir.open(dir).write('cpuinfo', undefined, [entry]);
}

describe('RPC cpuinfo', () => {
  it('CPUINFO_DUMP then CPUINFO_CHECK over one connection; a failed check names what is missing and the connection goes on', async () => {
    const { client, proc } = startSwrk();
    const dir = tempDir('cpuinfo-rpc-');
    const opts = { images_dir_fd: -1, images_dir: dir };
    const d = client.call({ type: CriuReqType.CPUINFO_DUMP, keep_open: true, opts });
    expect(d, d.cr_errmsg).toEqual({ type: CriuReqType.CPUINFO_DUMP, success: true });
    if (fs.existsSync(CRIU)) {
      const theirs = tempDir('cpuinfo-criu-');
      execFileSync(CRIU, ['cpuinfo', 'dump', '-D', theirs], { stdio: 'ignore' });
      const ours = fs.readFileSync(path.join(dir, 'cpuinfo.img'));
      expect(ours.equals(fs.readFileSync(path.join(theirs, 'cpuinfo.img')))).toBe(true);
    }
    const c = client.call({ type: CriuReqType.CPUINFO_CHECK, keep_open: true, opts });
    expect(c, c.cr_errmsg).toEqual({ type: CriuReqType.CPUINFO_CHECK, success: true });

    claimMore(dir);
    const bad = client.call({ type: CriuReqType.CPUINFO_CHECK, keep_open: true, opts });
    expect(bad).toMatchObject({ type: CriuReqType.CPUINFO_CHECK, success: false });
    expect(bad.cr_errmsg).toMatch(
      /^cpu: CPU xfeatures has unsupported bits \(0x[0-9a-f]+\): missing .*AMX Tile data/,
    );
    // cpu_cap as CRIU takes it: ins only does not compare XSAVE state; 0 checks nothing but the image.
    for (const cap of [CPU_CAP.INS, 0])
      expect(
        client.call({ type: CriuReqType.CPUINFO_CHECK, keep_open: true, opts: { ...opts, cpu_cap: cap } }),
      ).toMatchObject({ success: true });
    expect(
      client.call({
        type: CriuReqType.CPUINFO_CHECK,
        keep_open: true,
        opts: { ...opts, cpu_cap: 0xffffffff },
      }),
    ).toMatchObject({ success: false });
    // No image at all.
    const none = client.call({
      type: CriuReqType.CPUINFO_CHECK,
      keep_open: true,
      opts: { images_dir_fd: -1, images_dir: tempDir('cpuinfo-none-') },
    });
    expect(none).toMatchObject({ success: false });
    expect(none.cr_errmsg).toMatch(/^cpu: No cpuinfo image/);
    // Still serving after the failures, as CRIU's handle_cpuinfo.
    expect(client.call({ type: CriuReqType.VERSION })).toMatchObject({ success: true });
    expect(client.receive()).toBeUndefined();
    // swrk exits with the last request's result, as CRIU's: the VERSION succeeded.
    expect(await proc.exited).toEqual({ code: 0, signal: null });
  });

  it('DUMP with cpu_cap writes cpuinfo.img; RESTORE with cpu_cap refuses an image claiming more, before any task; without, restores', async () => {
    const w = startWorkload('counter');
    await waitForMoreLines(w.report, 2, w.pid);
    const images = path.join(tempDir(), 'images');
    const opts = { images_dir_fd: -1, images_dir: images };
    const withoutCap = path.join(tempDir(), 'images');
    const d0 = startSwrk().client.call({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: -1, images_dir: withoutCap, pid: w.pid, leave_running: true },
    });
    expect(d0, d0.cr_errmsg).toMatchObject({ success: true });
    expect(fs.existsSync(path.join(withoutCap, 'cpuinfo.img'))).toBe(false);
    const d = startSwrk().client.call({
      type: CriuReqType.DUMP,
      opts: { ...opts, pid: w.pid, cpu_cap: CPU_CAP.FPU | CPU_CAP.INS },
    });
    expect(d, d.cr_errmsg).toMatchObject({ success: true });
    expect(fs.existsSync(path.join(images, 'cpuinfo.img'))).toBe(true);
    await waitFor(() => ['gone', 'Z'].includes(stateOf(w.pid)), `counter ${w.pid} killed by the dump`);
    killAndReap(w.pid);
    const counted = readLines(w.report).length;
    claimMore(images);
    const r = startSwrk().client.call({ type: CriuReqType.RESTORE, opts: { ...opts, cpu_cap: CPU_CAP.FPU } });
    expect(r).toMatchObject({ type: CriuReqType.RESTORE, success: false, restore: { pid: -1 } });
    expect(r.cr_errmsg).toMatch(/^cpu: CPU xfeatures has unsupported bits/);
    expect(stateOf(w.pid)).toBe('gone');
    expect(readLines(w.report)).toHaveLength(counted);
    // Without cpu_cap (CRIU's default: no image check), through @criu-ts/rpc's client this time.
    const client = CriuClient.swrk(path.join(REPO, 'node_modules/.bin/criu-ts'));
    try {
      const res = await client.restore({ imagesDir: images, rst_sibling: true });
      expect(res.pid).toBe(w.pid);
      track(w.pid);
      await waitForMoreLines(w.report, 2, w.pid);
      // And CPUINFO_DUMP / CPUINFO_CHECK through the typed client.
      const mine = tempDir('cpuinfo-client-');
      await client.cpuinfoDump({ imagesDir: mine });
      expect(fs.existsSync(path.join(mine, 'cpuinfo.img'))).toBe(true);
      await client.cpuinfoCheck({ imagesDir: images, cpu_cap: CPU_CAP.INS });
      claimMore(mine);
      await expect(client.cpuinfoCheck({ imagesDir: mine, cpu_cap: CPU_CAP.FPU })).rejects.toThrow(
        /^CPUINFO_CHECK failed: cpu: CPU xfeatures has unsupported bits/,
      );
    } finally {
      await client.close();
    }
  });
});
