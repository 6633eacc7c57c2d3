// `criu-ts swrk <fd>` driven by a client written here: the requests of CRIU's rpc.proto over a socketpair,
// a live counter dumped and restored (checked from outside: it counts on from where it was, same pid).
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { CriuReqType } from '@criu-ts/rpc';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
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

describe('criu-ts swrk', () => {
  it('answers VERSION, FEATURE_CHECK and CHECK over one connection (keep_open), then exits 0', async () => {
    const { client, proc } = startSwrk();
    const v = client.call({ type: CriuReqType.VERSION, keep_open: true });
    expect(v).toMatchObject({ type: CriuReqType.VERSION, success: true });
    expect(v.version).toMatchObject({ major_number: 4, minor_number: 2 });
    expect(v.version?.name).toMatch(/^criu-ts \d+\.\d+\.\d+/);
    const f = client.call({
      type: CriuReqType.FEATURE_CHECK,
      keep_open: true,
      features: { mem_track: true, lazy_pages: true, pidfd_store: true },
    });
    expect(f).toMatchObject({
      type: CriuReqType.FEATURE_CHECK,
      success: true,
      // this kernel has userfaultfd write-protect (mm/track/): memory tracking is there
      features: { mem_track: true, lazy_pages: false, pidfd_store: false },
    });
    const c = client.call({ type: CriuReqType.CHECK });
    expect(c).toMatchObject({ type: CriuReqType.CHECK, success: true });
    // No keep_open on the last one: swrk is done.
    expect(client.receive()).toBeUndefined();
    expect(await proc.exited).toEqual({ code: 0, signal: null });
  });

  it('refuses what criu-ts does not have yet by name: request types and criu_opts fields', () => {
    const { client } = startSwrk();
    const dir = tempDir();
    for (const [type, name] of [
      [CriuReqType.PAGE_SERVER, 'PAGE_SERVER'],
      [CriuReqType.PAGE_SERVER_CHLD, 'PAGE_SERVER_CHLD'],
    ] as const) {
      const r = client.call({ type, keep_open: true, opts: { images_dir_fd: -1, images_dir: dir } });
      expect(r).toMatchObject({ type, success: false, cr_errno: 95 });
      expect(r.cr_errmsg).toContain(`${name}: not supported by criu-ts yet`);
    }
    // A field set to what criu-ts cannot do is named (cr_errno EBADRQC, as CRIU's bad options).
    const r = client.call({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: -1, images_dir: dir, pid: process.pid, leave_running: true, evasive_devices: true },
    });
    expect(r).toMatchObject({ type: CriuReqType.DUMP, success: false, cr_errno: 56 });
    expect(r.cr_errmsg).toMatch(/^criu_opts\.evasive_devices: not supported by criu-ts yet/);
    // A failed dump ends the connection, as CRIU's.
    expect(client.receive()).toBeUndefined();
  });

  it('dumps a live counter through images_dir_fd, restores it (same pid, counting on), and WAIT_PID reaps it', async () => {
    const w = startWorkload('counter');
    await waitForMoreLines(w.report, 3, w.pid);
    const images = path.join(tempDir(), 'images');
    fs.mkdirSync(images);
    // The client's own fd for the directory: swrk reads it through /proc/CLIENT/fd/N, as CRIU's.
    const dirFd = fs.openSync(images, 'r');
    try {
      const d = startSwrk();
      const r = d.client.call({
        type: CriuReqType.DUMP,
        opts: { images_dir_fd: dirFd, pid: w.pid, log_level: 4, log_file: 'dump.log' },
      });
      expect(r, r.cr_errmsg).toMatchObject({
        type: CriuReqType.DUMP,
        success: true,
        dump: { restored: false },
      });
      expect(await d.proc.exited).toEqual({ code: 0, signal: null });
      expect(fs.readFileSync(path.join(images, 'dump.log'), 'utf8')).toContain(
        'Dumping finished successfully',
      );
      // Killed by the dump, as CRIU's default; reaped here so that its pid is free for the restore.
      await waitFor(() => ['gone', 'Z'].includes(stateOf(w.pid)), `counter ${w.pid} killed by the dump`);
      killAndReap(w.pid);
      const lastBefore = Number(readLines(w.report).at(-1));
      // Restore with keep_open, then WAIT_PID on the restored root (a child of this swrk).
      const rs = startSwrk();
      const res = rs.client.call({
        type: CriuReqType.RESTORE,
        keep_open: true,
        opts: { images_dir_fd: dirFd, log_level: 4, log_file: 'restore.log' },
      });
      expect(res, res.cr_errmsg).toMatchObject({
        type: CriuReqType.RESTORE,
        success: true,
        restore: { pid: w.pid },
      });
      track(w.pid);
      await waitForMoreLines(w.report, 3, w.pid);
      const after = readLines(w.report).map(Number);
      // It counts on from where the dump left it: no restart at 1, no number twice.
      expect(after.at(-1)).toBeGreaterThan(lastBefore);
      expect(after.slice(after.indexOf(lastBefore))).toEqual(
        Array.from({ length: after.length - after.indexOf(lastBefore) }, (_, i) => lastBefore + i),
      );
      process.kill(w.pid, 'SIGTERM');
      const wp = rs.client.call({ type: CriuReqType.WAIT_PID, pid: w.pid, keep_open: true });
      expect(wp).toMatchObject({ type: CriuReqType.WAIT_PID, success: true });
      // The raw status word: killed by SIGTERM.
      expect((wp.status ?? 0) & 0x7f).toBe(15);
      rs.client.close();
      expect(await rs.proc.exited).toEqual({ code: 0, signal: null });
    } finally {
      fs.closeSync(dirFd);
    }
  });

  it('rst_sibling: the restored root becomes the child of the client (swrk only)', async () => {
    const w = startWorkload('counter');
    await waitForMoreLines(w.report, 2, w.pid);
    const images = path.join(tempDir(), 'images');
    const d = startSwrk().client.call({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: -1, images_dir: images, pid: w.pid },
    });
    expect(d, d.cr_errmsg).toMatchObject({ success: true });
    killAndReap(w.pid);
    const r = startSwrk().client.call({
      type: CriuReqType.RESTORE,
      opts: { images_dir_fd: -1, images_dir: images, rst_sibling: true },
    });
    expect(r, r.cr_errmsg).toMatchObject({
      type: CriuReqType.RESTORE,
      success: true,
      restore: { pid: w.pid },
    });
    track(w.pid);
    const stat = fs.readFileSync(`/proc/${w.pid}/stat`, 'utf8');
    expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])).toBe(process.pid);
    await waitForMoreLines(w.report, 2, w.pid);
  });
});
