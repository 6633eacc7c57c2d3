// The codecs generated at build time (src/gen/codecs.ts, by tools/codegen/codecs.mjs) against
// protobufjs's own, built at run time from the same schema: for random messages of every type,
//   - both encode a message to the same bytes, and decode bytes to the same value (same keys in
//     the same order, same bigint/Buffer/number types);
//   - for those bytes damaged (cut, bytes changed, bytes inserted), both decode to the same
//     value or both fail with the same error;
//   - for messages with loosely typed values (numbers for 64-bit fields, strings and floats
//     for 32-bit ones, enum names, unknown enum values, nulls, required fields left out), both
//     write the same bytes or both fail with the same kind of error.
import { inspect } from 'node:util';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, type MessageName, messageType, schemaRoot } from '../../src/index.js';
import { MessageArbs } from './arbitrary.js';

const SEED = Number(process.env.CRIT_COMPAT_SEED ?? 0x5eed2025);
const RUNS = Number(process.env.STATIC_CODECS_RUNS ?? 25);

type Plain = Record<string, unknown>;

/** What decodeMessage returned before the static codecs: protobufjs decode + toObject. */
const TO_OBJECT: protobuf.IConversionOptions = {
  longs: BigInt as unknown as typeof String,
  enums: Number,
  bytes: Buffer as unknown as typeof String,
  defaults: false,
  arrays: true,
};

const show = (v: unknown) => inspect(v, { depth: null, maxArrayLength: null, maxStringLength: null });

function outcome(f: () => unknown): string {
  try {
    return `ok ${show(f())}`;
  } catch (err) {
    const e = err as Error;
    return `${e instanceof TypeError ? 'TypeError' : e instanceof RangeError ? 'RangeError' : 'Error'}: ${e.message}`;
  }
}

const pbDecode = (t: protobuf.Type, b: Uint8Array) => t.toObject(t.decode(b), TO_OBJECT);
const pbEncode = (t: protobuf.Type, v: Plain) => Buffer.from(t.encode(t.fromObject(v)).finish());

function allNames(): string[] {
  const out: string[] = [];
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      if (obj.fullName.startsWith('.google.')) continue;
      if (obj instanceof protobuf.Type) out.push(obj.fullName.slice(1));
      if (obj instanceof protobuf.Namespace || obj instanceof protobuf.Type) walk(obj);
    }
  };
  walk(schemaRoot());
  return out.sort();
}

const names = allNames();
const arbs = new MessageArbs();

/** A few ways to damage an encoding. */
const damage = (bytes: Buffer) =>
  fc.oneof(
    fc.nat(bytes.length).map((n) => bytes.subarray(0, n)),
    fc.tuple(fc.nat(Math.max(0, bytes.length - 1)), fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
      const c = Buffer.from(bytes);
      if (c.length > 0) c[i] = b;
      return c;
    }),
    fc
      .tuple(fc.nat(bytes.length), fc.uint8Array({ minLength: 1, maxLength: 6 }))
      .map(([i, ins]) => Buffer.concat([bytes.subarray(0, i), ins, bytes.subarray(i)])),
  );

/** Replaces some values of a message by loosely typed ones, as a careless caller might pass. */
function loosen(t: protobuf.Type, v: Plain, rnd: () => number): Plain {
  const out: Plain = { ...v };
  for (const f of t.fieldsArray) {
    const rt = f.resolve().resolvedType;
    const x = out[f.name];
    if (rnd() < 0.1) {
      delete out[f.name]; // required ones too: protobufjs writes their default
      continue;
    }
    if (x === undefined) continue;
    if (rt instanceof protobuf.Type) {
      if (f.repeated) out[f.name] = (x as Plain[]).map((e) => loosen(rt, e, rnd));
      else out[f.name] = rnd() < 0.03 ? 'not an object' : loosen(rt, x as Plain, rnd);
      continue;
    }
    const odd = (e: unknown) => oddValue(f, rt, e, rnd);
    out[f.name] = f.repeated ? (x as unknown[]).map(odd) : odd(x);
  }
  return out;
}

function oddValue(f: protobuf.Field, rt: unknown, e: unknown, rnd: () => number): unknown {
  const r = rnd();
  if (r > 0.3) return e;
  if (rt instanceof protobuf.Enum) {
    const names = Object.keys(rt.values);
    return r < 0.1 ? names[Math.floor(rnd() * names.length)] : r < 0.2 ? 12345 : e;
  }
  if (typeof e === 'bigint') {
    const n = Number(e);
    return r < 0.1 ? n : r < 0.15 ? -n - 0.5 : r < 0.2 ? String(e) : r < 0.25 ? 2 ** 70 : -(2n ** 65n) + e;
  }
  if (typeof e === 'number' && f.type !== 'double' && f.type !== 'float') {
    return r < 0.1 ? e + 0.75 : r < 0.2 ? String(e) : r < 0.25 ? -e : 2 ** 40 + e;
  }
  if (typeof e === 'boolean') return r < 0.15 ? 1 : '';
  if (typeof e === 'string') return r < 0.15 ? 42 : e;
  return e;
}

describe('static codecs agree with protobufjs (every message type)', () => {
  it('sees every message type', () => {
    expect(names.length).toBeGreaterThan(150);
  });

  it.each(names)('%s: same bytes, same values, same errors', (name) => {
    const t = messageType(name);
    const n = name as MessageName;
    fc.assert(
      fc.property(
        arbs.message(t).chain((value) => {
          const bytes = pbEncode(t, value as Plain);
          return fc.tuple(fc.constant(value as Plain), fc.constant(bytes), damage(bytes), fc.integer());
        }),
        ([value, bytes, damaged, seed]) => {
          expect(Buffer.from(encodeMessage(n, value as never)).toString('hex')).toBe(bytes.toString('hex'));
          expect(show(decodeMessage(n, bytes))).toBe(show(pbDecode(t, bytes)));
          expect(outcome(() => decodeMessage(n, damaged))).toBe(outcome(() => pbDecode(t, damaged)));
          let s = seed;
          const rnd = () => {
            s = (Math.imul(s, 1103515245) + 12345) | 0;
            return (s >>> 8) / 2 ** 24;
          };
          const loose = loosen(t, value, rnd);
          const ours = outcome(() => Buffer.from(encodeMessage(n, loose as never)).toString('hex'));
          const theirs = outcome(() => pbEncode(t, loose).toString('hex'));
          // Both fail with the same kind of error (protobufjs may word a null sub-message differently).
          if (theirs.startsWith('ok') || ours.startsWith('ok')) expect(ours).toBe(theirs);
          else expect(ours.split(':')[0]).toBe(theirs.split(':')[0]);
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('decodes a Uint8Array (not a Buffer) the same way', () => {
    const t = messageType('reg_file_entry');
    const bytes = pbEncode(t, {
      id: 1,
      flags: 2,
      pos: 3n,
      fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 },
      name: '/tmp/\u00e9',
    });
    const plain = new Uint8Array(bytes);
    expect(show(decodeMessage('reg_file_entry', plain))).toBe(show(pbDecode(t, plain)));
  });

  it('merges a message field seen twice, and drops unknown enum values, as protobufjs', () => {
    const t = messageType('core_entry');
    // mtype=1, tc{exit_code=5}, mtype=77 (unknown: dropped), tc{personality=6} (merged)
    const b = Buffer.from([0x08, 1, 0x1a, 2, 0x10, 5, 0x08, 77, 0x1a, 2, 0x18, 6]);
    expect(outcome(() => decodeMessage('core_entry', b))).toBe(outcome(() => pbDecode(t, b)));
  });
});
