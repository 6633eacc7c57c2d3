#!/usr/bin/env node
// Benchmark of `criu-ts dump` (run as root, after `pnpm build`): `pnpm bench:dump`.
//   - dump() from packages/core/dist with leaveRunning (the -R path, so one memhog serves every rep) of
//     memhog workloads with 64 MiB, 512 MiB and 2 GiB of touched anonymous memory: wall time of the
//     call, frozen time (frozen_time of stats-dump) and GB/s (bytes of pages written / wall time);
//   - this machine's own limits on the same memory in the same run: process_vm_readv of the memhog's
//     area into a reused 8 MiB buffer (the dump's chunk size) alone, write() of as many bytes to a fresh
//     file in the same directory through the page cache and past it (O_DIRECT), and readv + page-cache
//     write in turn (the old way); the limit of criu-ts's way is the slower of readv and the O_DIRECT write
//     (they overlap), and our GB/s is given as a fraction of it;
//   - `sleep 1000`: dump() wall time, and the whole CLI (`criu-ts dump -t PID -D DIR -R`, node start-up
//     included) as a user runs it.
// Each size has one uncounted warm-up rep, then the median of the others. Images go to a temp dir under
// /tmp and are deleted after each rep; 2 GiB is skipped (with a message)
// when /tmp has less than 6 GiB free. GB = 1e9 bytes. Prints a table, then as the LAST line one JSON
// object: {"dump_64MiB": {wall_ms, frozen_ms, gbps, limit_gbps, fraction_of_limit, ...}, "dump_512MiB":
// ..., "dump_2GiB": ... | null, "sleep_wall_ms": .., "sleep_cli_wall_ms": ..}.
// CRIU 4.2 on this kind of machine, for reference: 64 MiB 107 ms, 512 MiB 1.15 s, 2 GiB 5.5 s, sleep 90 ms.
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { buildWorkloads, workloadPath } from '../../workloads/index.js';
import { waitForLine } from '../../workloads/report.js';
import { importBuilt, median, requireBuilt, runCli, startClean, table } from '../common.js';
import { cleanUp, printReport } from '../report.js';

requireBuilt(['sys', 'bfd', 'compel', 'images', 'core']);
const { dump } = await importBuilt('core');
const { killAndReap, startTraceable } = await importBuilt('compel');
const { alignedBuffer, processVmReadv } = await importBuilt('sys');
const { ImageDir } = await importBuilt('images');

const TMP = '/tmp';
const GIB = 1024 ** 3;
const MIN_FREE_FOR_2G = 6 * GIB;
const CHUNK = 8 * 1024 * 1024;
const SIZES = [
  { name: '64MiB', mib: 64, reps: 5, criuMs: 107 },
  { name: '512MiB', mib: 512, reps: 3, criuMs: 1150 },
  { name: '2GiB', mib: 2048, reps: 3, criuMs: 5500 },
];
const SLEEP_REPS = 10;
const SLEEP_CLI_REPS = 5;

const { rows, row } = table();
const round = (v, d = 2) => Number(v.toFixed(d));

const work = mkdtempSync(join(TMP, 'criu-ts-bench-dump-'));
const started = [];
const freeBytes = () => {
  const s = statfsSync(TMP);
  return Number(s.bavail) * Number(s.bsize);
};

function startMemhog(mib) {
  const report = join(work, `memhog-${mib}.report`);
  const pid = startTraceable([workloadPath('memhog'), report, String(mib)], { setsid: true });
  started.push(pid);
  return { pid, report };
}

/** The memhog's area: its largest private anonymous mapping. */
function memhogArea(pid, mib) {
  let best;
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p 00000000 00:00 0\s*$/.exec(line);
    if (!m) continue;
    const start = BigInt(`0x${m[1]}`);
    const end = BigInt(`0x${m[2]}`);
    if (!best || end - start > best.end - best.start) best = { start, end };
  }
  if (!best || best.end - best.start < BigInt(mib) << 20n) throw new Error(`memhog ${pid}: area not found`);
  return best;
}

