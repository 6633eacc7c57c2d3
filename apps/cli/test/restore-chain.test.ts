// Restore of incremental chains (PE_PARENT runs whose pages are in parent/, parent/parent/, ...),
// --auto-dedup and `criu-ts dedup`, on real processes. No pre-dump writes such images yet here, so the
// chains are cut from a real dump (chain-images.ts): every page has one owner level, the other levels'
// copies of it are garbage, and the restored task's own checksum (memhog: SUM on SIGUSR1, FAIL if it
// changed) and its SUM line before the dump say from outside whether each page came from the right
// level. Broken chains are refused with one line before any task exists. Holes are looked at with
// SEEK_DATA.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { ImageDir, PageMap, PE_LAZY, PE_PARENT, PE_PRESENT } from '@criu-ts/images';
import { close, isSysError, lseek, O_RDONLY, open, SEEK_DATA, shmRemove } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildChain, type Chain, nothing, rewritePagemap } from './chain-images.js';
import {
  buildWorkloads,
  CRIT,
  cleanup,
  dumpAndKill,
  failLines,
  haveCrit,
  onCleanup,
  oneLineFailure,
  procState,
  readLines,
  restoreDetached,
  restoreStubs,
  runCli,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
  waitInPause,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const PAGE = 4096n;

interface Hog {
  pid: number;
  report: string;
  sum: string;
}

/** memhog of `mib` MiB, its first SUM, asleep in pause(). */
async function startHog(mib: number): Promise<Hog> {
  const w = startWorkload('memhog', [String(mib)]);
  const sum = await waitForLine(w.report, /^SUM /, { pid: w.pid });
  await waitInPause(w.pid);
  return { pid: w.pid, report: w.report, sum };
}

/** SIGUSR1 -> the hog's next SUM, which must be its first one. */
async function expectSameSum(h: Hog): Promise<void> {
  const n = readLines(h.report).length;
  process.kill(h.pid, 'SIGUSR1');
  const again = await waitForLine(h.report, /^SUM /, { pid: h.pid, fromLine: n });
  expect(again).toBe(h.sum);
  expect(failLines(h.report)).toEqual([]);
}

/** Whether the page at `off` of `file` is a hole (SEEK_DATA from there lands further, or nowhere). */
function isHole(file: string, off: bigint): boolean {
  const fd = open(file, O_RDONLY);
  try {
    return lseek(fd, off, SEEK_DATA) >= off + PAGE;
  } catch (e) {
    if (isSysError(e) && e.code === 'ENXIO') return true;
    throw e;
  } finally {
    close(fd);
  }
}

/** A dump of a fresh hog, its pid free again; the chain's levels go into a temp dir. */
async function dumpHog(mib: number): Promise<{ hog: Hog; dump: string; base: string }> {
  const hog = await startHog(mib);
  const dump = await dumpAndKill(hog.pid);
  return { hog, dump, base: tempDir('criu-ts-chain-') };
}

const newest = (c: Chain) => c.dirs[c.dirs.length - 1]!;

/** Runs of pagemap-PID.img of `dir` by source. */
function flagsOf(dir: string, pid: number) {
  const pm = PageMap.forTask(dir, pid);
  try {
    return {
      parent: pm.runs.filter((r) => r.flags & PE_PARENT).length,
      present: pm.runs.filter((r) => r.flags & PE_PRESENT).length,
      lazy: pm.runs.filter((r) => r.flags & PE_LAZY).length,
    };
  } finally {
    pm.close();
  }
}

describe('restore of incremental chains', () => {
  it('two levels: PE_PARENT pages come from parent/, present ones from the dump itself', async () => {
    const { hog, dump, base } = await dumpHog(32);
    const chain = buildChain(dump, base, 2);
    const child = newest(chain);
    const f = flagsOf(child, hog.pid);
    expect(f.parent).toBeGreaterThan(10);
    expect(f.present).toBeGreaterThan(10);
    expect(f.lazy).toBe(f.present); // level 1 marks its present runs PE_PRESENT|PE_LAZY, as CRIU 4.2
    expect(fs.readlinkSync(path.join(child, 'parent'))).toBe('../level0');
    // Both levels really own pages of the task's 32 MiB.
    const owners = new Set(chain.pages.map((p) => p.owner));
    expect([...owners].sort()).toEqual([0, 1]);
    await restoreDetached(child);
    await expectSameSum(hog);
  });

  it('three levels: pages from parent/parent/ through PE_PARENT runs of parent/', async () => {
    const { hog, dump, base } = await dumpHog(32);
    const chain = buildChain(dump, base, 3);
    const counts = [0, 1, 2].map((k) => chain.pages.filter((p) => p.owner === k).length);
    for (const n of counts) expect(n).toBeGreaterThan(50);
    // The middle level sends some runs on to the oldest.
    expect(flagsOf(chain.dirs[1]!, hog.pid).parent).toBeGreaterThan(10);
    await restoreDetached(newest(chain));
    await expectSameSum(hog);
  });

  it('a chain of 45 levels (more than the 40 symlinks one path lookup may follow)', async () => {
    const { hog, dump, base } = await dumpHog(2);
    // Level k holds the pages n = k mod 45 (and some owned by the oldest levels are 44 links away).
    const chain = buildChain(dump, base, 45, (k, n) => n % 45 === k);
    expect(new Set(chain.pages.map((p) => p.owner)).size).toBe(45);
    await restoreDetached(newest(chain));
    await expectSameSum(hog);
  });

  it('a parent and its child sharing pages copy-on-write (cow), both from a chain', async () => {
    const w = startWorkload('cow');
    const okAfter = (who: string, from: number) =>
      readLines(w.report)
        .slice(from)
        .some((l) => l.startsWith(`${who} `) && l.endsWith(' ok'));
    await waitFor(() => okAfter('CHILD', 0) && okAfter('PARENT', 0), 'cow: both tasks check');
    const child = Number(
      readLines(w.report)
        .find((l) => /^CHILD \d+$/.test(l))!
        .split(' ')[1],
    );
    track(child);
    const dump = await dumpAndKill(w.pid, { kill: [w.pid, child] });
    const chain = buildChain(dump, tempDir('criu-ts-chain-'), 3);
    expect(flagsOf(newest(chain), child).parent).toBeGreaterThan(0);
    const from = readLines(w.report).length;
    await restoreDetached(newest(chain));
    await waitFor(() => okAfter('CHILD', from) && okAfter('PARENT', from), 'cow: both tasks check again');
    expect(readLines(w.report).filter((l) => / bad /.test(l) || l.startsWith('FAIL'))).toEqual([]);
  });

  it('shared memory (pagemap-shmem: anonymous shared, memfd) from a chain of three', async () => {
    const w = startWorkload('shmem');
    const layout = await waitForLine(w.report, /^LAYOUT /, { pid: w.pid });
    const sysv = Number(/\bsysv=(\d+)/.exec(layout)![1]);
    onCleanup(() => {
      try {
        shmRemove(sysv);
      } catch {
        // gone with its last user
      }
    });
    await waitForLine(w.report, /^READY /, { pid: w.pid });
    const sum = async () => {
      const n = readLines(w.report).length;
      process.kill(w.pid, 'SIGUSR1');
      return waitForLine(w.report, /^SUM /, { pid: w.pid, fromLine: n });
    };
    const before = await sum();
    const dump = await dumpAndKill(w.pid, { kill: 'images' });
    const chain = buildChain(dump, tempDir('criu-ts-chain-'), 3);
    const shmemParents = fs
      .readdirSync(newest(chain))
      .filter((n) => n.startsWith('pagemap-shmem-'))
      .map((n) => new PageMap(newest(chain), n))
      .reduce((k, pm) => {
        const c = pm.runs.filter((r) => r.flags & PE_PARENT).length;
        pm.close();
        return k + c;
      }, 0);
    expect(shmemParents).toBeGreaterThan(0);
    expect(chain.pages.some((p) => p.pagemap.startsWith('pagemap-shmem-') && p.owner === 0)).toBe(true);
    await restoreDetached(newest(chain));
    expect(await sum()).toBe(before);
    const n = readLines(w.report).length;
    await waitFor(
      () =>
        readLines(w.report)
          .slice(n)
          .some((l) => l.startsWith('TICK 1 ')),
      'the child ticks',
    );
    expect(failLines(w.report)).toEqual([]);
  });

  it.skipIf(!haveCrit)("crit 3.17 decodes the child's pagemap (PE_PARENT entries)", async () => {
    const { hog, dump, base } = await dumpHog(4);
    const child = newest(buildChain(dump, base, 2));
    const out = execFileSync(CRIT, ['decode', '-i', path.join(child, `pagemap-${hog.pid}.img`), '--pretty'], {
      encoding: 'utf8',
    });
    const img = JSON.parse(out) as { magic: string; entries: Array<Record<string, unknown>> };
    expect(img.magic).toBe('PAGEMAP');
    const flags = img.entries.slice(1).map((e) => String(e.flags));
    expect(flags).toContain('PE_PARENT');
    expect(flags.some((x) => x.includes('PE_PRESENT'))).toBe(true);
  });
});

describe('broken chains are refused before any task exists', () => {
  /** A chain whose child has every page in its parent, broken by `breakIt`; restore must say `want`. */
  async function refused(breakIt: (child: string, parent: string, pid: number) => void, want: RegExp) {
    const { hog, dump, base } = await dumpHog(4);
    const chain = buildChain(dump, base, 2, nothing);
    const [parent, child] = chain.dirs as [string, string];
    breakIt(child, parent, hog.pid);
    const r = await runCli(['restore', '-D', child, '-d']);
    const line = oneLineFailure(r);
    expect(line).toMatch(want);
    expect(procState(hog.pid)).toBe('gone');
    expect(restoreStubs()).toEqual([]);
    return line;
  }

  it('no parent directory', async () => {
    const line = await refused(
      (child) => fs.rmSync(path.join(child, 'parent')),
      /pagemap-\d+\.img: the page at 0x[0-9a-f]+ is in a parent image, but \S+ has no parent directory \(parent\)$/,
    );
    expect(line).toMatch(/level1 has no parent/);
  });

  it('a parent without the pagemap', async () => {
    await refused(
      (_c, parent, pid) => fs.rmSync(path.join(parent, `pagemap-${pid}.img`)),
      /pagemap-(\d+)\.img: the page at 0x[0-9a-f]+ is in a parent image, but \S+\/level1\/parent\/pagemap-\1\.img is missing$/,
    );
  });

  it('a parent without the page', async () => {
    let last = 0n;
    await refused(
      (_c, parent, pid) =>
        rewritePagemap(parent, `pagemap-${pid}.img`, (runs) => {
          // The last page of the last run with data goes (no offset of the others moves).
          const i = runs.map((r) => (r.flags & PE_PRESENT) !== 0).lastIndexOf(true);
          const r = runs[i]!;
          last = r.vaddr + (r.pages - 1n) * PAGE;
          return [
            ...runs.slice(0, i),
            ...(r.pages > 1n ? [{ ...r, pages: r.pages - 1n }] : []),
            ...runs.slice(i + 1),
          ];
        }),
      /pagemap-\d+\.img: the page at 0x[0-9a-f]+ is in a parent image, but \S+\/parent\/pagemap-\d+\.img does not have it$/,
    ).then((line) => expect(line).toContain(`0x${last.toString(16)} `));
  });

  it('a parent link to the directory itself', async () => {
    await refused((child) => {
      fs.rmSync(path.join(child, 'parent'));
      fs.symlinkSync('.', path.join(child, 'parent'));
    }, /pagemap-\d+\.img: the page at 0x[0-9a-f]+ is in a parent image, but the chain of parent images loops: \S+\/level1\/parent is \S+\/level1 again$/);
  });

  it('two directories that are each other parent', async () => {
    await refused((child, parent, pid) => {
      fs.symlinkSync('../level1', path.join(parent, 'parent'));
      fs.copyFileSync(path.join(child, `pagemap-${pid}.img`), path.join(parent, `pagemap-${pid}.img`));
    }, /the chain of parent images loops: \S+\/level1\/parent\/parent is \S+\/level1 again$/);
  });

  it("a parent's pages file cut short", async () => {
    await refused((_c, parent, pid) => {
      const pm = PageMap.forTask(parent, pid);
      fs.truncateSync(pm.pagesFile, fs.statSync(pm.pagesFile).size / 2);
      pm.close();
    }, /\/level0\/pages-\d+\.img holds \d+ bytes, pagemap-\d+\.img needs \d+: truncated image/);
  });
});

describe('deduplication', () => {
  it('restore --auto-dedup punches out of every level the pages it read, and only those', async () => {
    const { hog, dump, base } = await dumpHog(16);
    const chain = buildChain(dump, base, 3);
    await restoreDetached(newest(chain), ['--auto-dedup']);
    await expectSameSum(hog);
    let punched = 0;
    for (const p of chain.pages)
      for (const c of p.copies) {
        // The vDSO's pages too, as CRIU (they are never needed: the kernel's own vDSO is used).
        const read = c.level === p.owner;
        expect({ addr: p.addr, level: c.level, hole: isHole(c.file, c.off) }).toEqual({
          addr: p.addr,
          level: c.level,
          hole: read,
        });
        if (read) punched++;
      }
    expect(punched).toBeGreaterThan(4000);
  });

  it('criu-ts dedup -D CHILD punches the pages the child holds out of parent/ and parent/parent/', async () => {
    const { hog, dump, base } = await dumpHog(16);
    const chain = buildChain(dump, base, 3);
    const r = await runCli(['dedup', '-D', newest(chain)]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    for (const p of chain.pages)
      for (const c of p.copies) {
        // Superseded by the child: gone below it. The child's own copies and what it does not hold stay.
        const gone = p.owner === 2 && c.level < 2;
        expect({ addr: p.addr, level: c.level, hole: isHole(c.file, c.off) }).toEqual({
          addr: p.addr,
          level: c.level,
          hole: gone,
        });
      }
    // The chain still restores, every page right.
    await restoreDetached(newest(chain));
    await expectSameSum(hog);
  });

  it('criu-ts dedup of a directory without a parent fails with one line', async () => {
    const { dump } = await dumpHog(1);
    const line = oneLineFailure(await runCli(['dedup', '-D', dump]));
    expect(line).toMatch(/^criu-ts: cannot enter the previous dump \S+\/parent: ENOENT$/);
  });

  it('dump --auto-dedup punches what it wrote out of the parent dump; the new dump restores', async () => {
    const hog = await startHog(16);
    const root = tempDir('criu-ts-chain-');
    const first = path.join(root, 'first');
    const second = path.join(root, 'second');
    let r = await runCli(['dump', '-t', String(hog.pid), '-D', first, '-R']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    fs.mkdirSync(second);
    fs.symlinkSync('../first', path.join(second, 'parent'));
    r = await runCli(['dump', '-t', String(hog.pid), '-D', second, '--auto-dedup']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    killAndReap(hog.pid);
    expect(procState(hog.pid)).toBe('gone');
    // Every page of the first dump that the second holds is a hole now; the others are data.
    const a = PageMap.forTask(first, hog.pid);
    const b = PageMap.forTask(second, hog.pid);
    let holes = 0;
    for (const run of a.runs) {
      if (!(run.flags & PE_PRESENT)) continue;
      for (let i = 0n; i < run.pages; i++) {
        const addr = run.vaddr + i * PAGE;
        const held = (b.findRun(addr)?.flags ?? 0) & PE_PRESENT;
        const hole = isHole(a.pagesFile, run.dataOffset + i * PAGE);
        expect({ addr, hole }).toEqual({ addr, hole: held !== 0 });
        if (hole) holes++;
      }
    }
    a.close();
    b.close();
    expect(holes).toBeGreaterThan(4000);
    expect(fs.statSync(path.join(first, `pagemap-${hog.pid}.img`)).size).toBeGreaterThan(0);
    await restoreDetached(second);
    await expectSameSum(hog);
    expect(ImageDir.open(second).pstree()[0]!.pid).toBe(hog.pid);
  });
});
