// Seeded fuzzing of the image reader: valid images of many kinds, mutated (bit flips, byte
// replacement, truncation at every kind of boundary, inserted and deleted bytes, huge lengths,
// splices), each read in full with readImage, imageToCrit (plain, pretty, --nopl) and, for
// pagemaps, PageMap + readPage. Reading either succeeds or throws an ImageError naming the file
// and an offset inside it; anything else fails the test with the seed and the case.
//
// Rerun one seed: FUZZ_SEED=1234 pnpm --filter @criu-ts/images exec vitest run test/robustness
import { execFile } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageError, imageToCrit, PageMap, pyDumps, readImage } from '../../src/index.js';
import { type Fixture, writeFixtures } from './fixtures.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x1ce_b00c);
const RANDOM_CASES = Number(process.env.FUZZ_CASES ?? 1500);
/** The whole loop (boundary truncations + random mutations) must finish within this. */
const TIME_BOUND_MS = process.env.FUZZ_CASES ? Number.POSITIVE_INFINITY : 30_000;

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../../..');
const critTs = join(repoRoot, 'node_modules/.bin/crit-ts');
const haveCli = existsSync(critTs) && existsSync(join(repoRoot, 'apps/cli/dist/crit-ts.js'));

/** mulberry32: small, fast, and the same sequence on every platform. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Base extends Fixture {
  bytes: Buffer;
  /** Offsets where something starts or ends: magics, length words, payloads, blobs. */
  boundaries: number[];
}

interface Case {
  base: Base;
  what: string;
  bytes: Buffer;
}

interface Outcome {
  ok: boolean;
  error?: ImageError;
}

let tmp: string;
let bases: Base[];
let work: string; // where a case's file goes: a copy of the fixture dir (pages-1.img is there)

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'images-fuzz-'));
  const fixtures = writeFixtures(join(tmp, 'fixtures'));
  work = join(tmp, 'work');
  mkdirSync(work);
  copyFileSync(join(tmp, 'fixtures', 'pages-1.img'), join(work, 'pages-1.img'));
  bases = fixtures.map((f) => {
    const bytes = readFileSync(join(tmp, 'fixtures', f.file));
    const set = new Set<number>([0, 1, 2, 3, 4, 5, 6, 7, 8, bytes.length - 1]);
    // A pagemap has 1001 entries: its first and last few are enough.
    const offs =
      f.entryOffsets.length > 20
        ? [...f.entryOffsets.slice(0, 4), ...f.entryOffsets.slice(-3)]
        : f.entryOffsets;
    for (const at of offs) {
      const len = bytes.readUInt32LE(at);
      for (const d of [0, 1, 2, 3, 4, 5]) set.add(at + d); // inside the length word, payload start
      for (const d of [-1, 0, 1]) set.add(at + 4 + len + d); // payload end, blob start
      set.add(at + 4 + (len >> 1));
    }
    const boundaries = [...set].filter((b) => b >= 0 && b < bytes.length).sort((a, b) => a - b);
    return { ...f, bytes, boundaries };
  });
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** The file a case is written to: pagemaps under their own name, next to pages-1.img. */
const caseFile = (base: Base) => join(work, base.magic === 'PAGEMAP' ? base.file : `case-${base.name}.img`);

/** Runs one read; an ImageError must be about `path` at an offset inside the file. */
function attempt(path: string, size: number, read: () => unknown): Outcome {
  try {
    read();
    return { ok: true };
  } catch (err) {
    if (!(err instanceof ImageError)) throw err;
    if (err.file !== path) throw new Error(`ImageError names ${err.file}, not ${path}: ${err.message}`);
    if (!Number.isSafeInteger(err.offset) || err.offset < 0 || err.offset > size) {
      throw new Error(`ImageError offset ${err.offset} outside the ${size}-byte file: ${err.message}`);
    }
    return { ok: false, error: err };
  }
}

/** Reads a case every way there is; returns readImage's outcome. */
function exercise(c: Case): Outcome {
  const path = caseFile(c.base);
  writeFileSync(path, c.bytes);
  const size = c.bytes.length;
  const first = attempt(path, size, () => readImage(path));
  const others = [
    attempt(path, size, () => pyDumps(imageToCrit(path))),
    attempt(path, size, () => pyDumps(imageToCrit(path, { pretty: true }), 4)),
    attempt(path, size, () => pyDumps(imageToCrit(path, { pretty: true, noPayload: true }), 4)),
  ];
  for (const o of others) {
    // Every reader goes through ImageReader: same result, same error.
    if (o.ok !== first.ok || o.error?.message !== first.error?.message) {
      throw new Error(`readImage and imageToCrit disagree: ${first.error?.message} / ${o.error?.message}`);
    }
  }
  if (c.base.magic === 'PAGEMAP') {
    let pm: PageMap | undefined;
    try {
      pm = PageMap.forTask(work, 42);
    } catch (err) {
      if (!(err instanceof ImageError) || err.file !== path) throw err;
    }
    if (pm) {
      try {
        const addrs = [...pm.runs.slice(0, 5), ...pm.runs.slice(-5)].map((r) => r.vaddr);
        for (const a of [...addrs, 0n, 0x7f0000001000n, (1n << 64n) - 1n]) {
          try {
            pm.readPage(a);
          } catch (err) {
            // A corrupt pages_id names another pages file, which does not exist.
            if (!(err instanceof ImageError) || err.file !== pm.pagesFile) throw err;
          }
        }
      } finally {
        pm.close();
      }
    }
  }
  return first;
}