/**
 * This machine's limits on the same memory, each alone: process_vm_readv of the area into a reused
 * CHUNK buffer (no write); write() of as many bytes from a hot CHUNK buffer to a fresh file through the
 * page cache, and the same past it (O_DIRECT); and, as the old limit, readv + page-cache write in turn.
 */
function limitRun(pid, area, buf) {
  const file = join(work, 'limit.bin');
  const total = Number(area.end - area.start);
  const readv = () => {
    for (let at = area.start; at < area.end; ) {
      const n = Math.min(Number(area.end - at), CHUNK);
      const got = processVmReadv(pid, [{ local: buf, offset: 0, remote: at, len: n }]);
      if (got !== n) throw new Error(`short process_vm_readv: ${got} of ${n}`);
      at += BigInt(n);
    }
  };
  const write = (flags, withReadv) => {
    const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | flags, 0o600);
    try {
      for (let done = 0; done < total; ) {
        const n = Math.min(total - done, CHUNK);
        if (withReadv)
          processVmReadv(pid, [{ local: buf, offset: 0, remote: area.start + BigInt(done), len: n }]);
        for (let off = 0; off < n; ) off += writeSync(fd, buf, off, n - off);
        done += n;
      }
    } finally {
      closeSync(fd);
      rmSync(file, { force: true });
    }
  };
  const timed = (fn) => {
    const t0 = performance.now();
    fn();
    return total / ((performance.now() - t0) / 1e3) / 1e9;
  };
  return {
    readv: timed(readv),
    pageCache: timed(() => write(0, false)),
    direct: timed(() => write(constants.O_DIRECT, false)),
    old: timed(() => write(0, true)),
  };
}

