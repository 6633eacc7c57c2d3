// Benchmark: @criu-ts/bfd's smaps reader/parser vs the naive readFileSync + split('\n') + regex.
//
// A child process maps 10,000 separate 4 KiB regions (alternating PROT_READ and PROT_READ|WRITE so
// that neighbours do not merge), touches them and sleeps; both readers then parse its
// /proc/PID/smaps (read included) several times, alternating, and the medians are compared.
//
//   tsx tools/bench/compel/smaps.ts   ->   {"smaps_speedup": N, "bfd_ms": .., "naive_ms": ..}
//
// Needs the built package: pnpm --filter @criu-ts/bfd build

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ProcDir } from '../../../packages/bfd/dist/index.js';

const VMAS = 10_000;

const C_SOURCE = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
int main(int argc, char **argv) {
  long n = atol(argv[1]);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  char *a = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) { perror("mmap"); return 1; }
  memset(a, 1, n * 4096);
  for (long i = 0; i < n; i += 2)
    if (mprotect(a + i * 4096, 4096, PROT_READ)) { perror("mprotect"); return 1; }
  printf("ready %p\\n", (void *)a);
  fflush(stdout);
  for (;;) pause();
}
`;

const PY_SOURCE = `
import ctypes, signal, sys
n = int(sys.argv[1])
libc = ctypes.CDLL(None)
libc.prctl(1, signal.SIGKILL, 0, 0, 0)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
a = libc.mmap(None, n * 4096, 3, 0x22, -1, 0)
ctypes.memset(a, 1, n * 4096)
for i in range(0, n, 2):
    libc.mprotect(a + i * 4096, 4096, 1)
print("ready", hex(a), flush=True)
while True:
    signal.pause()
`;

/** Start the many-VMA process (C via gcc, else python3). Resolves once it printed "ready". */
async function startWorkload(dir, vmas) {
  const src = join(dir, 'vmas.c');
  const bin = join(dir, 'vmas');
  writeFileSync(src, C_SOURCE);
  const cc = spawnSync('gcc', ['-O2', '-o', bin, src], { stdio: 'ignore' });
  const child =
    cc.status === 0
      ? spawn(bin, [String(vmas)], { stdio: ['ignore', 'pipe', 'inherit'] })
      : spawn('python3', ['-c', PY_SOURCE, String(vmas)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve();
    });
    child.once('exit', (code, sig) =>
      reject(new Error(`workload exited (${code ?? sig}) before it was ready`)),
    );
    child.once('error', reject);
  });
  return child;
}

// ---- the naive reader: what one writes without thinking about allocation ----
const HDR =
  /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)\s*(.*)$/;
const KV = /^(\w+):\s+(\d+)(?: kB)?$/;
const FLAGS = /^VmFlags:\s*(.*)$/;

function naiveSmaps(pid) {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const out = [];
  let cur;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = HDR.exec(line);
    if (m) {
      let path = m[11];
      let deleted = false;
      if (path.endsWith(' (deleted)')) {
        deleted = true;
        path = path.slice(0, -10);
      }
      cur = {
        start: BigInt(`0x${m[1]}`),
        end: BigInt(`0x${m[2]}`),
        prot: (m[3] === 'r' ? 1 : 0) | (m[4] === 'w' ? 2 : 0) | (m[5] === 'x' ? 4 : 0),
        shared: m[6] === 's',
        pgoff: BigInt(`0x${m[7]}`),
        major: Number.parseInt(m[8], 16),
        minor: Number.parseInt(m[9], 16),
        ino: BigInt(m[10]),
        path,
        deleted,
        counters: {},
        vmFlags: [],
      };
      out.push(cur);
      continue;
    }
    m = FLAGS.exec(line);
    if (m) {
      cur.vmFlags = m[1].trim().split(' ');
      continue;
    }
    m = KV.exec(line);
    if (m) cur.counters[m[1]] = Number(m[2]);
  }
  return out;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const ms = (f) => {
  const t = process.hrtime.bigint();
  const r = f();
  return [Number(process.hrtime.bigint() - t) / 1e6, r];
};

/**
 * Run the benchmark. Returns { smaps_speedup, bfd_ms, naive_ms, vmas, iterations }: medians of
 * `iterations` alternating runs of each reader (read + parse of the whole smaps).
 */
export async function measureSmapsSpeedup({ vmas = VMAS, iterations = 11 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'bfd-smaps-bench-'));
  let child;
  let proc;
  try {
    child = await startWorkload(dir, vmas);
    proc = ProcDir.open(child.pid);
    // warm up both (JIT, buffer growth) and check that they see the same memory
    let bfdVmas = 0;
    let naiveVmas = 0;
    for (let i = 0; i < 3; i++) {
      const a = proc.smaps();
      const b = naiveSmaps(child.pid);
      bfdVmas = a.length;
      naiveVmas = b.length;
      const rssA = a.reduce((s, e) => s + e.rss, 0);
      const rssB = b.reduce((s, e) => s + (e.counters.Rss ?? 0), 0);
      if (bfdVmas !== naiveVmas || rssA !== rssB) {
        throw new Error(`readers disagree: ${bfdVmas}/${naiveVmas} VMAs, Rss ${rssA}/${rssB} kB`);
      }
    }
    if (bfdVmas < vmas) throw new Error(`workload has ${bfdVmas} VMAs, expected at least ${vmas}`);
    const bfd = [];
    const naive = [];
    for (let i = 0; i < iterations; i++) {
      bfd.push(ms(() => proc.smaps())[0]);
      naive.push(ms(() => naiveSmaps(child.pid))[0]);
    }
    const bfdMs = median(bfd);
    const naiveMs = median(naive);
    return {
      smaps_speedup: Math.round((naiveMs / bfdMs) * 100) / 100,
      bfd_ms: Math.round(bfdMs * 100) / 100,
      naive_ms: Math.round(naiveMs * 100) / 100,
      vmas: bfdVmas,
      iterations,
    };
  } finally {
    proc?.close();
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await measureSmapsSpeedup();
  console.log(JSON.stringify({ smaps_speedup: r.smaps_speedup, bfd_ms: r.bfd_ms, naive_ms: r.naive_ms }));
}
