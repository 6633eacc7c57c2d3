import type protobuf from 'protobufjs/light.js';
import { protobufjs } from '../schema/index.js';
import { decodeBytes, encodeBytes } from './base64.js';
import { DICT_MAPS, FLAG_MAPS } from './flag-maps.js';
import type { PyJson } from './pyjson.js';
import { qpDecode, qpEncode } from './quopri.js';

/**
 * Converts decoded messages to the dictionaries crit prints, and back. The rules are crit's
 * (its pb2dict.py): fields in field-number order, only those set; enums by name; bytes in
 * base64 (or quoted-printable where the field says conv = "unix_name"); with --pretty,
 * numbers shown as hex, flag names, device numbers and IP addresses where the (criu) field
 * options ask for it. A hex option on a message field makes every number inside it hex.
 */
type Plain = Record<string, unknown>;
type Field = protobuf.Field;

const opt = (f: Field, name: string): unknown => f.options?.[`(criu).${name}`];

const INT_TYPES = new Set([
  'int32',
  'uint32',
  'sint32',
  'fixed32',
  'sfixed32',
  'int64',
  'uint64',
  'sint64',
  'fixed64',
  'sfixed64',
]);
const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

const SORTED = new WeakMap<protobuf.Type, Field[]>();

function sortedFields(type: protobuf.Type): Field[] {
  let fields = SORTED.get(type);
  if (!fields) {
    fields = [...type.fieldsArray].sort((a, b) => a.id - b.id);
    SORTED.set(type, fields);
  }
  return fields;
}

export function toCrit(
  type: protobuf.Type,
  msg: Plain,
  pretty: boolean,
  isHex = false,
): Record<string, PyJson> {
  const out: Record<string, PyJson> = {};
  for (const f of sortedFields(type)) {
    const v = msg[f.name];
    if (v === undefined || v === null) continue;
    if (f.repeated) {
      const list = v as unknown[];
      if (list.length === 0) continue;
      out[f.name] =
        pretty && opt(f, 'ipadd')
          ? [ipString(list.map(Number))]
          : list.map((x) => castOut(f, x, pretty, isHex));
    } else {
      out[f.name] = castOut(f, v, pretty, isHex);
    }
  }
  return out;
}

function castOut(f: Field, v: unknown, pretty: boolean, isHex: boolean): PyJson {
  const hex = isHex || opt(f, 'hex') === true;
  const rt = f.resolvedType;
  if (rt instanceof protobufjs().Type) return toCrit(rt, v as Plain, pretty, hex);
  if (rt instanceof protobufjs().Enum) return rt.valuesById[v as number] ?? null;
  if (f.type === 'bytes') {
    const bytes = v as Uint8Array;
    return opt(f, 'conv') === 'unix_name' ? qpEncode(bytes) : encodeBytes(bytes);
  }
  if (f.type === 'bool') return Boolean(v);
  if (f.type === 'string') return String(v);
  if (f.type === 'double' || f.type === 'float') return Number(v);
  const n = BigInt(v as bigint | number);
  if (!pretty) return n;
  if (hex) return hexString(n);
  if (opt(f, 'dev')) return devString(n, opt(f, 'odev') === true);
  const flags = opt(f, 'flags');
  if (typeof flags === 'string') {
    const map = FLAG_MAPS[flags];
    return map ? flagsString(n, map) : hexString(n);
  }
  const dict = opt(f, 'dict');
  if (typeof dict === 'string') return DICT_MAPS[dict]?.[f.name]?.[Number(n)] ?? n;
  return n;
}

