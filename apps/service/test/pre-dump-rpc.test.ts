// Incremental dumps over CRIU's RPC (`criu-ts swrk`): PRE_DUMP repeated on one connection, then the DUMP
// that ends the series, as CRIU's pre_dump_loop; SINGLE_PRE_DUMP; parent_img, track_mem.
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { PageMap } from '@criu-ts/images';
import { CriuReqType } from '@criu-ts/rpc';
import { kill, SIGUSR2 } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  onCleanup,
  readLines,
  startSwrk,
  startWorkload,
  tempDir,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** Ends the keeper of `dir` if a failed test left one. */
function endKeeper(dir: string): void {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(dir, 'criu-ts-track.json'), 'utf8'));
    killAndReap(s.keeper.pid);
  } catch {
    // none
  }
}

async function burst(pid: number, report: string): Promise<void> {
  const n = readLines(report).length;
  kill(pid, SIGUSR2);
  await waitForLine(report, /^BURST /, { pid, fromLine: n });
}

describe('PRE_DUMP over RPC', () => {
  it('PRE_DUMP, PRE_DUMP, DUMP on one connection: each answered, the dump writes PE_PARENT runs through parent_img', async () => {
    const w = startWorkload('dirtier', ['8', 'burst', '5']);
    const line = await waitForLine(w.report, /^AREA /, { pid: w.pid });
    const area = BigInt(`0x${line.split(' ')[1]}`);
    const root = tempDir();
    for (const d of ['pre1', 'pre2', 'dump']) {
      fs.mkdirSync(path.join(root, d));
      onCleanup(() => endKeeper(path.join(root, d)));
    }
    const { client, proc } = startSwrk();
    const p1 = client.call({
      type: CriuReqType.PRE_DUMP,
      opts: { images_dir_fd: -1, images_dir: path.join(root, 'pre1'), pid: w.pid },
    });
    expect(p1, p1.cr_errmsg).toMatchObject({ type: CriuReqType.PRE_DUMP, success: true });
    await burst(w.pid, w.report);
    const p2 = client.call({
      type: CriuReqType.PRE_DUMP,
      opts: {
        images_dir_fd: -1,
        images_dir: path.join(root, 'pre2'),
        pid: w.pid,
        parent_img: '../pre1',
        track_mem: true,
      },
    });
    expect(p2, p2.cr_errmsg).toMatchObject({ type: CriuReqType.PRE_DUMP, success: true });
    await burst(w.pid, w.report);
    const d = client.call({
      type: CriuReqType.DUMP,
      opts: {
        images_dir_fd: -1,
        images_dir: path.join(root, 'dump'),
        pid: w.pid,
        parent_img: '../pre2',
        track_mem: true,
        leave_running: true,
        log_file: 'dump.log',
        log_level: 4,
      },
    });
    expect(d, d.cr_errmsg).toMatchObject({ type: CriuReqType.DUMP, success: true });
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(fs.readlinkSync(path.join(root, 'dump', 'parent'))).toBe('../pre2');
    const pm = PageMap.forTask(path.join(root, 'dump'), w.pid);
    expect(pm.runs.some((r) => r.flags === 1)).toBe(true);
    expect(pm.read(area, 8).readBigUInt64LE(0)).toBe(0n);
    // -R with track_mem: tracking kept for a later dump
    expect(fs.existsSync(path.join(root, 'dump', 'criu-ts-track.json'))).toBe(true);
  }, 60_000);

  it('after a PRE_DUMP only PRE_DUMP or DUMP may come ("Bad req seq"); SINGLE_PRE_DUMP is answered with its own type', async () => {
    const w = startWorkload('dirtier', ['4', 'burst']);
    await waitForLine(w.report, /^AREA /, { pid: w.pid });
    const root = tempDir();
    const { client } = startSwrk();
    const pre = path.join(root, 'pre1');
    fs.mkdirSync(pre);
    onCleanup(() => endKeeper(pre));
    expect(
      client.call({ type: CriuReqType.PRE_DUMP, opts: { images_dir_fd: -1, images_dir: pre, pid: w.pid } }),
    ).toMatchObject({
      type: CriuReqType.PRE_DUMP,
      success: true,
    });
    const bad = client.call({ type: CriuReqType.VERSION });
    expect(bad).toMatchObject({ type: CriuReqType.EMPTY, success: false, cr_errmsg: 'Bad req seq' });
    expect(client.receive()).toBeUndefined();

    const single = startSwrk().client;
    const pre2 = path.join(root, 'pre2');
    fs.mkdirSync(pre2);
    onCleanup(() => endKeeper(pre2));
    const s = single.call({
      type: CriuReqType.SINGLE_PRE_DUMP,
      keep_open: true,
      opts: { images_dir_fd: -1, images_dir: pre2, pid: w.pid, parent_img: '../pre1' },
    });
    expect(s, s.cr_errmsg).toMatchObject({ type: CriuReqType.SINGLE_PRE_DUMP, success: true });
    // the connection goes on (keep_open): SINGLE_PRE_DUMP is not a loop
    expect(single.call({ type: CriuReqType.VERSION })).toMatchObject({
      type: CriuReqType.VERSION,
      success: true,
    });
    // splice is refused by name
    const sp = startSwrk().client.call({
      type: CriuReqType.SINGLE_PRE_DUMP,
      opts: { images_dir_fd: -1, images_dir: pre2, pid: w.pid, pre_dump_mode: 1 },
    });
    expect(sp).toMatchObject({ type: CriuReqType.SINGLE_PRE_DUMP, success: false });
    expect(sp.cr_errmsg).toMatch(/--pre-dump-mode splice is not supported by criu-ts/);
  }, 60_000);
});
