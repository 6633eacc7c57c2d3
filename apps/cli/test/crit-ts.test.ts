// crit-ts as a command (bin/crit-ts.cjs, i.e. the built dist/): decode, encode, show, info and
// x on an image directory written with ImageDir, compared with Debian's crit 3.17 where it is
// installed; and its errors: exit code 1, one line naming the file, a stack trace only with -v.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type FileEntry,
  ImageDir,
  imageToCrit,
  PAGE_SIZE,
  type PyJson,
  pyDumps,
  pyParse,
  readImage,
  type VmaEntry,
} from '@criu-ts/images';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, '../bin/crit-ts.cjs');
const BATCH = path.resolve(here, '../../../tools/crit-compat/batch.py');
const CRIT = '/usr/bin/crit';
const PYTHON = '/usr/bin/python3';
const haveCrit = existsSync(CRIT) && existsSync(PYTHON);
const EXPLORERS = ['ps', 'fds', 'mems', 'rss'] as const;

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function run(cmd: string, args: string[], stdin?: Buffer, env?: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const opts = { encoding: 'buffer' as const, maxBuffer: 64 << 20, ...(env ? { env } : {}) };
    const child = execFile(cmd, args, opts, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr: stderr.toString() });
    });
    child.stdin!.end(stdin);
  });
}
const critTs = (args: string[], stdin?: Buffer) => run(process.execPath, [BIN, ...args], stdin);

/** Runs the tasks two at a time (node start-up dominates; this machine has two cores). */
async function pool<T>(tasks: Array<() => Promise<T>>, width = 2): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return out;
}

// ---- the image directory ---------------------------------------------------------------------------

const fown = { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 };
const sockOpts = {
  so_sndbuf: 212992,
  so_rcvbuf: 212992,
  so_snd_tmo_sec: 0n,
  so_snd_tmo_usec: 0n,
  so_rcv_tmo_sec: 0n,
  so_rcv_tmo_usec: 0n,
};
const reg = (id: number, name: string) => ({ id, flags: 0o100000, pos: 0n, fown, name });
const FILES: FileEntry[] = [
  { type: 1, id: 1, reg: reg(1, '/usr/bin/demo') },
  { type: 1, id: 2, reg: reg(2, '/var/log/demo.log') },
  { type: 2, id: 3, pipe: { id: 3, pipe_id: 81234, flags: 0, fown } },
  {
    type: 5,
    id: 4,
    usk: {
      id: 4,
      ino: 5501,
      type: 1,
      state: 10,
      flags: 0,
      uflags: 0,
      backlog: 5,
      peer: 0,
      fown,
      opts: sockOpts,
      name: Buffer.from('\0demo-sock'),
    },
  },
  {
    type: 5,
    id: 5,
    usk: {
      id: 5,
      ino: 5502,
      type: 1,
      state: 1,
      flags: 0,
      uflags: 0,
      backlog: 0,
      peer: 5501,
      fown,
      opts: sockOpts,
      name: Buffer.alloc(0),
    },
  },
  { type: 1, id: 6, reg: reg(6, '/home/demo') },
  { type: 1, id: 7, reg: reg(7, '/') },
  { type: 1, id: 8, reg: reg(8, '/usr/lib/libdemo.so') },
  { type: 6, id: 9, efd: { id: 9, flags: 2, fown, counter: 0n } },
] as FileEntry[];

const P = PAGE_SIZE;
const vma = (start: number, pages: number, status: number, more: Partial<VmaEntry> = {}): VmaEntry =>
  ({
    start: BigInt(start),
    end: BigInt(start + pages * P),
    pgoff: 0n,
    shmid: 0n,
    prot: 3,
    flags: 0x22,
    status,
    fd: -1n,
    ...more,
  }) as VmaEntry;
