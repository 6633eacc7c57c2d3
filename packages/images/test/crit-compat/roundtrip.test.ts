// Round-trip properties of our codecs, for random messages of every message type of the image
// schemas (all fields, CRIU 4.2's newer ones included); no crit needed:
//   - encode -> decode gives the same value;
//   - toCrit -> pyDumps -> pyParse -> fromCrit -> encode gives the same bytes, plain and pretty;
//   - pagemap_entry: the hand-written codec (ImageWriter/ImageReader) agrees with protobufjs.
// fast-check prints the seed and the shrunk counterexample of a failure; set CRIT_COMPAT_SEED
// to replay a run.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  critToImage,
  decodeMessage,
  decodePagemapEntry,
  encodeMessage,
  encodePagemapEntryInto,
  fromCrit,
  imageToCrit,
  type MessageName,
  messageType,
  type PyJson,
  pyDumps,
  pyParse,
  readImage,
  schemaRoot,
  toCrit,
  writeImage,
} from '../../src/index.js';
import { MessageArbs } from './arbitrary.js';
import { tempDir } from './crit.js';

const SEED = Number(process.env.CRIT_COMPAT_SEED ?? 0x5eed2025);
const RUNS = 40;

function allMessageTypes(): protobuf.Type[] {
  const out: protobuf.Type[] = [];
  const walk = (ns: protobuf.NamespaceBase) => {
    for (const obj of ns.nestedArray) {
      if (obj.fullName.startsWith('.google.')) continue;
      if (obj instanceof protobuf.Type) out.push(obj);
      if (obj instanceof protobuf.Namespace || obj instanceof protobuf.Type) walk(obj);
    }
  };
  walk(schemaRoot());
  return out.sort((a, b) => a.fullName.localeCompare(b.fullName));
}

const types = allMessageTypes();
const names = types.map((t) => t.fullName.replace(/^\./, ''));
const arbs = new MessageArbs();

/** Our crit JSON of a message, written and read back as text, to a message again. */
function viaCritJson(type: protobuf.Type, value: Record<string, unknown>, pretty: boolean) {
  const text = pyDumps(toCrit(type, value, pretty), pretty ? 4 : undefined);
  return fromCrit(type, pyParse(text) as Record<string, PyJson>);
}

describe('round trips of every message type (fast-check)', () => {
  it('sees every message type of the schemas', () => {
    expect(types.length).toBeGreaterThan(150);
    for (const n of ['core_entry', 'pagemap_entry', 'pidfd_entry', 'tcp_opts_entry', 'aa_namespace']) {
      expect(names).toContain(n);
    }
  });

  it.each(names)('%s: encode -> decode, and toCrit -> fromCrit -> encode', (name) => {
    const type = messageType(name);
    const n = name as MessageName;
    fc.assert(
      fc.property(arbs.message(type), (value) => {
        const bytes = Buffer.from(encodeMessage(n, value as never));
        expect(decodeMessage(n, bytes)).toEqual(value);
        for (const pretty of [false, true]) {
          const back = viaCritJson(type, value, pretty);
          const again = Buffer.from(encodeMessage(n, back as never));
          expect(again.toString('hex'), pretty ? 'pretty' : 'plain').toBe(bytes.toString('hex'));
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe('pagemap_entry: our fast codec and CRIU 4.2 nr_pages (field 5)', () => {
  let tmp: ReturnType<typeof tempDir> | undefined;
  beforeAll(() => {
    tmp = tempDir('crit-compat-pm-');
  });
  afterAll(() => tmp?.remove());

  const entry = arbs.message('pagemap_entry');

  it('the hand-written codec writes and reads what protobufjs does', () => {
    fc.assert(
      fc.property(entry, (e) => {
        const generic = Buffer.from(encodeMessage('pagemap_entry', e as never));
        const out = Buffer.alloc(64);
        const end = encodePagemapEntryInto(e as never, out, 0);
        expect(out.subarray(0, end).toString('hex')).toBe(generic.toString('hex'));
        expect(decodePagemapEntry(generic)).toEqual(decodeMessage('pagemap_entry', generic));
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('nr_pages (uint64, beyond 2^32 too) survives ImageWriter -> ImageReader and crit JSON', () => {
    const image = fc.tuple(
      arbs.message('pagemap_head'),
      fc.array(
        fc.record({
          vaddr: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          compat_nr_pages: fc.constantFrom(0, 1, 2 ** 32 - 1),
          flags: fc.integer({ min: 0, max: 7 }),
          nr_pages: fc.oneof(
            fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
            fc.constantFrom(2n ** 32n, 2n ** 64n - 1n),
          ),
        }),
        { minLength: 1, maxLength: 6 },
      ),
    );
    let k = 0;
    fc.assert(
      fc.property(image, ([head, runs]) => {
        const file = path.join(tmp!.path, `pagemap-${k++}.img`);
        writeImage(file, 'PAGEMAP', [{ message: head }, ...runs.map((message) => ({ message }))]);
        const read = readImage(file).entries.map((e) => e.message);
        expect(read).toEqual([head, ...runs]);
        const bytes = readFileSync(file);
        for (const pretty of [false, true]) {
          const json = pyParse(pyDumps(imageToCrit(file, { pretty }), pretty ? 4 : undefined));
          critToImage(json, `${file}.back`);
          expect(readFileSync(`${file}.back`).equals(bytes), pretty ? 'pretty' : 'plain').toBe(true);
        }
      }),
      { seed: SEED, numRuns: 50 },
    );
  });
});
