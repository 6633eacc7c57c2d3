#!/usr/bin/env node
// Benchmarks of @criu-ts/compel (run as root, after `pnpm build`):
//   - one injected syscall (getpid), median of INJECT_N;
//   - a syscall inside a batch of BATCH_N getpid (per-syscall cost), and the fixed cost of a batch;
//   - process_vm_readv throughput over the 512 MiB a memhog workload touched, 1024 iovecs per call, into
//     one reused buffer;
//   - smaps_speedup from ./smaps.ts (measureSmapsSpeedup(), another benchmark), null if absent.
// Prints a table, then as the LAST line one JSON object:
//   {"inject_us": .., "batch_us": .., "vm_readv_gbps": .., "smaps_speedup": ..}
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildWorkloads, workloadPath } from '../../workloads/index.js';
import { waitForLine } from '../../workloads/report.js';
import { importBuilt, requireBuilt, table } from '../common.js';
import { cleanUp, printReport } from '../report.js';

const here = dirname(fileURLToPath(import.meta.url));
requireBuilt(['sys', 'bfd', 'compel']);
const { Parasite, killAndReap, readRuns, seizeTree, startTraceable } = await importBuilt('compel');
const { SYS } = await importBuilt('sys');
const { ProcDir } = await importBuilt('bfd');

const INJECT_N = 2000;
const BATCH_N = 1000;
const BATCH_REPS = 30;
const MEMHOG_MIB = 512;
const READ_REPS = 5;
const IOVECS = 1024;

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s[s.length >> 1];
};
const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];
};
const nowUs = () => Number(process.hrtime.bigint()) / 1e3;
const { rows, row } = table();

const work = mkdtempSync(join(tmpdir(), 'criu-ts-bench-compel-'));
const started = [];
function start(name, args) {
  const report = join(work, `${name}.report`);
  const pid = startTraceable([workloadPath(name), report, ...args]);
  started.push(pid);
  return { pid, report };
}

async function benchInject() {
  // counter with a 1 s interval: the task sleeps, so its own work does not compete with the benchmark
  const w = start('counter', ['1000']);
  await waitForLine(w.report, /^1$/, { pid: w.pid });
  const tree = seizeTree(w.pid);
  try {
    const p = Parasite.infect(tree, w.pid, { tableEntries: BATCH_N });
    const pid = BigInt(w.pid);
    for (let i = 0; i < 200; i++) p.syscall(SYS.getpid); // warm up
    const single = new Float64Array(INJECT_N);
    for (let i = 0; i < INJECT_N; i++) {
      const t0 = nowUs();
      const r = p.syscall(SYS.getpid);
      single[i] = nowUs() - t0;
      if (r !== pid) throw new Error(`injected getpid returned ${r}`);
    }
    const entries = Array.from({ length: BATCH_N }, () => [SYS.getpid]);
    p.runBatch(entries); // warm up
    const perCall = [];
    for (let rep = 0; rep < BATCH_REPS; rep++) {
      const t0 = nowUs();
      const r = p.runBatch(entries);
      perCall.push((nowUs() - t0) / BATCH_N);
      if (!r.ok || r.results.length !== BATCH_N || r.results.some((x) => x !== pid))
        throw new Error('bad batch');
    }
    const one = [];
    for (let rep = 0; rep < 300; rep++) {
      const t0 = nowUs();
      p.runBatch([[SYS.getpid]]);
      one.push(nowUs() - t0);
    }
    p.cure();
    const injectUs = median(single);
    const batchUs = median(perCall);
    row(
      'injected getpid (single)',
      injectUs.toFixed(1),
      'us',
      `median of ${INJECT_N}; p10 ${pct(single, 10).toFixed(1)}, p90 ${pct(single, 90).toFixed(1)}`,
    );
    row(
      `getpid in a batch of ${BATCH_N}`,
      batchUs.toFixed(3),
      'us/syscall',
      `median of ${BATCH_REPS} batches; ${(injectUs / batchUs).toFixed(0)}x cheaper than single`,
    );
    row('batch of 1 getpid (fixed cost)', median(one).toFixed(1), 'us', 'median of 300');
    return { injectUs, batchUs };
  } finally {
    tree.release();
  }
}