async function benchSize(size) {
  const need = size.mib * 1024 * 1024;
  if (size.mib >= 2048 && freeBytes() < MIN_FREE_FOR_2G) {
    const msg = `skipped: ${(freeBytes() / GIB).toFixed(1)} GiB free in ${TMP}, 6 GiB needed`;
    console.error(`dump ${size.name}: ${msg}`);
    row(`dump ${size.name}`, '-', '', msg);
    return null;
  }
  const w = startMemhog(size.mib);
  const t0 = performance.now();
  await waitForLine(w.report, /^SUM /, { pid: w.pid, timeoutMs: 300_000 });
  const fillS = (performance.now() - t0) / 1e3;
  const area = memhogArea(w.pid, size.mib);
  const buf = alignedBuffer(CHUNK); // page-aligned for O_DIRECT
  buf.fill(1); // faulted in before timing

  const walls = [];
  const frozens = [];
  const limits = [];
  const lims = [];
  let pages = 0;
  // Rep 0 warms up and is not counted: the first use of fresh RAM for page cache is several times
  // slower on this VM (the host backs guest memory on first touch), for the limit and the dump alike.
  for (let rep = 0; rep <= size.reps; rep++) {
    // The limit and the dump alternate, so both see the same page cache and machine state.
    const lim = limitRun(w.pid, area, buf);
    // The limit of criu-ts's way: reading and writing past the page cache overlap, the slower one bounds.
    if (rep > 0) limits.push(Math.min(lim.readv, lim.direct));
    if (rep > 0) lims.push(lim);
    const dir = join(work, `images-${size.name}-${rep}`);
    const s = performance.now();
    const res = await dump({ pid: w.pid, imagesDir: dir, leaveRunning: true });
    const wall = performance.now() - s;
    if (rep > 0) walls.push(wall);
    const stats = ImageDir.open(dir).one('stats-%s', 'dump').dump;
    if (rep > 0) frozens.push(stats.frozen_time / 1e3);
    pages = Number(stats.pages_written);
    if (pages !== res.pagesWritten || pages * 4096 < need) {
      throw new Error(`dump ${size.name}: ${pages} pages written, expected >= ${need / 4096}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  killAndReap(w.pid);
  started.splice(started.indexOf(w.pid), 1);

  const wallMs = median(walls);
  const frozenMs = median(frozens);
  const gbps = (pages * 4096) / (wallMs / 1e3) / 1e9;
  const limitGbps = median(limits);
  const each = (k) => round(median(lims.map((l) => l[k])));
  const out = {
    wall_ms: round(wallMs, 1),
    frozen_ms: round(frozenMs, 1),
    gbps: round(gbps),
    limit_gbps: round(limitGbps),
    fraction_of_limit: round(gbps / limitGbps),
    readv_gbps: each('readv'),
    page_cache_write_gbps: each('pageCache'),
    direct_write_gbps: each('direct'),
    readv_then_page_cache_write_gbps: each('old'),
    pages_written: pages,
    reps: size.reps,
    criu_4_2_ms: size.criuMs,
  };
  row(
    `dump ${size.name} (API, -R)`,
    out.wall_ms,
    'ms wall',
    `median of ${size.reps} after a warm-up: ${walls.map((v) => v.toFixed(0)).join(' ')}; CRIU 4.2: ${size.criuMs} ms (${(size.criuMs / wallMs).toFixed(1)}x ours)`,
  );
  row(`  frozen (stats-dump frozen_time)`, out.frozen_ms, 'ms', frozens.map((v) => v.toFixed(0)).join(' '));
  row(`  throughput`, out.gbps, 'GB/s', `${pages} pages written`);
  row(
    `  machine limit (min of readv, O_DIRECT write)`,
    out.limit_gbps,
    'GB/s',
    `${limits.map((v) => v.toFixed(2)).join(' ')}; ours = ${(out.fraction_of_limit * 100).toFixed(0)}% of it`,
  );
  row(`    process_vm_readv alone`, out.readv_gbps, 'GB/s', 'into a reused 8 MiB buffer');
  row(`    write() to the page cache`, out.page_cache_write_gbps, 'GB/s', 'fresh file, hot 8 MiB buffer');
  row(`    write() with O_DIRECT`, out.direct_write_gbps, 'GB/s', 'the same, past the page cache');
  row(
    `    readv + page-cache write in turn`,
    out.readv_then_page_cache_write_gbps,
    'GB/s',
    "the old dump's way",
  );
  row(
    `  (memhog fill, for scale)`,
    round(size.mib / 1024 / fillS),
    'GiB/s',
    'first touch + xorshift, in the task',
  );
  return out;
}

async function benchSleep() {
  const pid = await startClean(['/usr/bin/sleep', '1000'], startTraceable, (p) => started.push(p));
  const walls = [];
  for (let rep = 0; rep < SLEEP_REPS + 1; rep++) {
    const dir = join(work, `images-sleep-${rep}`);
    const s = performance.now();
    await dump({ pid, imagesDir: dir, leaveRunning: true });
    if (rep > 0) walls.push(performance.now() - s); // the first one warms up code and codecs
    rmSync(dir, { recursive: true, force: true });
  }
  const cli = [];
  for (let rep = 0; rep < SLEEP_CLI_REPS; rep++) {
    const dir = join(work, `images-sleep-cli-${rep}`);
    const s = performance.now();
    await runCli(['dump', '-t', String(pid), '-D', dir, '-R']);
    cli.push(performance.now() - s);
    rmSync(dir, { recursive: true, force: true });
  }
  killAndReap(pid);
  started.splice(started.indexOf(pid), 1);
  row(
    'dump sleep (API, -R)',
    median(walls).toFixed(1),
    'ms wall',
    `median of ${SLEEP_REPS}; CRIU 4.2: 90 ms`,
  );
  row(
    'dump sleep (CLI, -R)',
    median(cli).toFixed(1),
    'ms wall',
    `median of ${SLEEP_CLI_REPS}, node start-up included: ${cli.map((v) => v.toFixed(0)).join(' ')}`,
  );
  return { api: median(walls), cli: median(cli) };
}

let out;
try {
  await buildWorkloads();
  out = {};
  for (const size of SIZES) out[`dump_${size.name}`] = await benchSize(size);
  const sleep = await benchSleep();
  out.sleep_wall_ms = round(sleep.api, 1);
  out.sleep_cli_wall_ms = round(sleep.cli, 1);
} finally {
  cleanUp(started, work, killAndReap);
}

printReport(`criu-ts dump benchmark (node ${process.version}, images in ${TMP})`, rows, out);