const hexString = (n: bigint) => (n < 0n ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`);

function flagsString(value: bigint, map: Array<[string, number]>): string {
  const names = map.filter(([, bit]) => (value & BigInt(bit)) !== 0n).map(([name]) => name);
  const rest = map.reduce((acc, [, bit]) => acc & ~BigInt(bit), value);
  if (rest !== 0n) names.push(hexString(rest));
  return names.join(' | ');
}

function devString(v: bigint, old: boolean): string {
  if (old) {
    // glibc's major()/minor() of a 64-bit dev_t.
    const major = ((v >> 8n) & 0xfffn) | ((v >> 32n) & ~0xfffn);
    const minor = (v & 0xffn) | ((v >> 12n) & ~0xffn);
    return `${major}:${minor}`;
  }
  // The kernel's own encoding: 20 bits of minor.
  return `${v >> 20n}:${v & 0xfffffn}`;
}

/** IPv4 from one network-order word, IPv6 from four, as crit prints them. */
function ipString(words: number[]): string {
  const bytes = Buffer.alloc(words.length === 1 ? 4 : 16);
  for (const [i, w] of words.slice(0, bytes.length / 4).entries()) bytes.writeUInt32LE(w >>> 0, 4 * i);
  if (bytes.length === 4) return [...bytes].join('.');
  return ipv6Compressed(bytes);
}

function ipv6Compressed(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i));
  // Python prints IPv4-mapped and other addresses the same way here: longest zero run as '::'.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  const left = hex.slice(0, best).join(':');
  const right = hex.slice(best + bestLen).join(':');
  return `${left}::${right}`;
}

/** The inverse of toCrit: crit's JSON dictionary to a plain message ready for encoding. */
export function fromCrit(type: protobuf.Type, dict: Record<string, PyJson>): Plain {
  const out: Plain = {};
  for (const f of type.fieldsArray) {
    if (!(f.name in dict)) continue;
    const v = dict[f.name]!;
    if (f.repeated) {
      const list = v as PyJson[];
      if (list.length > 0 && typeof list[0] === 'string' && opt(f, 'ipadd')) out[f.name] = ipWords(list[0]);
      else out[f.name] = list.map((x) => castIn(f, x));
    } else {
      out[f.name] = castIn(f, v);
    }
  }
  return out;
}

function castIn(f: Field, v: PyJson): unknown {
  const rt = f.resolvedType;
  if (rt instanceof protobufjs().Type) return fromCrit(rt, v as Record<string, PyJson>);
  if (rt instanceof protobufjs().Enum) {
    // By name only, as crit (values_by_name); protobufjs's `values` also maps numbers to names.
    const n = typeof v === 'string' && Object.hasOwn(rt.values, v) ? rt.values[v] : undefined;
    if (typeof n !== 'number') throw new Error(`field ${f.name}: unknown ${rt.name} value ${pyRepr(v)}`);
    return n;
  }
  if (f.type === 'bytes') {
    if (typeof v !== 'string') throw new Error(`field ${f.name}: bytes must be a string, not ${pyRepr(v)}`);
    return opt(f, 'conv') === 'unix_name' ? qpDecode(v) : decodeBytes(v);
  }
  if (f.type === 'bool') return pyTruthy(v);
  if (f.type === 'string') return String(v);
  if (f.type === 'double' || f.type === 'float') return Number(v);
  if (!INT_TYPES.has(f.type)) throw new Error(`field ${f.name} has unsupported type ${f.type}`);
  const n =
    typeof v === 'string'
      ? intFromString(f, v)
      : typeof v === 'bigint'
        ? v
        : BigInt(Math.trunc(typeof v === 'boolean' ? Number(v) : (v as number)));
  const [min, max] = INT_RANGES[f.type]!;
  if (n < min || n > max) throw new Error(`field ${f.name}: Value out of range: ${n}`);
  return LONG_TYPES.has(f.type) ? n : Number(n);
}

/** What python protobuf accepts when crit sets an integer field (it raises ValueError otherwise). */
const INT_RANGES: Record<string, [bigint, bigint]> = Object.fromEntries(
  [...INT_TYPES].map((t) => {
    const bits = t.endsWith('64') ? 64n : 32n;
    const signed = !t.startsWith('u') && !t.startsWith('fixed');
    return [t, signed ? [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n] : [0n, (1n << bits) - 1n]];
  }),
);

const pyRepr = (v: PyJson) => (typeof v === 'bigint' ? String(v) : JSON.stringify(v));

/** Python's truth of a JSON value: crit tests bools and blobs with it. */
export function pyTruthy(v: PyJson): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v) && v !== 0n;
}

function intFromString(f: Field, s: string): bigint {
  const dev = opt(f, 'dev');
  if (dev) {
    const [maj, min] = s.split(':').map((x) => pyInt(x, 10));
    if (maj === undefined || min === undefined) throw new Error(`field ${f.name}: bad device ${s}`);
    if (opt(f, 'odev') === true) {
      return ((maj & 0xfffn) << 8n) | ((maj & ~0xfffn) << 32n) | (min & 0xffn) | ((min & ~0xffn) << 12n);
    }
    return (maj << 20n) | min;
  }
  const flags = opt(f, 'flags');
  const map = typeof flags === 'string' ? FLAG_MAPS[flags] : undefined;
  if (map) {
    if (s === '') return 0n;
    return s
      .split('|')
      .map((x) => x.trim())
      .reduce((acc, name) => {
        const bit = map.find(([n]) => n === name)?.[1];
        return acc + (bit !== undefined ? BigInt(bit) : pyInt(name));
      }, 0n);
  }
  const dict = opt(f, 'dict');
  if (typeof dict === 'string') {
    const names = DICT_MAPS[dict]?.[f.name] ?? {};
    const hit = Object.entries(names).find(([, name]) => name === s);
    if (hit) return BigInt(hit[0]);
  }
  return pyInt(s);
}

/**
 * Python's int(s, 0) (decimal, 0x, 0o or 0b) or int(s, 10): sign, surrounding whitespace and
 * single underscores between digits allowed; in base 0 a decimal number has no leading zeros.
 */
export function pyInt(text: string, base: 0 | 10 = 0): bigint {
  const s = text.trim();
  const m = (base === 10 ? INT10 : INT0).exec(s);
  if (!m) throw new Error(`invalid literal for int() with base ${base}: ${JSON.stringify(text)}`);
  const body = m[2]!.replace(/_/g, '');
  const prefix = body.slice(0, 2).toLowerCase();
  const n =
    prefix === '0o'
      ? BigInt(`0o${body.slice(2)}`)
      : base === 10
        ? BigInt(body.replace(/^0+(?=.)/, ''))
        : BigInt(body);
  return m[1] === '-' ? -n : n;
}

const INT0 = /^([+-]?)(0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|[1-9](?:_?\d)*|0(?:_?0)*)$/;
const INT10 = /^([+-]?)(\d(?:_?\d)*)$/;

/** crit's ip_address(): IPv4 as one network-order word, IPv6 as four. */
function ipWords(text: string): number[] {
  if (!text.includes(':')) return [Buffer.from(ipv4Bytes(text)).readUInt32LE(0)];
  const b = ipv6Bytes(text);
  return [0, 1, 2, 3].map((i) => b.readUInt32LE(4 * i));
}

/** Python's IPv4Address: four decimal octets, no leading zeros. */
function ipv4Bytes(text: string): number[] {
  const parts = text.split('.');
  const bad = (why: string) =>
    new Error(`${JSON.stringify(text)} does not appear to be an IPv4 or IPv6 address (${why})`);
  if (parts.length !== 4) throw bad('expected 4 octets');
  return parts.map((p) => {
    if (!/^\d{1,3}$/.test(p)) throw bad(`bad octet ${JSON.stringify(p)}`);
    if (p.length > 1 && p.startsWith('0')) throw bad(`leading zeros in ${JSON.stringify(p)}`);
    const n = Number(p);
    if (n > 255) throw bad(`octet ${n} > 255`);
    return n;
  });
}

/** Python's IPv6Address: one "::" at most, an IPv4 tail allowed, a %scope ignored. */
function ipv6Bytes(text: string): Buffer {
  const bad = () => new Error(`${JSON.stringify(text)} does not appear to be an IPv4 or IPv6 address`);
  const [addr, ...scope] = text.split('%');
  if (scope.length > 1 || scope[0] === '') throw bad();
  const parts = addr!.split(':');
  if (parts.length < 3) throw bad();
  if (parts[parts.length - 1]!.includes('.')) {
    const v4 = ipv4Bytes(parts.pop()!);
    parts.push(((v4[0]! << 8) | v4[1]!).toString(16), ((v4[2]! << 8) | v4[3]!).toString(16));
  }
  if (parts.length > 9) throw bad();
  const inner = parts.slice(1, -1);
  const skip = inner.indexOf('');
  if (skip >= 0 && inner.indexOf('', skip + 1) >= 0) throw bad();
  let hi = parts.length;
  let lo = 0;
  if (skip >= 0) {
    hi = skip + 1;
    lo = parts.length - hi - 1;
    if (parts[0] === '' && --hi !== 0) throw bad();
    if (parts[parts.length - 1] === '' && --lo !== 0) throw bad();
    if (8 - (hi + lo) < 1) throw bad();
  } else if (parts.length !== 8 || parts[0] === '' || parts[7] === '') {
    throw bad();
  }
  const hextet = (p: string) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(p)) throw bad();
    return Number.parseInt(p, 16);
  };
  const groups = [
    ...parts.slice(0, hi).map(hextet),
    ...Array<number>(8 - hi - lo).fill(0),
    ...parts.slice(parts.length - lo).map(hextet),
  ];
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(g, 2 * i);
  return b;
}
