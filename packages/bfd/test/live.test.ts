// Every parser against the reference parse of the same bytes, on every process of the machine,
// and end to end (ProcDir read + parse vs readFileSync + reference) on processes we start.

import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  BfdBuffer,
  isGone,
  listPids,
  ProcDir,
  parseChildren,
  parseFdInfo,
  parseMaps,
  parseMountInfo,
  parseSmaps,
  parseSmapsRollup,
  parseStat,
  parseStatus,
} from '../src/index.js';
import { firstLine, killStarted, start, tryRead, waitFor, waitSleeping } from './helpers.js';
import {
  refChildren,
  refFdInfo,
  refMaps,
  refMountInfo,
  refSmaps,
  refSmapsRollup,
  refStat,
  refStatus,
} from './reference.js';

afterEach(killStarted);

type Check = [name: string, parse: (b: Buffer, len: number) => unknown, ref: (t: string) => unknown];
const FILES: Check[] = [
  ['stat', parseStat, refStat],
  ['status', parseStatus, refStatus],
  ['maps', parseMaps, refMaps],
  ['smaps', parseSmaps, refSmaps],
  ['smaps_rollup', parseSmapsRollup, refSmapsRollup],
  ['mountinfo', parseMountInfo, refMountInfo],
];

/** Read through ProcDir, copy the bytes out, skip (undefined) when the process vanished. */
function grab(dir: ProcDir, name: string): Buffer | undefined {
  try {
    return Buffer.from(dir.readBytes(name));
  } catch (e) {
    // EINVAL: mountinfo of a task that is exiting (its mount namespace is already gone).
    const code = (e as { code?: string }).code;
    if (isGone(e) || code === 'EACCES' || code === 'EINVAL') return undefined;
    throw e;
  }
}

describe('every process on the machine', () => {
  const pids = listPids();

  it('lists the same pids as readdirSync', () => {
    const ref = readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .sort((a, b) => a - b);
    // processes come and go between the two listings: the bulk must agree
    const common = pids.filter((p) => ref.includes(p));
    expect(common.length).toBeGreaterThan(Math.min(pids.length, ref.length) * 0.9);
  });

  for (const [name, parse, ref] of FILES) {
    it(`${name}: parse equals the reference on every pid`, () => {
      // How many pids there are depends on where the tests run (a CI pid namespace may hold a
      // dozen): what must hold is that this process itself was compared, plus every other we could read.
      const compared: number[] = [];
      for (const pid of pids) {
        let dir: ProcDir;
        try {
          dir = ProcDir.open(pid);
        } catch (e) {
          if (isGone(e)) continue;
          throw e;
        }
        try {
          const bytes = grab(dir, name);
          if (bytes === undefined) continue;
          if (name === 'smaps_rollup' && bytes.length === 0) continue; // kernel threads
          expect(parse(bytes, bytes.length), `/proc/${pid}/${name}`).toEqual(ref(bytes.toString('utf8')));
          compared.push(pid);
        } finally {
          dir.close();
        }
      }
      expect(compared).toContain(process.pid);
    });
  }

  it('task/TID/stat, status and children for every thread', () => {
    let threads = 0;
    for (const pid of pids) {
      let dir: ProcDir;
      try {
        dir = ProcDir.open(pid);
      } catch (e) {
        if (isGone(e)) continue;
        throw e;
      }
      try {
        let tids: number[];
        try {
          tids = dir.tasks();
        } catch (e) {
          if (isGone(e)) continue;
          throw e;
        }
        const ref = readdirSync(`/proc/${pid}/task`, { withFileTypes: false }) as string[];
        for (const tid of tids) {
          if (!ref.includes(String(tid))) continue; // a thread born between the listings
          const t = dir.task(tid);
          const st = grab(t, 'stat');
          const ss = grab(t, 'status');
          const ch = grab(t, 'children');
          if (st === undefined || ss === undefined || ch === undefined) continue;
          expect(parseStat(st, st.length)).toEqual(refStat(st.toString()));
          expect(parseStatus(ss, ss.length)).toEqual(refStatus(ss.toString()));
          expect(parseChildren(ch, ch.length)).toEqual(refChildren(ch.toString()));
          threads++;
        }
      } catch (e) {
        if (!isGone(e)) throw e;
      } finally {
        dir.close();
      }
    }
    expect(threads).toBeGreaterThan(10);
  });

  it('fdinfo of every fd of every process', () => {
    let fds = 0;
    for (const pid of pids) {
      let dir: ProcDir;
      try {
        dir = ProcDir.open(pid);
      } catch (e) {
        if (isGone(e)) continue;
        throw e;
      }
      try {
        let list: number[];
        try {
          list = dir.fds();
        } catch (e) {
          if (isGone(e)) continue;
          throw e;
        }
        for (const fd of list) {
          const b = grab(dir, `fdinfo/${fd}`);
          if (b === undefined) continue;
          expect(parseFdInfo(b, b.length), `/proc/${pid}/fdinfo/${fd}`).toEqual(refFdInfo(b.toString()));
          fds++;
        }
      } finally {
        dir.close();
      }
    }
    expect(fds).toBeGreaterThan(20);
  });
});

