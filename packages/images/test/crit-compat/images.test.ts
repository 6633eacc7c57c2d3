// Every image kind crit 3.17 can read, written with random entries by our ImageWriter, then:
//   (a) crit decode (plain and --pretty) and crit show (with and without --nopl) of our bytes are
//       exactly our imageToCrit + pyDumps text;
//   (b) crit encode of crit's JSON (plain and pretty) gives exactly our bytes, and so does our
//       critToImage of crit's JSON.
// All crit work runs in one Python process (tools/crit-compat/batch.py).
//
// The entries come from fast-check arbitraries built from our schema, limited to the fields and
// enum values crit 3.17 knows (tools/crit-compat/dump_descriptors.py), sampled with a fixed seed:
// set CRIT_COMPAT_SEED to try others. Every failure message names the seed, kind and image.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  critToImage,
  IMAGE_KINDS,
  type ImageKind,
  imageToCrit,
  type MagicName,
  type PyJson,
  pyDumps,
  pyParse,
  writeImage,
} from '../../src/index.js';
import { type Entry, MessageArbs, sampleOne } from './arbitrary.js';
import {
  type CritJob,
  type CritResult,
  haveCrit,
  loadCritKnown,
  readText,
  runBatch,
  skipReason,
  tempDir,
} from './crit.js';

const SEED = Number(process.env.CRIT_COMPAT_SEED ?? 0x5eed2025);
const IMAGES_PER_KIND = 3;

/** Kinds crit 3.17 has no handler for (images.py `handlers`, magic.py). */
const NOT_IN_CRIT = ['BINFMT_MISC', 'PIDFD', 'SIGNAL'];

/** crit 3.17 calls pagemap_entry field 2 nr_pages; CRIU 4.2 (and we) call it compat_nr_pages. */
function renameKey(json: PyJson, from: string, to: string): PyJson {
  const img = json as { entries: Array<Record<string, PyJson>> };
  img.entries = img.entries.map((e) =>
    Object.fromEntries(Object.entries(e).map(([k, v]) => [k === from ? to : k, v])),
  );
  return json;
}

interface Image {
  kind: ImageKind;
  index: number;
  seed: number;
  file: string;
  entries: Entry[];
  /** Paths of crit's outputs and results of crit's jobs, by name. */
  out: Record<'plain' | 'pretty' | 'show' | 'nopl' | 'encPlain' | 'encPretty', string>;
  res: Record<string, CritResult>;
}

