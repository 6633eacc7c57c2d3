// Files whose names are gone, dumped, killed and restored (the `unlinked` workload reports on them at
// every SIGUSR1, before the dump and after the restore):
//  - an unlinked file with a 1 GiB hole, an owner, a mode and times, held by three fds and a mapping,
//    comes back as one sparse inode with all of that (ghost-file-1.img holds only its 8 KiB of data);
//  - --ghost-limit is on the space the file takes (refused with CRIU's words, the tree left running);
//    --no-ghost-fiemap finds the same runs of data with SEEK_DATA;
//  - a file that lost its name but keeps another one is refused without --link-remap, and linked back
//    (link_remap.N) with it: the restored fd is the very same inode, and the link goes after restore;
//  - an unlinked FIFO with bytes in flight comes back with them.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  big,
  buildWorkloads,
  cleanup,
  cliDump,
  cliKillAndRestore,
  critDecodeAll,
  entries,
  haveCrit,
  readLines,
  runCli,
  startWorkload,
  tempDir,
  type Workload,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const MIB = 1024 * 1024;

/** One report of the workload (SIGUSR1 -> lines up to "DONE k"), by the first word and name of each line. */
async function report(w: Workload, k: number): Promise<Map<string, Record<string, string>>> {
  const from = readLines(w.report).length;
  process.kill(w.pid, 'SIGUSR1');
  await waitForLine(w.report, new RegExp(`^DONE ${k}$`), { pid: w.pid });
  const out = new Map<string, Record<string, string>>();
  for (const line of readLines(w.report).slice(from)) {
    if (line.startsWith('FAIL')) throw new Error(line);
    if (line.startsWith('DONE')) break;
    const [kind, name] = line.split(' ');
    const fields: Record<string, string> = {};
    const linkAt = line.indexOf(' link=');
    const head = linkAt >= 0 ? line.slice(0, linkAt) : line;
    for (const kv of head.split(' ').slice(1)) {
      const i = kv.indexOf('=');
      if (i > 0) fields[kv.slice(0, i)] = kv.slice(i + 1);
    }
    if (linkAt >= 0) fields.link = line.slice(linkAt + ' link='.length);
    out.set(kind === 'MAP' ? 'MAP' : `${kind} ${name}`, fields);
  }
  return out;
}

/** Everything but what a new inode changes: its number and access time (the restore maps it). */
function withoutInode(r: Map<string, Record<string, string>>) {
  return [...r].map(([k, f]) => {
    const { ino: _i, atime: _a, ...rest } = f;
    return [k, rest];
  });
}

/** Start `unlinked MODE DIR ...` with DIR a directory of its own; wait for READY. */
async function start(mode: string, ...rest: string[]): Promise<{ w: Workload; dir: string }> {
  const dir = tempDir('criu-ts-core-unlinked-');
  const w = startWorkload('unlinked', [mode, dir, ...rest]);
  await waitForLine(w.report, /^READY /, { pid: w.pid });
  return { w, dir };
}