/** Mutations; each returns a description and the new bytes. */
type Mutation = (b: Base, rnd: () => number) => { what: string; bytes: Buffer };

const int = (rnd: () => number, n: number) => Math.floor(rnd() * n);
const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[int(rnd, xs.length)]!;
const INTERESTING = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x0f, 0x08, 0x0a, 0x12];
const HUGE = [0xffffffff, 0x80000000, 0x7fffffff, 0x04000000, 0x04000001, 0x00100000];

const MUTATIONS: Record<string, Mutation> = {
  bitflips(b, rnd) {
    const out = Buffer.from(b.bytes);
    const flips: number[] = [];
    for (let k = 1 + int(rnd, 8); k > 0; k--) {
      const bit = int(rnd, out.length * 8);
      out[bit >> 3]! ^= 1 << (bit & 7);
      flips.push(bit);
    }
    return { what: `flip bits ${flips.join(',')}`, bytes: out };
  },
  replace(b, rnd) {
    const out = Buffer.from(b.bytes);
    const at: string[] = [];
    for (let k = 1 + int(rnd, 4); k > 0; k--) {
      const i = rnd() < 0.5 ? pick(rnd, b.boundaries) : int(rnd, out.length);
      const v = rnd() < 0.6 ? pick(rnd, INTERESTING) : int(rnd, 256);
      out[i] = v;
      at.push(`${i}=${v}`);
    }
    return { what: `replace bytes ${at.join(',')}`, bytes: out };
  },
  truncate(b, rnd) {
    const at = rnd() < 0.7 ? pick(rnd, b.boundaries) : int(rnd, b.bytes.length);
    return { what: `truncate at ${at}`, bytes: b.bytes.subarray(0, at) };
  },
  insert(b, rnd) {
    const at = rnd() < 0.5 ? pick(rnd, b.boundaries) : int(rnd, b.bytes.length + 1);
    const ins = Buffer.from(Array.from({ length: 1 + int(rnd, 16) }, () => int(rnd, 256)));
    return {
      what: `insert ${ins.toString('hex')} at ${at}`,
      bytes: Buffer.concat([b.bytes.subarray(0, at), ins, b.bytes.subarray(at)]),
    };
  },
  delete(b, rnd) {
    const at = rnd() < 0.5 ? pick(rnd, b.boundaries) : int(rnd, b.bytes.length);
    const n = 1 + int(rnd, 16);
    return {
      what: `delete ${n} bytes at ${at}`,
      bytes: Buffer.concat([b.bytes.subarray(0, at), b.bytes.subarray(at + n)]),
    };
  },
  hugeLength(b, rnd) {
    const out = Buffer.from(b.bytes);
    const at = pick(rnd, b.entryOffsets);
    const len = out.readUInt32LE(at);
    const v = pick(rnd, [...HUGE, out.length, out.length - at - 4, len + 1, len - 1, 0]);
    out.writeUInt32LE(v >>> 0, at);
    return { what: `length at ${at}: ${len} -> ${v >>> 0}`, bytes: out };
  },
  varintBomb(b, rnd) {
    // A field value or length of 2^32-1 or more, somewhere inside a payload.
    const out = Buffer.from(b.bytes);
    const at = pick(rnd, b.entryOffsets);
    const len = out.readUInt32LE(at);
    if (len < 2) return { what: 'varint bomb (no room)', bytes: out };
    const i = at + 4 + 1 + int(rnd, len - 1);
    const bomb = pick(rnd, [
      [0xff, 0xff, 0xff, 0xff, 0x0f],
      [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    ]);
    Buffer.from(bomb).copy(out, i);
    return { what: `varint ${Buffer.from(bomb).toString('hex')} at ${i}`, bytes: out };
  },
  splice(b, rnd) {
    // This image's head with another one's entries: every entry is of the wrong type.
    const other = pick(rnd, bases);
    const cut = pick(rnd, b.entryOffsets);
    const from = pick(rnd, other.entryOffsets);
    return {
      what: `${b.name}[0,${cut}) + ${other.name}[${from},)`,
      bytes: Buffer.concat([b.bytes.subarray(0, cut), other.bytes.subarray(from)]),
    };
  },
};

describe('fuzzed images', () => {
  const failures: Case[] = [];

  it(`reads ${RANDOM_CASES} mutated images and every boundary truncation: ImageError or success (seed ${SEED})`, () => {
    const rnd = prng(SEED);
    const cases: Array<() => Case> = [];
    // Every boundary of every fixture, truncated there.
    for (const base of bases) {
      for (const at of base.boundaries) {
        cases.push(() => ({ base, what: `truncate at boundary ${at}`, bytes: base.bytes.subarray(0, at) }));
      }
    }
    const names = Object.keys(MUTATIONS);
    for (let i = 0; i < RANDOM_CASES; i++) {
      cases.push(() => {
        const base = bases[i % bases.length]!;
        const name = names[int(rnd, names.length)]!;
        const m = MUTATIONS[name]!(base, rnd);
        return { base, what: `${name}: ${m.what}`, bytes: m.bytes };
      });
    }

    const counts = { ok: 0, imageError: 0 };
    const t0 = performance.now();
    let slowest = 0;
    let slowestCase = '';
    for (const [i, make] of cases.entries()) {
      const c = make();
      const t = performance.now();
      let out: Outcome;
      try {
        out = exercise(c);
      } catch (err) {
        const e = err as Error;
        throw new Error(
          `seed ${SEED} case ${i} (${c.base.name}, ${c.what}): ${e.constructor.name}: ${e.message}\n${e.stack}`,
        );
      }
      if (performance.now() - t > slowest) {
        slowest = performance.now() - t;
        slowestCase = `case ${i} (${c.base.name}, ${c.what})`;
      }
      if (out.ok) counts.ok++;
      else {
        counts.imageError++;
        failures.push(c);
      }
    }
    const ms = performance.now() - t0;
    console.log(
      `fuzz seed ${SEED}: ${cases.length} images (${counts.ok} read fine, ${counts.imageError} ImageError) ` +
        `in ${ms.toFixed(0)} ms, slowest ${slowest.toFixed(1)} ms: ${slowestCase}`,
    );
    expect(cases.length).toBeGreaterThanOrEqual(1000);
    expect(counts.imageError).toBeGreaterThan(cases.length / 4);
    expect(ms).toBeLessThan(TIME_BOUND_MS);
    expect(slowest, slowestCase).toBeLessThan(2000);
  });

  it.skipIf(!haveCli)(
    'crit-ts decode of corrupted images: exit 1, one line on stderr, no stack',
    async () => {
      expect(failures.length).toBeGreaterThan(20);
      // About 20 failures, spread over fixtures and mutation kinds.
      const chosen: Case[] = [];
      const seen = new Set<string>();
      for (const c of failures) {
        const key = `${c.base.name}/${c.what.split(':')[0]}`;
        if (seen.has(key) || seen.has(c.base.name)) continue;
        seen.add(key);
        seen.add(c.base.name);
        chosen.push(c);
      }
      for (const c of failures) {
        if (chosen.length >= 20) break;
        const key = `${c.base.name}/${c.what.split(':')[0]}`;
        if (!seen.has(key)) {
          seen.add(key);
          chosen.push(c);
        }
      }
      const dir = join(tmp, 'cli');
      mkdirSync(dir);
      const run = promisify(execFile);
      const results = await Promise.all(
        chosen.map(async (c, i) => {
          const path = join(dir, `bad-${i}-${c.base.name}.img`);
          writeFileSync(path, c.bytes);
          try {
            await run(critTs, ['decode', '-i', path], { timeout: 30_000 });
            return { c, path, code: 0, stdout: '', stderr: '' };
          } catch (err) {
            const e = err as { code: number; stdout: string; stderr: string };
            return { c, path, code: e.code, stdout: e.stdout, stderr: e.stderr };
          }
        }),
      );
      expect(results.length).toBeGreaterThanOrEqual(15);
      for (const r of results) {
        const where = `${r.c.base.name}, ${r.c.what}: ${JSON.stringify(r.stderr)}`;
        expect(r.code, where).toBe(1);
        expect(r.stdout, where).toBe('');
        const lines = r.stderr.split('\n');
        expect(lines, where).toHaveLength(2); // one line and its newline
        expect(lines[1], where).toBe('');
        expect(lines[0]!.startsWith(`crit-ts: ${r.path}: at byte `), where).toBe(true);
        expect(r.stderr, where).not.toMatch(/\n\s+at |Error:|node:internal/);
      }
    },
  );
});