const REGULAR = 1;
const VMAS: VmaEntry[] = [
  vma(0x400000, 2, REGULAR | (1 << 6), { shmid: 1n, prot: 5, flags: 0x2 }),
  vma(0x402000, 1, REGULAR | (1 << 6), { shmid: 1n, pgoff: 0x2000n, prot: 1, flags: 0x2 }),
  vma(0x600000, 4, REGULAR | (1 << 9)), // anon private (heap-ish)
  vma(0x7f0000000000, 2, REGULAR | (1 << 7), { shmid: 8n, prot: 1, flags: 0x1 }), // shared file
  vma(0x7f0000100000, 1, REGULAR | (1 << 8), { shmid: 77n, flags: 0x21 }), // shmem
  vma(0x7f0000200000, 1, REGULAR | (1 << 10), { shmid: 78n, flags: 0x1 }), // sysv ipc
  vma(0x7f0000300000, 1, REGULAR | (1 << 11), { shmid: 79n, flags: 0x1 }), // packet socket
  vma(0x7f0000400000, 1, REGULAR | (1 << 12)), // vvar
  vma(0x7f0000500000, 2, REGULAR | (1 << 3), { prot: 5 }), // vdso
  vma(0x7f0000600000, 1, 1 << 9, { flags: 0x122 }), // growsdown, not regular
  vma(0x7ffd00000000, 8, REGULAR | (1 << 1) | (1 << 9), { flags: 0x122 }), // stack
  vma(0xffffffffff600000, 1, REGULAR | (1 << 2), { prot: 4 }), // vsyscall (never has pages)
];
// Runs of pages: [vaddr, pages]. They may cover several VMAs, or several runs one VMA.
const RUNS: Array<[number, number]> = [
  [0x400000, 3],
  [0x600000, 1],
  [0x602000, 2],
  [0x7f0000000000, 1],
  [0x7f0000500000, 2],
  [0x7ffd00006000, 2],
];

const TASKS = [
  { pid: 100, ppid: 0, pgid: 100, sid: 100, threads: [100], comm: 'demo-init', filesId: 1 },
  { pid: 101, ppid: 100, pgid: 100, sid: 100, threads: [101, 105], comm: 'worker', filesId: 2 },
  { pid: 102, ppid: 101, pgid: 102, sid: 100, threads: [102], comm: 'grand\u00e9child', filesId: 2 },
  { pid: 103, ppid: 100, pgid: 100, sid: 100, threads: [103], comm: 'w2', filesId: 3 },
];
const FDS: Record<number, Array<[number, number, number]>> = {
  // [fd, type, file id]
  1: [
    [0, 1, 1],
    [1, 2, 3],
    [2, 5, 4],
    [3, 5, 5],
    [4, 1, 2],
    [10, 1, 1],
  ],
  2: [
    [0, 1, 2],
    [7, 6, 9],
  ],
  3: [],
};

/** Writes the dump; with `old`, files.img is left out and reg-files/pipes/unixsk hold the files. */
function writeDir(dirPath: string, old = false): void {
  const dir = ImageDir.create(dirPath);
  dir.write('inventory', undefined, [{ img_version: 2, fdinfo_per_id: true, ns_per_id: true }]);
  dir.write(
    'pstree',
    undefined,
    TASKS.map(({ pid, ppid, pgid, sid, threads }) => ({ pid, ppid, pgid, sid, threads })),
  );
  if (old) {
    dir.write(
      'reg-files',
      undefined,
      FILES.filter((f) => f.reg).map((f) => f.reg!),
    );
    dir.write(
      'pipes',
      undefined,
      FILES.filter((f) => f.pipe).map((f) => f.pipe!),
    );
    dir.write(
      'unixsk',
      undefined,
      FILES.filter((f) => f.usk).map((f) => f.usk!),
    );
  } else {
    dir.write('files', undefined, FILES);
  }
  for (const [filesId, fds] of Object.entries(FDS)) {
    dir.write(
      'fdinfo-%u',
      filesId,
      fds.map(([fd, type, id]) => ({ id, flags: 0, type, fd })),
    );
  }
  for (const [i, t] of TASKS.entries()) {
    const tc = { task_state: 1, exit_code: 0, personality: 0, flags: 0x400040, blk_sigset: 0n, comm: t.comm };
    dir.write('core-%u', t.pid, [{ mtype: 1, tc }]);
    dir.write('ids-%u', t.pid, [{ vm_id: t.pid, files_id: t.filesId, fs_id: t.pid, sighand_id: t.pid }]);
    dir.write('fs-%u', t.pid, [{ cwd_id: i === 3 ? 7 : 6, root_id: 7, umask: 0o22 }]);
    const mm = {
      mm_start_code: 0x400000n,
      mm_end_code: 0x403000n,
      mm_start_data: 0x600000n,
      mm_end_data: 0x601000n,
      mm_start_stack: 0x7ffd00007000n,
      mm_start_brk: 0x602000n,
      mm_brk: 0x604000n,
      mm_arg_start: 0x7ffd00007100n,
      mm_arg_end: 0x7ffd00007200n,
      mm_env_start: 0x7ffd00007200n,
      mm_env_end: 0x7ffd00007300n,
      exe_file_id: 1,
      vmas: i === 3 ? VMAS.slice(-3) : VMAS,
    };
    dir.write('mm-%u', t.pid, [mm]);
    const pm = dir.pageMapWriter(t.pid, i + 1);
    try {
      for (const [vaddr, pages] of i === 3 ? RUNS.slice(-1) : RUNS) {
        pm.addPresent(BigInt(vaddr), pages, Buffer.alloc(pages * P, i + 1));
      }
    } finally {
      pm.close();
    }
  }
}