/** CRC-32 (IEEE) as the workload computes it. */
function crc32(bytes: Buffer, crc = 0): number {
  let c = ~crc >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** The workload's fill(): byte i of a buffer of pattern `seed`. */
const pattern = (n: number, seed: number) =>
  Buffer.from(Array.from({ length: n }, (_, i) => (seed * 131 + i * 7 + (i >> 8)) & 0xff));

describe('criu-ts: files whose names are gone', () => {
  it('an unlinked sparse file comes back with its holes, owner, mode, times and position, as one inode', async () => {
    const { w, dir } = await start('ghost', '1024');
    const before = await report(w, 1);
    const a = before.get('FD a')!;
    expect(a).toMatchObject({
      nlink: '0',
      uid: '1234',
      gid: '4321',
      mode: '102640',
      pos: '100',
      blocks: '16',
    });
    expect(a.data).toBe(`0+4096,${1024 * MIB + 4096}+4096`);
    expect(Number(a.size)).toBe(1024 * MIB + 3 * 4096);

    // Over the limit (8 KiB on disk, whatever the length): refused with CRIU's words, the task goes on.
    const refused = await runCli([
      'dump',
      '-t',
      String(w.pid),
      '-D',
      path.join(tempDir('criu-ts-img-'), 'i'),
      '--ghost-limit',
      '4K',
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`Can't dump ghost file ${dir}/data of 8192 size, increase limit`);
    expect(withoutInode(await report(w, 2))).toEqual(withoutInode(before));

    // -R with SEEK_DATA (--no-ghost-fiemap), then the real dump with FIEMAP: the same runs of data.
    const seekDir = await cliDump(w.pid, ['-R', '--no-ghost-fiemap', '--ghost-limit', '8K']);
    const images = await cliDump(w.pid);
    expect(fs.existsSync(path.join(images, 'ghost-file-2.img'))).toBe(false); // one ghost for the inode
    expect(fs.statSync(path.join(images, 'ghost-file-1.img')).size).toBeLessThan(16 * 1024);
    if (haveCrit) {
      const chunks = (d: string) => {
        const { decoded, failures } = critDecodeAll(d, ['ghost-file-1.img', 'remap-fpath.img']);
        expect(failures).toEqual([]);
        return {
          ghost: entries(decoded.get('ghost-file-1.img')),
          remaps: entries(decoded.get('remap-fpath.img')),
        };
      };
      const { ghost, remaps } = chunks(images);
      const head = ghost[0]!;
      expect([head.uid, head.gid, Number(big(head.mode)).toString(8), head.chunks]).toEqual([
        1234,
        4321,
        '102640',
        true,
      ]);
      expect(big(head.size)).toBe(BigInt(a.size!));
      const dev = Number(a.dev);
      expect(head.dev).toBe((((dev >> 8) & 0xfff) << 20) | (dev & 0xff)); // the kernel's dev_t, as CRIU's
      expect(head.atim).toEqual({ tv_sec: 1000, tv_usec: 123 });
      expect(head.mtim).toEqual({ tv_sec: 2000, tv_usec: 456 });
      const runs = ghost.slice(1).map((c) => `${big(c.off)}+${big(c.len)}`);
      expect(runs.join(',')).toBe(a.data);
      expect(
        chunks(seekDir)
          .ghost.slice(1)
          .map((c) => `${big(c.off)}+${big(c.len)}`),
      ).toEqual(runs);
      // fds a, b, c and the mapping: every remap names ghost 1.
      expect(remaps.length).toBeGreaterThanOrEqual(3);
      for (const r of remaps) expect([r.remap_type, r.remap_id]).toEqual(['GHOST', 1]);
    }

    await cliKillAndRestore(images);
    const after = await report(w, 3);
    expect(withoutInode(after)).toEqual(withoutInode(before));
    const inodes = new Set([...after.values()].map((f) => f.ino));
    expect(inodes.size).toBe(1); // fds a, b, c and the mapping: one file again
    expect(after.get('FD a')!.link).toBe(`${dir}/data (deleted)`);
    expect(fs.readdirSync(dir)).toEqual([]); // no ghost left behind
  });

  it('a file with another name left is refused without --link-remap, and linked back with it', async () => {
    const { w, dir } = await start('link');
    const before = (await report(w, 1)).get('FD a')!;
    expect(before).toMatchObject({ nlink: '1', size: '3000', pos: '10', link: `${dir}/data (deleted)` });

    const refused = await runCli([
      'dump',
      '-t',
      String(w.pid),
      '-D',
      path.join(tempDir('criu-ts-img-'), 'i'),
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`Can't create link remap for ${dir}/data. Use link-remap option.`);
    expect((await report(w, 2)).get('FD a')).toEqual(before);
    expect(fs.readdirSync(dir).sort()).toEqual(['data.link']);

    const images = await cliDump(w.pid, ['--link-remap']);
    const links = fs.readdirSync(dir).filter((n) => n.startsWith('link_remap.'));
    expect(links).toHaveLength(1);
    expect(String(fs.statSync(path.join(dir, links[0]!)).ino)).toBe(before.ino);
    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(images, ['remap-fpath.img']);
      expect(failures).toEqual([]);
      expect(entries(decoded.get('remap-fpath.img')).map((r) => r.remap_type)).toEqual(['LINKED']);
    }
    await cliKillAndRestore(images);
    expect((await report(w, 3)).get('FD a')).toEqual(before); // the same inode, position, name
    expect(fs.readdirSync(dir).sort()).toEqual(['data.link']); // the link remap is gone
  });

  it('a dump that fails or leaves the tree running takes its link remaps away again', async () => {
    const { w, dir } = await start('link');
    await cliDump(w.pid, ['--link-remap', '-R']);
    expect(fs.readdirSync(dir).sort()).toEqual(['data.link']);
    expect((await report(w, 1)).get('FD a')!.nlink).toBe('1');
  });

  it('an unlinked FIFO comes back with the bytes in flight', async () => {
    const { w, dir } = await start('fifo');
    const images = await cliDump(w.pid);
    await cliKillAndRestore(images);
    const fifo = (await report(w, 1)).get('FIFO a')!;
    expect(fifo).toMatchObject({ mode: '10640', bytes: '100', link: `${dir}/fifo (deleted)` });
    expect(Number.parseInt(fifo.crc!, 16)).toBe(crc32(pattern(100, 4)));
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
