#!/usr/bin/env node
// Benchmark of `criu-ts restore` (run as root, after `pnpm -r build`): `pnpm bench:restore`.
//   - restore() from packages/core/dist of `sleep 1000` and of memhog workloads with 64 MiB, 512 MiB and
//     2 GiB of touched anonymous memory: each is dumped once (killed, as `criu-ts dump` does), then
//     restored REPS + 1 times (the first, a warm-up, not counted), killing and reaping the restored task
//     between reps. Per rep: wall time of the restore() call (from reading the images to the detach; the
//     pids are free already) and its split as restore() measures it: creating the tasks (the stub and
//     clone3: forking_time of stats-restore), memory (mappings, page contents), and the rest
//     (reading the images, fds, task state, registers). memhog's checksum is checked after the last rep.
//   - `sleep 1000` through the CLI as a user runs it (`criu-ts restore -D DIR -d`, node start-up included).
// After the reps, this machine's limits for the same bytes (fresh memory faulted in, the pages image read
// with O_DIRECT and through the page cache). Median of the counted reps. Images go to a temp dir under /tmp (2 GiB is skipped, with a message, when
// /tmp has less than 3 GiB free or the machine less than 6 GiB of available memory). Prints a table, then
// as the LAST line one JSON object: {"restore_sleep": {wall_ms, fork_ms, memory_ms, rest_ms, ...},
// "restore_64MiB": ..., "restore_512MiB": ..., "restore_2GiB": ... | null, "sleep_cli_wall_ms": ..}.
// CRIU 4.2 on this kind of machine, for reference: sleep 86 ms, 64 MiB 264 ms, 512 MiB 1.9 s, 2 GiB 8.4 s.
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statfsSync,
} from 'node:fs';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { buildWorkloads, workloadPath } from '../../workloads/index.js';
import { readLines, waitForLine } from '../../workloads/report.js';
import { importBuilt, median, requireBuilt, runCli, startClean, table } from '../common.js';
import { cleanUp, printReport } from '../report.js';

requireBuilt(['sys', 'compel', 'images', 'core', 'core/restore/index.js']);
const { dump } = await importBuilt('core');
const { restore } = await importBuilt('core/restore/index.js');
const { killAndReap, startTraceable } = await importBuilt('compel');
const { ImageDir } = await importBuilt('images');
const sys = await importBuilt('sys');

const TMP = '/tmp';
const GIB = 1024 ** 3;
const WORKLOADS = [
  { name: 'sleep', reps: 10, criuMs: 86 },
  { name: '64MiB', mib: 64, reps: 5, criuMs: 264 },
  { name: '512MiB', mib: 512, reps: 3, criuMs: 1900 },
  { name: '2GiB', mib: 2048, reps: 3, criuMs: 8400 },
];
const SLEEP_CLI_REPS = 5;

const round = (v, d = 1) => Number(v.toFixed(d));
const { rows, row } = table();

const work = mkdtempSync(join(TMP, 'criu-ts-bench-restore-'));
const started = new Set<number>();
const startSleep = () => startClean(['/usr/bin/sleep', '1000'], startTraceable, (p) => started.add(p));

/** Wait until a task sleeps in pause() (memhog done filling) or nanosleep. */
async function waitAsleep(pid) {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'S') return;
    if (Date.now() > deadline) throw new Error(`pid ${pid} never fell asleep`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * This machine's limits for filling `bytes` of memory from the pages image `file`, each alone: fresh
 * anonymous memory of that size faulted in (MADV_POPULATE_WRITE, what the restored task's memory costs
 * whatever the source), and the image read into a hot 8 MiB buffer with O_DIRECT and through the page
 * cache (the image is out of the cache after criu-ts's dump; the buffered read leaves it in).
 */
function limits(file, bytes) {
  const gbps = (fn) => {
    const t0 = performance.now();
    fn();
    return Number((bytes / ((performance.now() - t0) / 1e3) / 1e9).toFixed(2));
  };
  const populate = gbps(() => {
    const flags = sys.MAP_PRIVATE | sys.MAP_ANONYMOUS;
    const at = sys.mmap(0n, bytes, sys.PROT_READ | sys.PROT_WRITE, flags);
    try {
      sys.madvise(at, bytes, sys.MADV_POPULATE_WRITE);
    } finally {
      sys.munmap(at, bytes);
    }
  });
  const buf = sys.alignedBuffer(8 * 1024 * 1024);
  const read = (flags) => () => {
    const fd = openSync(file, constants.O_RDONLY | flags);
    try {
      for (let at = 0; at < bytes; ) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, bytes - at), at);
        if (n === 0) break;
        at += n;
      }
    } finally {
      closeSync(fd);
    }
  };
  const direct = gbps(read(constants.O_DIRECT));
  const pageCache = gbps(read(0));
  return { populate_gbps: populate, direct_read_gbps: direct, page_cache_read_gbps: pageCache };
}