// ---- the tests ------------------------------------------------------------------------------------

describe('crit-ts', () => {
  let tmp: string;
  let dump: string;
  let oldDump: string;
  const ts = new Map<string, Run>();
  const crit = new Map<string, { ok: boolean; error?: string; out: string }>();
  const f = (name: string) => path.join(tmp, name);
  const img = (name: string) => path.join(dump, name);

  // Images compared one by one: the crit commands of each, and what crit-ts does with them.
  const IMAGES = ['pstree.img', 'core-101.img', 'files.img', 'fdinfo-1.img', 'mm-100.img', 'ids-102.img'];

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'crit-ts-test-'));
    dump = f('dump');
    oldDump = f('old-dump');
    writeDir(dump);
    writeDir(oldDump, true);
    writeFileSync(f('junk.img'), Buffer.from('this is not a CRIU image'));
    writeFileSync(f('trunc.img'), readFileSync(img('core-100.img')));
    truncateSync(f('trunc.img'), readFileSync(img('core-100.img')).length - 3);

    if (haveCrit) {
      const jobs: Array<[string, object]> = [];
      for (const [d, tag] of [
        [dump, 'new'],
        [oldDump, 'old'],
      ] as const) {
        for (const what of EXPLORERS)
          jobs.push([`x ${tag} ${what}`, { op: 'x', dir: d, what, out: f(`crit-x-${tag}-${what}`) }]);
      }
      for (const name of IMAGES) {
        jobs.push([
          `decode ${name}`,
          { op: 'decode', in: img(name), out: f(`crit-${name}.json`), stdout: true },
        ]);
        jobs.push([`show ${name}`, { op: 'show', in: img(name), out: f(`crit-${name}.show`) }]);
        jobs.push([
          `encode ${name}`,
          { op: 'encode', in: f(`crit-${name}.json`), out: f(`crit-${name}.enc`) },
        ]);
      }
      const results = await new Promise<Array<{ ok: boolean; error?: string }>>((resolve, reject) => {
        const child = execFile(PYTHON, [BATCH], { maxBuffer: 64 << 20 }, (err, stdout) =>
          err ? reject(err) : resolve(JSON.parse(stdout)),
        );
        child.stdin!.end(JSON.stringify(jobs.map(([, j]) => j)));
      });
      for (const [i, [name, job]] of jobs.entries()) {
        const out = (job as { out: string }).out;
        crit.set(name, { ...results[i]!, out: existsSync(out) ? readFileSync(out, 'utf8') : '' });
      }
    }

    const tasks: Array<() => Promise<void>> = [];
    const add = (name: string, args: string[], stdin?: () => Buffer) =>
      tasks.push(async () => {
        ts.set(name, await critTs(args, stdin?.()));
      });
    for (const what of EXPLORERS) {
      add(`x new ${what}`, ['x', dump, what]);
      add(`x old ${what}`, ['x', oldDump, what]);
    }
    for (const name of IMAGES) {
      add(`decode ${name}`, ['decode', '-i', img(name)]);
      add(`show ${name}`, ['show', img(name)]);
      add(`info ${name}`, ['info', img(name)]);
    }
    add('decode pagemap --pretty (stdin)', ['decode', '--pretty'], () =>
      readFileSync(img('pagemap-101.img')),
    );
    add('decode pagemap -o', ['decode', '-i', img('pagemap-101.img'), '-o', f('pagemap.json')]);
    add('info pagemap', ['info', img('pagemap-101.img')]);
    add('show --nopl inventory', ['show', '--nopl', img('inventory.img')]);
    // Errors.
    for (const [what, file] of [
      ['missing', f('no-such.img')],
      ['truncated', f('trunc.img')],
      ['junk', f('junk.img')],
    ] as const) {
      add(`error decode ${what}`, ['decode', '-i', file]);
      add(`error show ${what}`, ['show', file]);
      add(`error info ${what}`, ['info', file]);
      add(`error -v decode ${what}`, ['-v', 'decode', '-i', file]);
    }
    add('error decode stdin truncated', ['decode'], () => readFileSync(f('trunc.img')));
    add('error encode missing', ['encode', '-i', f('no-such.json'), '-o', f('out.img')]);
    add('error encode bad json', ['encode', '-o', f('out.img')], () => Buffer.from('{"magic": '));
    add('error x missing', ['x', f('no-such-dir'), 'ps']);
    add('error -v x missing', ['-v', 'x', f('no-such-dir'), 'ps']);
    await pool(tasks);

    // Encodes of what crit-ts decoded (needs the decodes above).
    await pool([
      ...IMAGES.map((name) => async () => {
        ts.set(`encode ${name}`, await critTs(['encode'], ts.get(`decode ${name}`)!.stdout));
      }),
      async () => {
        ts.set('encode pagemap', await critTs(['encode', '-i', f('pagemap.json'), '-o', f('pagemap.img')]));
      },
    ]);
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const ok = (name: string) => {
    const r = ts.get(name)!;
    expect({ code: r.code, stderr: r.stderr }, `crit-ts ${name}`).toEqual({ code: 0, stderr: '' });
    return r.stdout;
  };

  describe('on an image directory written with ImageDir', () => {
    it.each(IMAGES)('decode %s prints our JSON, and encode gives the image back', (name) => {
      expect(ok(`decode ${name}`).toString()).toBe(`${pyDumps(imageToCrit(img(name)))}\n`);
      expect(ok(`encode ${name}`).equals(readFileSync(img(name)))).toBe(true);
    });

    it.each(IMAGES)('show and info of %s', (name) => {
      expect(ok(`show ${name}`).toString()).toBe(`${pyDumps(imageToCrit(img(name), { pretty: true }), 4)}\n`);
      const { magic, entries } = readImage(img(name));
      expect(ok(`info ${name}`).toString()).toBe(
        `{\n    "magic": "${magic}",\n    "count": ${entries.length}\n}\n`,
      );
    });

    it('pagemap: decode from stdin, -o, encode, info (one pagemap_head less)', () => {
      const pretty = ok('decode pagemap --pretty (stdin)').toString();
      const json = pyParse(pretty) as { magic: string; entries: Array<Record<string, PyJson>> };
      expect(json.magic).toBe('PAGEMAP');
      expect(json.entries.slice(1).map((e) => [e.vaddr, e.compat_nr_pages, e.flags, e.nr_pages])).toEqual(
        RUNS.map(([v, n]) => [`0x${v.toString(16)}`, n, 'PE_PRESENT', n]),
      );
      expect(ok('decode pagemap -o').length).toBe(0);
      expect(readFileSync(f('pagemap.json'), 'utf8')).toBe(pyDumps(imageToCrit(img('pagemap-101.img'))));
      ok('encode pagemap');
      expect(readFileSync(f('pagemap.img')).equals(readFileSync(img('pagemap-101.img')))).toBe(true);
      expect(ok('info pagemap').toString()).toBe(
        `{\n    "magic": "PAGEMAP",\n    "count": ${RUNS.length}\n}\n`,
      );
    });

    it('show --nopl of an image without blobs is show', () => {
      expect(ok('show --nopl inventory').toString()).toBe(
        `${pyDumps(imageToCrit(img('inventory.img'), { pretty: true }), 4)}\n`,
      );
    });

    it('x ps prints the process tree', () => {
      expect(ok('x new ps').toString()).toBe(
        [
          '    PID   PGID    SID   COMM',
          '    100    100    100   demo-init',
          '    101    100    100       worker',
          '    102    102    100           grand\u00e9child',
          '    103    100    100       w2',
          '',
        ].join('\n'),
      );
    });
  });

  describe.skipIf(!haveCrit)('the same as crit 3.17', () => {
    it.each(EXPLORERS)('x DIR %s', (what) => {
      for (const tag of ['new', 'old']) {
        const c = crit.get(`x ${tag} ${what}`)!;
        expect(c.ok, `crit x ${tag} ${what}: ${c.error}`).toBe(true);
        expect(ok(`x ${tag} ${what}`).toString(), `${tag} layout`).toBe(c.out);
      }
    });

    it.each(IMAGES)('decode, show and encode of %s', (name) => {
      const c = (op: string) => {
        const r = crit.get(`${op} ${name}`)!;
        expect(r.ok, `crit ${op} ${name}: ${r.error}`).toBe(true);
        return r.out;
      };
      expect(ok(`decode ${name}`).toString()).toBe(c('decode'));
      expect(ok(`show ${name}`).toString()).toBe(c('show'));
      c('encode');
      expect(readFileSync(f(`crit-${name}.enc`)).equals(readFileSync(img(name)))).toBe(true);
    });
  });

  if (!haveCrit) {
    describe('the same as crit 3.17', () => {
      it.skip(`skipped: ${CRIT} (Debian's crit 3.17) or ${PYTHON} is not installed`, () => {});
    });
  }

  describe('errors', () => {
    const oneLine = (name: string, names: string) => {
      const r = ts.get(name)!;
      expect(r.code, `${name}: exit code`).toBe(1);
      expect(r.stdout.length, `${name}: stdout`).toBe(0);
      const lines = r.stderr.split('\n');
      expect(lines, `${name}: one line on stderr`).toHaveLength(2);
      expect(lines[1]).toBe('');
      expect(lines[0]).toMatch(/^crit-ts: /);
      expect(lines[0], `${name}: names the file`).toContain(names);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      return lines[0]!;
    };

    it.each(['missing', 'truncated', 'junk'])('a %s image: decode, show, info', (what) => {
      const file = { missing: 'no-such.img', truncated: 'trunc.img', junk: 'junk.img' }[what]!;
      const why = {
        missing: /missing image \(no such file\)/,
        truncated: /needs \d+ bytes but only \d+ remain/,
        junk: /unknown magic/,
      }[what]!;
      for (const op of ['decode', 'show', 'info'])
        expect(oneLine(`error ${op} ${what}`, f(file))).toMatch(why);
    });

    it.each(['missing', 'truncated', 'junk'])(
      'a %s image with -v: the message, then a stack trace',
      (what) => {
        const r = ts.get(`error -v decode ${what}`)!;
        expect(r.code).toBe(1);
        const [first, ...rest] = r.stderr.trimEnd().split('\n');
        expect(first).toBe(ts.get(`error decode ${what}`)!.stderr.trimEnd());
        expect(rest.join('\n')).toMatch(/^\s+at /m);
      },
    );

    it('a truncated image on stdin is named <stdin>', () => {
      expect(oneLine('error decode stdin truncated', '<stdin>')).toMatch(/needs \d+ bytes/);
    });

    it('encode: a missing JSON file, JSON that is not JSON', () => {
      expect(oneLine('error encode missing', f('no-such.json'))).toMatch(/ENOENT/);
      expect(oneLine('error encode bad json', '<stdin>')).toMatch(/cannot read JSON/);
    });

    it('x on a directory that does not exist', () => {
      oneLine('error x missing', f('no-such-dir'));
      expect(ts.get('error -v x missing')!.stderr).toMatch(/^\s+at /m);
    });
  });
});

