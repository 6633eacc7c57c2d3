#!/usr/bin/env node
// How to run: build first (`pnpm --filter @criu-ts/images build`, and `pnpm --filter @criu-ts/cli build`
// for the crit-ts column), then from the repo root: `pnpm exec tsx tools/bench/images/run.ts` (or `pnpm bench:images`).
// Options (environment): BENCH_DIR=/dev/shm to put the files there (default: the OS temp dir),
// BENCH_PAGEMAP_ENTRIES (1000000), BENCH_CORE_ENTRIES (10000), BENCH_PAGES_MIB (1024), BENCH_NO_CRIT=1.
//
// Throughput of @criu-ts/images against Debian's crit on the same files, in the same run:
// - pagemap: encode (ImageWriter) and decode (ImageReader) of 1,000,000 pagemap entries;
// - core: a realistic x86-64 core_entry (gpregs, fpregs with xsave, TLS, tc with timers and
//   rlimits, thread_core with creds and sigmask), 10,000 of them in one image;
// - crit: `crit decode -i FILE -o /dev/null`, wall clock, python startup included; its startup
//   alone is measured on a one-entry inventory image and reported separately. crit-ts (our CLI,
//   same command) is timed the same way when it is built;
// - pages: 1 GiB of page data through PageMapWriter into the page cache (no fsync), GB/s.
// A table first, then, as the last line, one JSON object with every figure.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ImageReader,
  ImageWriter,
  imageToCrit,
  PAGE_SIZE,
  PageMapWriter,
  PE_PARENT,
  PE_PRESENT,
  pagemapEntry,
  pyDumps,
} from '../../../packages/images/dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../..');
const env = process.env;
const PAGEMAP_ENTRIES = Number(env.BENCH_PAGEMAP_ENTRIES ?? 1_000_000);
const CORE_ENTRIES = Number(env.BENCH_CORE_ENTRIES ?? 10_000);
const PAGES_BYTES = Number(env.BENCH_PAGES_MIB ?? 1024) * 1024 * 1024;
const CRIT = env.BENCH_NO_CRIT ? null : findCrit();
const CRIT_TS = join(repoRoot, 'apps/cli/bin/crit-ts.cjs');
const haveCritTs = existsSync(CRIT_TS) && existsSync(join(repoRoot, 'apps/cli/dist/crit-ts.js'));

const dir = mkdtempSync(join(env.BENCH_DIR ?? tmpdir(), 'criu-ts-bench-images-'));
const now = () => performance.now() / 1000;

function findCrit() {
  for (const p of ['/usr/bin/crit', '/usr/local/bin/crit']) if (existsSync(p)) return p;
  return null;
}

/** Best (smallest) wall time of `runs` calls of fn, in seconds; fn's result from the last call. */
function best(runs, fn) {
  let min = Number.POSITIVE_INFINITY;
  let result;
  for (let i = 0; i < runs; i++) {
    const t = now();
    result = fn();
    min = Math.min(min, now() - t);
  }
  return { s: min, result };
}

/** Wall time of a command, best of `runs`; null when it fails. */
function timeCommand(cmd, args, runs = 1) {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t = now();
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
    const s = now() - t;
    if (r.status !== 0) {
      console.error(`${cmd} ${args.join(' ')} failed: ${String(r.stderr).trim().split('\n').pop()}`);
      return null;
    }
    min = Math.min(min, s);
  }
  return min;
}

const critDecode = (file, runs = 1) =>
  CRIT ? timeCommand(CRIT, ['decode', '-i', file, '-o', '/dev/null'], runs) : null;
const critTsDecode = (file, runs = 1) =>
  haveCritTs ? timeCommand(process.execPath, [CRIT_TS, 'decode', '-i', file, '-o', '/dev/null'], runs) : null;

// ---- the images ------------------------------------------------------------------------------

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));