/** `ours()` and `reference()`, read one after the other, agree within 20 tries (else: the diff). */
function expectSettled(ours: () => unknown, reference: () => unknown): void {
  for (let i = 0; i < 20; i++) if (isDeepStrictEqual(ours(), reference())) return;
  expect(ours()).toEqual(reference());
}

describe('processes we start', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'bfd-test-'));
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  it('sleep 1000: ProcDir parses equal readFileSync + reference, end to end', async () => {
    const child = start('sleep', ['1000']);
    await waitSleeping(child.pid, 'sleep');
    const dir = ProcDir.open(child.pid);
    try {
      const read = (n: string) => readFileSync(`/proc/${child.pid}/${n}`, 'utf8');
      expect(dir.stat()).toEqual(refStat(read('stat')));
      expect(dir.stat().comm).toBe('sleep');
      expect(dir.stat().state).toBe('S');
      expect(dir.stat().ppid).toBe(process.pid);
      expect(dir.status()).toEqual(refStatus(read('status')));
      expect(dir.maps()).toEqual(refMaps(read('maps')));
      // Pss moves whenever another process maps or drops the same pages (tests run side by side):
      // the two reads are compared once they agree, or as they are after a few tries.
      expectSettled(
        () => dir.smaps(),
        () => refSmaps(read('smaps')),
      );
      expectSettled(
        () => dir.smapsRollup(),
        () => refSmapsRollup(read('smaps_rollup')),
      );
      expect(dir.mountinfo()).toEqual(refMountInfo(read('mountinfo')));
      expect(dir.tasks()).toEqual([child.pid]);
      expect(dir.children()).toEqual([]);
      expect(dir.fds()).toEqual(
        readdirSync(`/proc/${child.pid}/fd`)
          .map(Number)
          .sort((a, b) => a - b),
      );
      expect(dir.mapFiles().sort()).toEqual(readdirSync(`/proc/${child.pid}/map_files`).sort());
      for (const fd of dir.fds()) expect(dir.fdinfo(fd)).toEqual(refFdInfo(read(`fdinfo/${fd}`)));
      expect(dir.readlink('exe')).toBe('/usr/bin/sleep');
      const maps = dir.maps();
      for (const p of ['[heap]', '[stack]', '[vdso]', '[vvar]']) {
        if (p === '[heap]' && !maps.some((m) => m.path === p)) continue; // sleep may not have grown a heap
        expect(
          maps.some((m) => m.path === p),
          p,
        ).toBe(true);
      }
      const st = dir.stat();
      const stack = maps.find((m) => m.path === '[stack]')!;
      expect(st.startStack >= stack.start && st.startStack < stack.end).toBe(true);
      expect(st.argStart < st.argEnd && st.envStart < st.envEnd).toBe(true);
      const text = maps.find((m) => m.path === '/usr/bin/sleep' && m.prot & 4)!;
      expect(st.startCode >= text.start && st.endCode <= text.end).toBe(true);
    } finally {
      dir.close();
    }
  });

  it('comm with spaces and parens (exec through a symlink) and with a newline (prctl)', async () => {
    const weird = 'a) b (c) d';
    const link = join(tmp, weird);
    symlinkSync('/usr/bin/sleep', link);
    const a = start(link, ['1000']);
    await waitSleeping(a.pid, weird);
    const b = start('python3', [
      '-c',
      'import ctypes,sys,signal; ctypes.CDLL(None).prctl(15, b"x\\ny) (z\\\\w", 0, 0, 0); print("ok", flush=True); signal.pause()',
    ]);
    expect(await firstLine(b)).toBe('ok');
    await waitSleeping(b.pid);
    for (const [pid, comm] of [
      [a.pid, weird],
      [b.pid, 'x\ny) (z\\w'],
    ] as const) {
      const dir = ProcDir.open(pid);
      try {
        const st = dir.stat();
        expect(st.comm).toBe(comm);
        expect(st.pid).toBe(pid);
        expect(st.state).toBe('S');
        expect(st).toEqual(refStat(readFileSync(`/proc/${pid}/stat`, 'utf8')));
        const ss = dir.status();
        expect(ss.name).toBe(comm);
        expect(ss).toEqual(refStatus(readFileSync(`/proc/${pid}/status`, 'utf8')));
      } finally {
        dir.close();
      }
    }
  });

  it('threads and children', async () => {
    const py = start('python3', [
      '-c',
      [
        'import threading, subprocess, signal',
        'ev = threading.Event()',
        'ts = [threading.Thread(target=ev.wait, daemon=True) for _ in range(3)]',
        '[t.start() for t in ts]',
        'ps = [subprocess.Popen(["sleep", "1000"]) for _ in range(2)]',
        'print(" ".join(str(p.pid) for p in ps), flush=True)',
        'signal.pause()',
      ].join('\n'),
    ]);
    const kids = (await firstLine(py)).split(' ').map(Number);
    const dir = ProcDir.open(py.pid);
    try {
      const tids = await waitFor(() => {
        const t = dir.tasks();
        return t.length === 4 ? t : undefined;
      }, 'four threads');
      expect(tids).toEqual(
        readdirSync(`/proc/${py.pid}/task`)
          .map(Number)
          .sort((x, y) => x - y),
      );
      expect(tids[0]).toBe(py.pid);
      expect(dir.children().sort()).toEqual([...kids].sort());
      expect(dir.allChildren().sort()).toEqual([...kids].sort());
      expect(dir.children()).toEqual(
        refChildren(readFileSync(`/proc/${py.pid}/task/${py.pid}/children`, 'utf8')),
      );
      for (const tid of tids) {
        const t = dir.task(tid);
        expect(t.stat().pid).toBe(tid);
        expect(t.status().tgid).toBe(py.pid);
        expect(t.status().pid).toBe(tid);
        if (tid !== py.pid) expect(t.children()).toEqual([]);
      }
      expect(dir.status().threads).toBe(4);
      expect(dir.stat().numThreads).toBe(4);
      for (const k of kids) {
        const kd = ProcDir.open(k);
        expect(kd.stat().ppid).toBe(py.pid);
        kd.close();
      }
    } finally {
      dir.close();
      for (const k of kids) {
        try {
          process.kill(k, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });

  it('a vanished process: open fails with ENOENT, a held dir fails with ENOENT/ESRCH', async () => {
    const child = start('sleep', ['1000']);
    await waitSleeping(child.pid, 'sleep');
    const dir = ProcDir.open(child.pid);
    expect(dir.stat().pid).toBe(child.pid);
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(child.pid, 'SIGKILL');
    await exited;
    let err: unknown;
    try {
      dir.stat();
    } catch (e) {
      err = e;
    }
    expect(isGone(err)).toBe(true);
    dir.close();
    expect(dir.closed).toBe(true);
    expect(() => dir.stat()).toThrow(/closed/);
    let err2: unknown;
    try {
      ProcDir.open(child.pid);
    } catch (e) {
      err2 = e;
    }
    expect((err2 as { code?: string }).code).toBe('ENOENT');
  });

  it('ProcDir.self() is cached and reads this process', () => {
    const s = ProcDir.self();
    expect(ProcDir.self()).toBe(s);
    expect(ProcDir.self().fd).toBe(s.fd);
    expect(s.stat().pid).toBe(process.pid);
    expect(s.status().pid).toBe(process.pid);
    expect(s.tasks()).toContain(process.pid);
    expect(s.fds()).toContain(s.fd);
    const ourFds = readdirSync('/proc/self/fd').map(Number);
    expect(ourFds).toContain(s.fd);
  });

  it('a small BfdBuffer grows to the biggest file and keeps its size', async () => {
    const py = start('python3', [
      '-c',
      [
        'import ctypes, signal',
        'libc = ctypes.CDLL(None)',
        'libc.mmap.restype = ctypes.c_void_p',
        'libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]',
        'libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]',
        'n = 2000',
        'a = libc.mmap(None, n * 4096, 3, 0x22, -1, 0)',
        'ctypes.memset(a, 1, n * 4096)',
        '[libc.mprotect(a + i * 4096, 4096, 1) for i in range(0, n, 2)]',
        'print(hex(a), flush=True)',
        'signal.pause()',
      ].join('\n'),
    ]);
    const base = BigInt(await firstLine(py));
    const buffer = new BfdBuffer(256);
    const dir = ProcDir.open(py.pid, { buffer });
    try {
      // Compared once a read of ours and one of the reference agree: Pss moves under parallel tests.
      let smaps = dir.smaps();
      for (let i = 0; ; i++) {
        const len = buffer.len;
        const ref = readFileSync(`/proc/${py.pid}/smaps`);
        const agree = len === ref.length && isDeepStrictEqual(smaps, refSmaps(ref.toString()));
        if (agree || i === 19) {
          expect(len).toBe(ref.length);
          expect(smaps).toEqual(refSmaps(ref.toString()));
          break;
        }
        smaps = dir.smaps();
      }
      const size = buffer.buf.length;
      expect(size).toBeGreaterThan(2000 * 900);
      const ours = smaps.filter((e) => e.start >= base && e.end <= base + 2000n * 4096n);
      expect(ours).toHaveLength(2000);
      expect(ours.every((e) => e.end - e.start === 4096n && e.rss === 4 && e.anonymous === 4)).toBe(true);
      expect(ours.map((e) => e.prot)).toEqual(Array.from({ length: 2000 }, (_, i) => (i % 2 === 0 ? 1 : 3)));
      dir.stat();
      expect(buffer.buf.length).toBe(size); // kept, not shrunk
      expect(dir.maps().filter((e) => e.start >= base && e.end <= base + 2000n * 4096n)).toHaveLength(2000);
    } finally {
      dir.close();
    }
  });

  it('maps: deleted files and paths with spaces on a live process', async () => {
    const dirPath = join(tmp, 'dir with spaces');
    const py = start('python3', [
      '-c',
      [
        'import mmap, os, signal, sys',
        'd = sys.argv[1]',
        'os.makedirs(d, exist_ok=True)',
        'keep = []',
        'for name, unlink in (("kept file", False), ("gone file", True)):',
        '    p = os.path.join(d, name)',
        '    f = open(p, "wb+"); f.write(b"x" * 8192); f.flush()',
        '    keep.append((f, mmap.mmap(f.fileno(), 8192)))',
        '    if unlink: os.unlink(p)',
        'print("ok", flush=True)',
        'signal.pause()',
      ].join('\n'),
      dirPath,
    ]);
    expect(await firstLine(py)).toBe('ok');
    const dir = ProcDir.open(py.pid);
    try {
      const maps = dir.maps();
      expect(maps).toEqual(refMaps(readFileSync(`/proc/${py.pid}/maps`, 'utf8')));
      const kept = maps.find((m) => m.path === join(dirPath, 'kept file'));
      const gone = maps.find((m) => m.path === join(dirPath, 'gone file'));
      expect(kept?.deleted).toBe(false);
      expect(gone?.deleted).toBe(true);
      expect(gone?.shared).toBe(true);
      const name = `${gone!.start.toString(16)}-${gone!.end.toString(16)}`;
      expect(dir.mapFiles()).toContain(name);
      expect(dir.readlink(`map_files/${name}`)).toBe(`${join(dirPath, 'gone file')} (deleted)`);
      expect(tryRead(`/proc/${py.pid}/map_files/${name}`)?.length).toBe(8192);
    } finally {
      dir.close();
    }
  });
});
