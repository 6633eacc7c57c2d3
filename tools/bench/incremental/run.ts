#!/usr/bin/env node
// Benchmark of incremental dumps (run as root, after `pnpm build`): `pnpm bench:incremental`.
// A 2 GiB process (dirtier, burst mode: every page written once at start) is dumped whole, as a full
// dump does it; a second one of the same size is pre-dumped, rewrites 1% of its pages (one burst), and
// is dumped with --track-mem --prev-images-dir: only the pages written since the pre-dump are read, the
// rest are PE_PARENT entries. Both final dumps kill their task (CRIU's default). Reported: wall time of
// dump() and frozen time (frozen_time of stats-dump) of the full dump, of the pre-dump and of the final
// incremental dump, and the ratios (the goal: under 10% of the full dump for both). `--mib N` changes the
// size (default 2048), `--percent P` the share rewritten (default 1). One run, no repetition: the figures
// of a loaded machine vary. Prints a table, then as the LAST line one JSON object.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { buildWorkloads, workloadPath } from '../../workloads/index.js';
import { readLines, waitForLine } from '../../workloads/report.js';
import { importBuilt, requireBuilt, startClean, table } from '../common.js';
import { cleanUp, printReport } from '../report.js';

requireBuilt(['sys', 'bfd', 'compel', 'images', 'core']);
const { dump, preDump } = await importBuilt('core');
const { killAndReap, startTraceable } = await importBuilt('compel');

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MIB = arg('mib', 2048);
const PERCENT = arg('percent', 1);

const work = mkdtempSync('/tmp/criu-ts-bench-incr-');
const started: number[] = [];
const { rows, row } = table();
const ms = (ns: bigint) => Number(ns / 1000n) / 1000;
const round = (v: number, d = 1) => Number(v.toFixed(d));

async function startDirtier(name: string): Promise<{ pid: number; report: string }> {
  const report = join(work, `${name}.report`);
  const pid = await startClean(
    [workloadPath('dirtier'), report, String(MIB), 'burst', String(PERCENT)],
    startTraceable,
    (p) => started.push(p),
  );
  await waitForLine(report, /^AREA /, { pid, timeoutMs: 300_000 });
  return { pid, report };
}

async function timed(fn: () => Promise<any>): Promise<{ wallMs: number; r: any }> {
  const t = process.hrtime.bigint();
  const r = await fn();
  return { wallMs: ms(process.hrtime.bigint() - t), r };
}

try {
  await buildWorkloads();
  // full dump
  const a = await startDirtier('full');
  const full = await timed(() => dump({ pid: a.pid, imagesDir: join(work, 'full') }));
  const fullFrozen = full.r.stats.frozen_time / 1000;
  row('full dump: wall', round(full.wallMs), 'ms', `${full.r.pagesWritten} pages`);
  row('full dump: frozen', round(fullFrozen), 'ms', 'stats-dump frozen_time');

  // pre-dump, 1% rewritten, final dump
  const b = await startDirtier('incr');
  const pre = await timed(() => preDump({ pid: b.pid, imagesDir: join(work, 'pre1') }));
  row('pre-dump: wall', round(pre.wallMs), 'ms', `${pre.r.pagesWritten} pages, read after the thaw`);
  row('pre-dump: frozen', round(pre.r.stats.frozen_time / 1000), 'ms', 'tracking armed, page list made');
  const n = readLines(b.report).length;
  process.kill(b.pid, 'SIGUSR2');
  const burst = Number(
    (await waitForLine(b.report, /^BURST /, { pid: b.pid, fromLine: n, timeoutMs: 120_000 })).split(' ')[1],
  );
  const inc = await timed(() =>
    dump({ pid: b.pid, imagesDir: join(work, 'dump'), trackMem: true, prevImagesDir: '../pre1' }),
  );
  const incFrozen = inc.r.stats.frozen_time / 1000;
  row(
    'final dump --track-mem: wall',
    round(inc.wallMs),
    'ms',
    `${inc.r.stats.pages_written} written, ${inc.r.stats.pages_skipped_parent} PE_PARENT (${burst} rewritten)`,
  );
  row('final dump --track-mem: frozen', round(incFrozen), 'ms', 'stats-dump frozen_time');
  row('final/full: wall', round((100 * inc.wallMs) / full.wallMs), '%', 'goal: under 10');
  row('final/full: frozen', round((100 * incFrozen) / fullFrozen), '%', 'goal: under 10');
  printReport(
    `criu-ts incremental dump benchmark: ${MIB} MiB, ${PERCENT}% rewritten (node ${process.version})`,
    rows,
    {
      mib: MIB,
      percent: PERCENT,
      full: { wall_ms: round(full.wallMs), frozen_ms: round(fullFrozen), pages: full.r.pagesWritten },
      pre_dump: {
        wall_ms: round(pre.wallMs),
        frozen_ms: round(pre.r.stats.frozen_time / 1000),
        pages: pre.r.pagesWritten,
      },
      final: {
        wall_ms: round(inc.wallMs),
        frozen_ms: round(incFrozen),
        pages_written: Number(inc.r.stats.pages_written),
        pages_skipped_parent: Number(inc.r.stats.pages_skipped_parent),
      },
      wall_ratio: round(inc.wallMs / full.wallMs, 3),
      frozen_ratio: round(incFrozen / fullFrozen, 3),
    },
  );
} finally {
  cleanUp(started, work, killAndReap);
}