/** A realistic x86-64 core_entry, as criu dump writes for a thread blocked in a syscall. */
function x86Core(tid) {
  const itimer = { isec: 0n, iusec: 0n, vsec: 0n, vusec: 0n };
  return {
    mtype: 1, // X86_64
    thread_info: {
      clear_tid_addr: 0x7f3a5c1d2a10n + BigInt(tid),
      gpregs: {
        r15: 0n,
        r14: 0x7ffd1c2b3a40n,
        r13: 0x55d0c0ffee00n,
        r12: 1n,
        bp: 0x7ffd1c2b3960n,
        bx: 0n,
        r11: 0x246n,
        r10: 0n,
        r9: 0n,
        r8: 0n,
        ax: 0xfffffffffffffdfcn,
        cx: 0x7f3a5c0e6b3an,
        dx: 0n,
        si: 0x80n,
        di: 0x3n,
        orig_ax: 0xe6n,
        ip: 0x7f3a5c0e6b3an,
        cs: 0x33n,
        flags: 0x246n,
        sp: 0x7ffd1c2b3900n - BigInt(tid * 0x100),
        ss: 0x2bn,
        fs_base: 0x7f3a5c1d2740n,
        gs_base: 0n,
        ds: 0n,
        es: 0n,
        fs: 0n,
        gs: 0n,
        mode: 1,
      },
      fpregs: {
        cwd: 0x37f,
        swd: 0,
        twd: 0,
        fop: 0,
        rip: 0n,
        rdp: 0n,
        mxcsr: 0x1f80,
        mxcsr_mask: 0x2ffff,
        st_space: range(32, (i) => (i * 0x01010101) >>> 0),
        xmm_space: range(64, (i) => (i % 3 === 0 ? 0 : (0xdeadbeef ^ i) >>> 0)),
        padding: range(24, () => 0),
        xsave: { xstate_bv: 7n, ymmh_space: range(64, (i) => (i % 5 === 0 ? 0 : i * 0x10001)) },
      },
      tls: range(3, (i) => ({
        entry_number: 12 + i,
        base_addr: 0,
        limit: 0xfffff,
        seg_32bit: true,
        contents_h: false,
        contents_l: false,
        read_exec_only: true,
        limit_in_pages: true,
        seg_not_present: true,
        usable: false,
      })),
    },
    tc: {
      task_state: 1,
      exit_code: 0,
      personality: 0,
      flags: 0x400100,
      blk_sigset: 0n,
      comm: 'bash',
      timers: { real: itimer, virt: itimer, prof: itimer },
      rlimits: { rlimits: range(16, (i) => ({ cur: BigInt(i * 1024), max: 0xffffffffffffffffn })) },
      cg_set: 1,
      loginuid: 1000,
      oom_score_adj: 0,
      child_subreaper: false,
    },
    thread_core: {
      futex_rla: 0x7f3a5c1d2a20n,
      futex_rla_len: 24,
      sched_nice: 0,
      sched_policy: 0,
      blk_sigset: 0x10000n,
      sas: { ss_sp: 0n, ss_size: 0n, ss_flags: 2 },
      pdeath_sig: 0,
      creds: {
        uid: 1000,
        gid: 1000,
        euid: 1000,
        egid: 1000,
        suid: 1000,
        sgid: 1000,
        fsuid: 1000,
        fsgid: 1000,
        cap_inh: [0, 0],
        cap_prm: [0, 0],
        cap_eff: [0, 0],
        cap_bnd: [0xffffffff, 0x1ff],
        secbits: 0,
        groups: [4, 24, 27, 1000],
        no_new_privs: 0,
      },
      comm: `worker-${tid}`,
    },
  };
}

/** A pagemap as a big process leaves it: runs of 1..64 pages, mostly present, some in the parent. */
function pagemapEntries(n) {
  const out = new Array(n);
  let vaddr = 0x7f0000000000n;
  for (let i = 0; i < n; i++) {
    const pages = 1 + ((i * 7919) % 64);
    out[i] = pagemapEntry(vaddr, pages, i % 10 === 9 ? PE_PARENT : PE_PRESENT);
    vaddr += BigInt((pages + 1) * PAGE_SIZE);
  }
  return out;
}

function writeAll(path, magic, messages, head?) {
  const w = new ImageWriter(path, magic);
  try {
    if (head) w.write(head);
    for (const m of messages) w.write(m);
  } finally {
    w.close();
  }
}

function countEntries(path) {
  const r = ImageReader.open(path);
  let n = 0;
  try {
    for (let e = r.next(); e; e = r.next()) n++;
  } finally {
    r.close();
  }
  return n;
}

// ---- runs ------------------------------------------------------------------------------------