async function bench(w) {
  if (w.mib >= 2048) {
    const disk = Number(statfsSync(TMP).bavail) * Number(statfsSync(TMP).bsize);
    if (disk < 3 * GIB || freemem() < 6 * GIB) {
      const msg = `skipped: ${(disk / GIB).toFixed(1)} GiB free in ${TMP}, ${(freemem() / GIB).toFixed(1)} GiB of memory`;
      console.error(`restore ${w.name}: ${msg}`);
      row(`restore ${w.name}`, '-', '', msg);
      return null;
    }
  }
  let pid;
  let report;
  if (w.mib) {
    report = join(work, `memhog-${w.mib}.report`);
    pid = startTraceable([workloadPath('memhog'), report, String(w.mib)], { setsid: true });
    started.add(pid);
    await waitForLine(report, /^SUM /, { pid, timeoutMs: 300_000 });
  } else {
    pid = await startSleep();
  }
  await waitAsleep(pid);
  const dir = join(work, `images-${w.name}`);
  await dump({ pid, imagesDir: dir });
  killAndReap(pid);

  const walls = [];
  const parts = { fork: [], memory: [], rest: [] };
  let pages = 0;
  for (let rep = 0; rep <= w.reps; rep++) {
    const s = performance.now();
    const r = restore({ imagesDir: dir });
    const wall = performance.now() - s;
    started.add(r.root);
    const stats = ImageDir.open(dir).one('stats-%s', 'restore').restore;
    pages = Number(stats.pages_restored ?? 0n);
    if (rep > 0) {
      walls.push(wall);
      parts.fork.push(r.timings.fork);
      parts.memory.push(r.timings.memory);
      parts.rest.push(wall - r.timings.fork - r.timings.memory);
    }
    if (rep === w.reps && w.mib) {
      // The last restored memhog recomputes its checksum: it must be the one it had.
      const sums = readLines(report).filter((l) => l.startsWith('SUM '));
      const n = readLines(report).length;
      process.kill(r.root, 'SIGUSR1');
      const again = await waitForLine(report, /^SUM /, { pid: r.root, fromLine: n, timeoutMs: 120_000 });
      if (again !== sums[0]) throw new Error(`restore ${w.name}: checksum ${again} != ${sums[0]}`);
    }
    killAndReap(r.root);
    started.delete(r.root);
  }
  const pagesFile = readdirSync(dir).find((n) => /^pages-\d+\.img$/.test(n));
  const limit = w.mib && pagesFile ? limits(join(dir, pagesFile), w.mib * 1024 * 1024) : undefined;
  rmSync(dir, { recursive: true, force: true });
  const out = {
    ...limit,
    wall_ms: round(median(walls)),
    fork_ms: round(median(parts.fork)),
    memory_ms: round(median(parts.memory)),
    rest_ms: round(median(parts.rest)),
    pages_restored: pages,
    reps: w.reps,
    criu_4_2_ms: w.criuMs,
  };
  row(
    `restore ${w.name} (API)`,
    out.wall_ms,
    'ms wall',
    `median of ${w.reps} after a warm-up: ${walls.map((v) => v.toFixed(0)).join(' ')}; CRIU 4.2: ${w.criuMs} ms (${(w.criuMs / out.wall_ms).toFixed(1)}x ours)`,
  );
  row('  creating tasks (stub, clone3)', out.fork_ms, 'ms', parts.fork.map((v) => v.toFixed(1)).join(' '));
  row('  memory (maps, contents)', out.memory_ms, 'ms', `${pages} pages`);
  row('  the rest', out.rest_ms, 'ms', 'images, fds, task state, registers, detach');
  if (w.mib) row('  memory throughput', round((pages * 4096) / (out.memory_ms / 1e3) / 1e9, 2), 'GB/s', '');
  if (limit) {
    row('  limit: fresh memory faulted in', limit.populate_gbps, 'GB/s', 'MADV_POPULATE_WRITE, alone');
    row('  limit: image read, O_DIRECT', limit.direct_read_gbps, 'GB/s', 'into a hot 8 MiB buffer');
    row('  limit: image read, page cache', limit.page_cache_read_gbps, 'GB/s', 'from out of the cache');
  }
  return out;
}

async function benchSleepCli() {
  const pid = await startSleep();
  await waitAsleep(pid);
  const dir = join(work, 'images-sleep-cli');
  await dump({ pid, imagesDir: dir });
  killAndReap(pid);
  const walls = [];
  for (let rep = 0; rep < SLEEP_CLI_REPS; rep++) {
    const s = performance.now();
    await runCli(['restore', '-D', dir, '-d']);
    walls.push(performance.now() - s);
    // -d: the restored task was re-parented to us (a child subreaper since startTraceable).
    killAndReap(pid);
  }
  rmSync(dir, { recursive: true, force: true });
  row(
    'restore sleep (CLI, -d)',
    median(walls).toFixed(1),
    'ms wall',
    `median of ${SLEEP_CLI_REPS}, node start-up included: ${walls.map((v) => v.toFixed(0)).join(' ')}`,
  );
  return median(walls);
}

let out;
try {
  await buildWorkloads();
  out = {};
  for (const w of WORKLOADS) out[`restore_${w.name}`] = await bench(w);
  out.sleep_cli_wall_ms = round(await benchSleepCli());
} finally {
  cleanUp(started, work, killAndReap);
}

printReport(`criu-ts restore benchmark (node ${process.version}, images in ${TMP})`, rows, out);
