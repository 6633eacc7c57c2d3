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
import { range, x86Core } from '../../../packages/images/test/x86-core.js';

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

/**
 * `messages` (after `head`) written to `file` by ImageWriter and read back by ImageReader, best of 3
 * each, turned into crit's JSON in process once, and decoded by crit and crit-ts: the figures of
 * `kind` (pagemap, core), and the times the ratios need.
 */
function codecRun(kind, file, magic, messages, head?) {
  const n = messages.length;
  const enc = best(3, () => writeAll(file, magic, messages, head));
  const bytes = statSync(file).size;
  const dec = best(3, () => countEntries(file));
  if (dec.result !== n + (head ? 1 : 0)) throw new Error(`${kind}: read ${dec.result} entries`);
  const json = best(1, () => pyDumps(imageToCrit(file)).length);
  const figures = {
    [`${kind}_encode_eps`]: round(n / enc.s),
    [`${kind}_encode_mbps`]: round(mb(bytes) / enc.s),
    [`${kind}_decode_eps`]: round(n / dec.s),
    [`${kind}_decode_mbps`]: round(mb(bytes) / dec.s),
    [`${kind}_crit_json_inproc_s`]: round(json.s),
    [`crit_${kind}_decode_s`]: round(critDecode(file)),
    [`critts_${kind}_decode_s`]: round(critTsDecode(file)),
  };
  return { bytes, decodeS: dec.s, jsonS: json.s, figures };
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
  const pm = codecRun('pagemap', pagemap, 'PAGEMAP', pagemapEntries(PAGEMAP_ENTRIES), { pages_id: 1 });
  const pmBytes = pm.bytes;
  Object.assign(fig, { pagemap_entries: PAGEMAP_ENTRIES, pagemap_file_bytes: pmBytes }, pm.figures);

  // Core: CORE_ENTRIES core_entry messages in one image (crit decodes them all).
  const core = join(dir, 'core-1.img');
  const cr = codecRun(
    'core',
    core,
    'CORE',
    range(CORE_ENTRIES, (i) => x86Core(1000 + i)),
  );
  const coreBytes = cr.bytes;
  Object.assign(
    fig,
    { core_entries: CORE_ENTRIES, core_entry_bytes: Math.round((coreBytes - 8) / CORE_ENTRIES) },
    cr.figures,
  );

  // Ratios: crit's time for the same file over ours, crit's startup taken out of its time.
  const vsCrit = (critS, oursS) =>
    critS === null || fig.crit_startup_s === null ? null : round((critS - fig.crit_startup_s) / oursS, 3);
  fig.pagemap_decode_x_crit = vsCrit(fig.crit_pagemap_decode_s, pm.decodeS);
  fig.core_decode_x_crit = vsCrit(fig.crit_core_decode_s, cr.decodeS);
  fig.pagemap_json_x_crit = vsCrit(fig.crit_pagemap_decode_s, pm.jsonS);
  fig.core_json_x_crit = vsCrit(fig.crit_core_decode_s, cr.jsonS);
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
  /** The rows of one image kind (pagemap, core): its size, then ours and crit's figures. */
  const codecRows = (kind, what, bytes) => {
    row(what, (bytes / 1e6).toFixed(1), 'MB');
    const mbps = (k) => `${fmt(fig[`${kind}_${k}_mbps`])} MB/s`;
    row(`${kind} encode (ImageWriter)`, n(fig[`${kind}_encode_eps`]), 'entries/s', mbps('encode'));
    row(`${kind} decode (ImageReader)`, n(fig[`${kind}_decode_eps`]), 'entries/s', mbps('decode'));
    row(
      `${kind} to crit JSON (in process)`,
      fmt(fig[`${kind}_crit_json_inproc_s`], 3),
      's',
      'imageToCrit + pyDumps',
    );
    row(`crit decode ${kind}`, fmt(fig[`crit_${kind}_decode_s`], 3), 's', 'wall clock, startup included');
    row(
      `crit-ts decode ${kind}`,
      fmt(fig[`critts_${kind}_decode_s`], 3),
      's',
      'wall clock, startup included',
    );
  };
  codecRows('pagemap', `pagemap file (${n(PAGEMAP_ENTRIES)} entries)`, pmBytes);
  codecRows('core', `core image (${n(CORE_ENTRIES)} x ${fig.core_entry_bytes} B)`, coreBytes);
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