const fig: Record<string, any> = {};
const rows = [];
const row = (what, value, unit, note = '') => rows.push([what, value, unit, note]);
const fmt = (x, digits = 2) =>
  x === null || x === undefined ? 'n/a' : x >= 100 ? x.toFixed(0) : x.toFixed(digits);
const mb = (bytes) => bytes / 1e6;
const round = (x, d = 4) => (x === null ? null : Number(x.toPrecision(d)));

try {
  // crit's startup: a one-entry inventory image.
  const inventory = join(dir, 'inventory.img');
  writeAll(inventory, 'INVENTORY', [{ img_version: 2, fdinfo_per_id: true, ns_per_id: true, lsmtype: 0 }]);
  fig.crit_startup_s = round(critDecode(inventory, 5));
  fig.critts_startup_s = round(critTsDecode(inventory, 5));

  // Pagemap: 1 head + PAGEMAP_ENTRIES entries.
  const pagemap = join(dir, 'pagemap-1.img');
  const entries = pagemapEntries(PAGEMAP_ENTRIES);
  const enc = best(3, () => writeAll(pagemap, 'PAGEMAP', entries, { pages_id: 1 }));
  const pmBytes = statSync(pagemap).size;
  const dec = best(3, () => countEntries(pagemap));
  if (dec.result !== PAGEMAP_ENTRIES + 1) throw new Error(`pagemap: read ${dec.result} entries`);
  const json = best(1, () => pyDumps(imageToCrit(pagemap)).length);
  Object.assign(fig, {
    pagemap_entries: PAGEMAP_ENTRIES,
    pagemap_file_bytes: pmBytes,
    pagemap_encode_eps: round(PAGEMAP_ENTRIES / enc.s),
    pagemap_encode_mbps: round(mb(pmBytes) / enc.s),
    pagemap_decode_eps: round(PAGEMAP_ENTRIES / dec.s),
    pagemap_decode_mbps: round(mb(pmBytes) / dec.s),
    pagemap_crit_json_inproc_s: round(json.s),
    crit_pagemap_decode_s: round(critDecode(pagemap)),
    critts_pagemap_decode_s: round(critTsDecode(pagemap)),
  });

  // Core: CORE_ENTRIES core_entry messages in one image (crit decodes them all).
  const core = join(dir, 'core-1.img');
  const cores = range(CORE_ENTRIES, (i) => x86Core(1000 + i));
  const cenc = best(3, () => writeAll(core, 'CORE', cores));
  const coreBytes = statSync(core).size;
  const cdec = best(3, () => countEntries(core));
  if (cdec.result !== CORE_ENTRIES) throw new Error(`core: read ${cdec.result} entries`);
  const cjson = best(1, () => pyDumps(imageToCrit(core)).length);
  Object.assign(fig, {
    core_entries: CORE_ENTRIES,
    core_entry_bytes: Math.round((coreBytes - 8) / CORE_ENTRIES),
    core_encode_eps: round(CORE_ENTRIES / cenc.s),
    core_encode_mbps: round(mb(coreBytes) / cenc.s),
    core_decode_eps: round(CORE_ENTRIES / cdec.s),
    core_decode_mbps: round(mb(coreBytes) / cdec.s),
    core_crit_json_inproc_s: round(cjson.s),
    crit_core_decode_s: round(critDecode(core)),
    critts_core_decode_s: round(critTsDecode(core)),
  });

  // Ratios: crit's time for the same file over ours, crit's startup taken out of its time.
  const vsCrit = (critS, oursS) =>
    critS === null || fig.crit_startup_s === null ? null : round((critS - fig.crit_startup_s) / oursS, 3);
  fig.pagemap_decode_x_crit = vsCrit(fig.crit_pagemap_decode_s, dec.s);
  fig.core_decode_x_crit = vsCrit(fig.crit_core_decode_s, cdec.s);
  fig.pagemap_json_x_crit = vsCrit(fig.crit_pagemap_decode_s, json.s);
  fig.core_json_x_crit = vsCrit(fig.crit_core_decode_s, cjson.s);
  rmSync(pagemap);
  rmSync(core);

  // Pages: PAGES_BYTES of page data through PageMapWriter, a 256 MiB buffer reused.
  const chunk = Buffer.alloc(Math.min(256 * 1024 * 1024, PAGES_BYTES));
  for (let i = 0; i < chunk.length; i += PAGE_SIZE) chunk.writeUInt32LE(i, i); // touched, not all zero
  const pages = best(2, () => {
    const w = new PageMapWriter(dir, 2, 2);
    try {
      let vaddr = 0x7f0000000000n;
      for (let done = 0; done < PAGES_BYTES; done += chunk.length) {
        w.addPresent(vaddr, chunk.length / PAGE_SIZE, chunk);
        vaddr += BigInt(chunk.length);
      }
    } finally {
      w.close();
    }
    const size = statSync(join(dir, 'pages-2.img')).size;
    rmSync(join(dir, 'pages-2.img'));
    return size;
  });
  if (pages.result !== PAGES_BYTES) throw new Error(`pages: wrote ${pages.result} bytes`);
  fig.pages_bytes = PAGES_BYTES;
  fig.pages_write_gbps = round(PAGES_BYTES / 1e9 / pages.s);

  // ---- table ---------------------------------------------------------------------------------
  const n = (x) => (x === null ? 'n/a' : Math.round(x).toLocaleString('en-US'));
  row('crit startup (one-entry inventory)', fmt(fig.crit_startup_s, 3), 's', 'python + pycriu import');
  row('crit-ts startup (one-entry inventory)', fmt(fig.critts_startup_s, 3), 's', 'node + module load');
  row(`pagemap file (${n(PAGEMAP_ENTRIES)} entries)`, (pmBytes / 1e6).toFixed(1), 'MB');
  row(
    'pagemap encode (ImageWriter)',
    n(fig.pagemap_encode_eps),
    'entries/s',
    `${fmt(fig.pagemap_encode_mbps)} MB/s`,
  );
  row(
    'pagemap decode (ImageReader)',
    n(fig.pagemap_decode_eps),
    'entries/s',
    `${fmt(fig.pagemap_decode_mbps)} MB/s`,
  );
  row(
    'pagemap to crit JSON (in process)',
    fmt(fig.pagemap_crit_json_inproc_s, 3),
    's',
    'imageToCrit + pyDumps',
  );
  row('crit decode pagemap', fmt(fig.crit_pagemap_decode_s, 3), 's', 'wall clock, startup included');
  row('crit-ts decode pagemap', fmt(fig.critts_pagemap_decode_s, 3), 's', 'wall clock, startup included');
  row(`core image (${n(CORE_ENTRIES)} x ${fig.core_entry_bytes} B)`, (coreBytes / 1e6).toFixed(1), 'MB');
  row('core encode (ImageWriter)', n(fig.core_encode_eps), 'entries/s', `${fmt(fig.core_encode_mbps)} MB/s`);
  row('core decode (ImageReader)', n(fig.core_decode_eps), 'entries/s', `${fmt(fig.core_decode_mbps)} MB/s`);
  row('core to crit JSON (in process)', fmt(fig.core_crit_json_inproc_s, 3), 's', 'imageToCrit + pyDumps');
  row('crit decode core', fmt(fig.crit_core_decode_s, 3), 's', 'wall clock, startup included');
  row('crit-ts decode core', fmt(fig.critts_core_decode_s, 3), 's', 'wall clock, startup included');
  row('pagemap decode vs crit', fmt(fig.pagemap_decode_x_crit, 1), 'x', 'crit minus startup / ImageReader');
  row('core decode vs crit', fmt(fig.core_decode_x_crit, 1), 'x', 'crit minus startup / ImageReader');
  row(
    'pagemap JSON vs crit',
    fmt(fig.pagemap_json_x_crit, 1),
    'x',
    'crit minus startup / imageToCrit+pyDumps',
  );
  row('core JSON vs crit', fmt(fig.core_json_x_crit, 1), 'x', 'crit minus startup / imageToCrit+pyDumps');
  row(
    `pages to page cache (${PAGES_BYTES / 2 ** 20} MiB)`,
    fmt(fig.pages_write_gbps),
    'GB/s',
    `PageMapWriter, ${dir}`,
  );
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  console.log(`@criu-ts/images benchmark (node ${process.version}, crit: ${CRIT ?? 'not found'})`);
  for (const [what, value, unit, note] of rows) {
    console.log(`  ${what.padEnd(w0)}  ${value.padStart(w1)} ${unit.padEnd(9)} ${note}`);
  }
  console.log(JSON.stringify(fig));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