describe.skipIf(!haveCrit)('crit 3.17 reads and writes our images, kind by kind', () => {
  let tmp: ReturnType<typeof tempDir> | undefined;
  const images = new Map<MagicName, Image[]>();
  let critKinds: MagicName[] = [];
  const stats = { images: 0, entries: 0, jobs: 0, ms: 0 };

  beforeAll(() => {
    const t0 = Date.now();
    tmp = tempDir('crit-compat-');
    const handlersFile = path.join(tmp.path, 'handlers.json');
    runBatch([{ op: 'handlers', out: handlersFile }]);
    const handlers = new Set(JSON.parse(readText(handlersFile)) as string[]);
    const ours = Object.keys(IMAGE_KINDS).sort() as MagicName[];
    critKinds = ours.filter((k) => handlers.has(k));

    const arbs = new MessageArbs({ known: loadCritKnown() });
    const jobs: CritJob[] = [];
    const jobOf: Array<[Image, string]> = [];
    const add = (img: Image, name: string, job: CritJob) => {
      jobs.push(job);
      jobOf.push([img, name]);
    };
    for (const [k, magic] of ours.entries()) {
      if (!handlers.has(magic)) continue;
      const kind = IMAGE_KINDS[magic]!;
      const list: Image[] = [];
      for (let i = 0; i < IMAGES_PER_KIND; i++) {
        const seed = SEED + 1000 * k + i;
        // The first image of a kind has one entry, the others up to five.
        const arb = i === 0 ? arbs.entries(kind, 1, 1) : arbs.entries(kind, 5, 2);
        const entries = sampleOne(arb, seed);
        const file = path.join(tmp!.path, `${magic}-${i}.img`);
        writeImage(file, magic, entries);
        const base = file.slice(0, -'.img'.length);
        const out = {
          plain: `${base}.crit.json`,
          pretty: `${base}.crit-pretty.json`,
          show: `${base}.crit-show.json`,
          nopl: `${base}.crit-nopl.json`,
          encPlain: `${base}.crit-enc-plain.img`,
          encPretty: `${base}.crit-enc-pretty.img`,
        };
        const img: Image = { kind, index: i, seed, file, entries, out, res: {} };
        add(img, 'plain', { op: 'decode', in: file, out: out.plain, pretty: false });
        add(img, 'pretty', { op: 'decode', in: file, out: out.pretty, pretty: true });
        add(img, 'show', { op: 'show', in: file, out: out.show });
        add(img, 'nopl', { op: 'show', in: file, out: out.nopl, nopl: true });
        add(img, 'encPlain', { op: 'encode', in: out.plain, out: out.encPlain });
        add(img, 'encPretty', { op: 'encode', in: out.pretty, out: out.encPretty });
        list.push(img);
        stats.images++;
        stats.entries += entries.length;
      }
      images.set(magic, list);
    }
    const results = runBatch(jobs);
    for (const [i, [img, name]] of jobOf.entries()) img.res[name] = results[i]!;
    stats.jobs = jobs.length + 1;
    stats.ms = Date.now() - t0;
  });

  afterAll(() => {
    tmp?.remove();
    console.log(
      `crit-compat (seed ${SEED}): ${critKinds.length} kinds, ${stats.images} images, ` +
        `${stats.entries} entries, ${stats.jobs} crit jobs in one process; set-up took ${stats.ms} ms`,
    );
  });

  it('covers every kind of ours that crit has a handler for', () => {
    const ours = Object.keys(IMAGE_KINDS).sort();
    expect(ours.filter((k) => !critKinds.includes(k as MagicName))).toEqual(NOT_IN_CRIT);
    expect(critKinds.length).toBe(ours.length - NOT_IN_CRIT.length);
  });

  const kinds = (Object.keys(IMAGE_KINDS) as MagicName[]).filter((k) => !NOT_IN_CRIT.includes(k)).sort();

  describe.each(kinds)('%s', (magic) => {
    const each = (fn: (img: Image, where: string) => void) => {
      const list = images.get(magic);
      expect(list, `${magic} was not generated`).toBeDefined();
      for (const img of list!) fn(img, `seed ${img.seed}, ${magic} image ${img.index} (${img.file})`);
    };
    const isPagemap = magic === 'PAGEMAP';
    const ourText = (file: string, pretty: boolean, noPayload = false) => {
      let json: PyJson = imageToCrit(file, { pretty, noPayload });
      if (isPagemap) json = renameKey(json, 'compat_nr_pages', 'nr_pages');
      return pyDumps(json, pretty ? 4 : undefined);
    };
    const ok = (img: Image, name: string, where: string) => {
      const r = img.res[name]!;
      expect(r.ok, `${where}: crit ${name} failed: ${r.error}\n${r.stderr ?? ''}${r.trace ?? ''}`).toBe(true);
    };

    it('crit decode of our image is our JSON, plain and --pretty', () => {
      each((img, where) => {
        ok(img, 'plain', where);
        ok(img, 'pretty', where);
        expect(ourText(img.file, false), `${where}: plain`).toBe(readText(img.out.plain));
        expect(ourText(img.file, true), `${where}: --pretty`).toBe(readText(img.out.pretty));
      });
    });

    it('crit show of our image is our JSON, with and without --nopl', () => {
      each((img, where) => {
        ok(img, 'show', where);
        expect(`${ourText(img.file, true)}\n`, `${where}: show`).toBe(readText(img.out.show));
        if (magic === 'BPFMAP_DATA') {
          // crit 3.17 bug: bpfmap_data_extra_handler.skip() reads pload.bytes, a field that
          // bpfmap_data_entry does not have, so `crit show --nopl` of bpfmap-data always fails.
          expect(img.res.nopl!.error).toMatch(/^AttributeError: .*bytes/);
          return;
        }
        ok(img, 'nopl', where);
        let ours = `${ourText(img.file, true, true)}\n`;
        if (magic === 'TCP_STREAM' && img.entries.length > 1) {
          // crit 3.17 bug: tcp_stream_extra_handler.skip() seeks to the end of the file, so
          // `crit show --nopl` shows only the first entry of a tcp-stream image.
          const json = imageToCrit(img.file, { pretty: true, noPayload: true }) as { entries: PyJson[] };
          json.entries = json.entries.slice(0, 1);
          ours = `${pyDumps(json, 4)}\n`;
        }
        expect(ours, `${where}: show --nopl`).toBe(readText(img.out.nopl));
      });
    });

    it("crit encode of crit's JSON is our image, plain and pretty", () => {
      each((img, where) => {
        const bytes = readFileSync(img.file);
        for (const name of ['encPlain', 'encPretty'] as const) {
          if (
            (magic === 'BPFMAP_DATA' || magic === 'IPCNS_SHM') &&
            img.entries.some((e) => (e.extra as Buffer).length > 0)
          ) {
            // crit 3.17 bug: bpfmap_data_extra_handler.dump() and ipc_shm_handler.dump() pass the
            // JSON str to base64.decodebytes(), which wants bytes: crit cannot encode these kinds
            // unless every blob is empty (then the "if extra" in entry_handler.dump skips them).
            expect(img.res[name]!.error, where).toMatch(/^TypeError: expected bytes-like object/);
            continue;
          }
          ok(img, name, where);
          expect(readFileSync(img.out[name]).equals(bytes), `${where}: crit ${name}`).toBe(true);
        }
      });
    });

    it("our critToImage of crit's JSON is our image, plain and pretty", () => {
      each((img, where) => {
        const bytes = readFileSync(img.file);
        for (const [name, file] of [
          ['plain', img.out.plain],
          ['pretty', img.out.pretty],
        ] as const) {
          let json = pyParse(readText(file!));
          if (isPagemap) json = renameKey(json, 'nr_pages', 'compat_nr_pages');
          const out = `${img.file}.ours-from-${name}.img`;
          critToImage(json, out);
          expect(readFileSync(out).equals(bytes), `${where}: critToImage of crit's ${name} JSON`).toBe(true);
        }
      });
    });
  });
});

if (!haveCrit) {
  describe('crit 3.17 reads and writes our images, kind by kind', () => {
    it.skip(skipReason, () => {});
  });
}