// What `pnpm bench:images` and a user running bin/crit-ts.cjs do: no NODE_PATH from a .bin shim (pnpm's
// shims set one, and vitest started through one passes it on), so every module crit-ts loads must be
// reachable from its own package.
describe('crit-ts run as node bin/crit-ts.cjs, without NODE_PATH', () => {
  let tmp: string;
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("decode --pretty names the vma status and mmap flag bits CRIU 4.2's crit names", async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'crit-ts-names-'));
    const dir = ImageDir.create(path.join(tmp, 'dump'));
    const FILE_SHARED = 1 << 7;
    const [MEMFD, SHSTK, UPROBES] = [1 << 14, 1 << 15, 1 << 17];
    const mm = {
      mm_start_code: 0n,
      mm_end_code: 0n,
      mm_start_data: 0n,
      mm_end_data: 0n,
      mm_start_stack: 0n,
      mm_start_brk: 0n,
      mm_brk: 0n,
      mm_arg_start: 0n,
      mm_arg_end: 0n,
      mm_env_start: 0n,
      mm_env_end: 0n,
      exe_file_id: 1,
      vmas: [
        vma(0x7f0000000000, 1, REGULAR | FILE_SHARED | MEMFD, { shmid: 3n, flags: 0x1 }),
        vma(0x7f0000100000, 1, REGULAR | (1 << 9) | SHSTK | UPROBES | (1 << 16), { flags: 0x2 | 0x8 }),
      ],
    };
    dir.write('mm-%u', 1, [mm]);
    const env = { ...process.env };
    delete env.NODE_PATH;
    const r = await run(
      process.execPath,
      [BIN, 'decode', '--pretty', '-i', path.join(tmp, 'dump/mm-1.img')],
      undefined,
      env,
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const vmas = (pyParse(r.stdout.toString()) as { entries: Array<{ vmas: Array<Record<string, PyJson>> }> })
      .entries[0]!.vmas;
    expect(vmas.map((v) => [v.status, v.flags])).toEqual([
      ['VMA_AREA_REGULAR | VMA_FILE_SHARED | VMA_AREA_MEMFD', 'MAP_SHARED'],
      // bit 16 (VMA_AREA_GUARD) has no name in crit either
      [
        'VMA_AREA_REGULAR | VMA_ANON_PRIVATE | VMA_AREA_SHSTK | VMA_AREA_UPROBES | 0x10000',
        'MAP_PRIVATE | MAP_DROPPABLE',
      ],
    ]);
  });
});