async function benchVmReadv() {
  const w = start('memhog', [String(MEMHOG_MIB)]);
  const t0 = performance.now();
  await waitForLine(w.report, /^SUM /, { pid: w.pid, timeoutMs: 120_000 });
  const fillMs = performance.now() - t0;
  const dir = ProcDir.open(w.pid);
  const size = BigInt(MEMHOG_MIB) << 20n;
  const area = dir.maps().find((m) => (m.end as bigint) - (m.start as bigint) === size && m.path === '');
  dir.close();
  if (!area) throw new Error('memhog area not found in maps');
  const tree = seizeTree(w.pid);
  const results = {};
  try {
    for (const iov of [64 * 1024, 4096]) {
      const perCall = IOVECS * iov;
      const buf = Buffer.allocUnsafe(perCall); // reused by every call
      buf.fill(1); // fault it in before timing
      const calls = Number(size) / perCall;
      const runs = Array.from({ length: calls }, (_, c) =>
        Array.from({ length: IOVECS }, (_, i) => ({
          addr: area.start + BigInt(c * perCall + i * iov),
          len: iov,
        })),
      );
      const gbps = [];
      for (let rep = 0; rep < READ_REPS; rep++) {
        const s = performance.now();
        for (let c = 0; c < calls; c++) {
          if (readRuns(w.pid, runs[c], buf) !== perCall) throw new Error('short process_vm_readv');
        }
        gbps.push(Number(size) / ((performance.now() - s) / 1e3) / 1e9);
      }
      results[iov] = median(gbps);
      row(
        `process_vm_readv, ${IOVECS} x ${iov / 1024} KiB iovecs/call`,
        results[iov].toFixed(2),
        'GB/s',
        `${MEMHOG_MIB} MiB touched by memhog, ${calls} calls, median of ${READ_REPS} (reps ${gbps.map((g) => g.toFixed(1)).join(' ')})`,
      );
    }
  } finally {
    tree.release();
  }
  row(
    '(memhog fill, for scale)',
    (MEMHOG_MIB / 1024 / (fillMs / 1e3)).toFixed(2),
    'GB/s',
    'first touch + xorshift, in the task',
  );
  return results[64 * 1024];
}

async function benchSmaps() {
  const file = join(here, 'smaps.ts');
  if (!existsSync(file)) {
    row('smaps speedup', 'null', '', 'tools/bench/compel/smaps.ts not there');
    return null;
  }
  const mod = await import(pathToFileURL(file).href);
  if (typeof mod.measureSmapsSpeedup !== 'function') {
    row('smaps speedup', 'null', '', 'smaps.ts exports no measureSmapsSpeedup()');
    return null;
  }
  const r = await mod.measureSmapsSpeedup();
  const v = typeof r === 'number' ? r : typeof r?.smaps_speedup === 'number' ? r.smaps_speedup : null;
  const detail =
    typeof r === 'object' && r !== null ? `bfd ${r.bfd_ms} ms vs naive ${r.naive_ms} ms, ${r.vmas} VMAs` : '';
  row('smaps read+parse speedup (bfd vs naive)', v === null ? 'null' : v.toFixed(2), 'x', detail);
  return v;
}

let out;
try {
  await buildWorkloads();
  const { injectUs, batchUs } = await benchInject();
  const vmReadvGbps = await benchVmReadv();
  const smaps = await benchSmaps();
  out = {
    inject_us: Number(injectUs.toFixed(2)),
    batch_us: Number(batchUs.toFixed(3)),
    vm_readv_gbps: Number(vmReadvGbps.toFixed(2)),
    smaps_speedup: smaps === null ? null : Number(smaps.toFixed(2)),
  };
} finally {
  cleanUp(started, work, killAndReap);
}

printReport(null, rows, out);
