import protobuf from 'protobufjs';
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

function sortedFields(type: protobuf.Type): Field[] {
  return [...type.fieldsArray].sort((a, b) => a.id - b.id);
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
  if (rt instanceof protobuf.Type) return toCrit(rt, v as Plain, pretty, hex);
  if (rt instanceof protobuf.Enum) return rt.valuesById[v as number] ?? null;
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
  if (rt instanceof protobuf.Type) return fromCrit(rt, v as Record<string, PyJson>);
  if (rt instanceof protobuf.Enum) {
    const n = rt.values[v as string];
    if (n === undefined) throw new Error(`field ${f.name}: unknown ${rt.name} value ${JSON.stringify(v)}`);
    return n;
  }
  if (f.type === 'bytes')
    return opt(f, 'conv') === 'unix_name' ? qpDecode(String(v)) : decodeBytes(String(v));
  if (f.type === 'bool') return pyTruthy(v);
  if (f.type === 'string') return String(v);
  if (f.type === 'double' || f.type === 'float') return Number(v);
  if (!INT_TYPES.has(f.type)) throw new Error(`field ${f.name} has unsupported type ${f.type}`);
  const n =
    typeof v === 'string' ? intFromString(f, v) : BigInt(typeof v === 'boolean' ? Number(v) : (v as number));
  return LONG_TYPES.has(f.type) ? n : Number(BigInt.asIntN(64, n));
}

function pyTruthy(v: PyJson): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v) && v !== 0n;
}

function intFromString(f: Field, s: string): bigint {
  const dev = opt(f, 'dev');
  if (dev) {
    const [maj, min] = s.split(':').map((x) => BigInt(x.trim()));
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

/** Python's int(s, 0): decimal, 0x, 0o or 0b, with sign, underscores and spaces allowed. */
export function pyInt(text: string): bigint {
  const s = text.trim().replace(/_/g, '');
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[1-9]\d*|0+)$/.exec(s);
  if (!m) throw new Error(`invalid integer ${JSON.stringify(text)}`);
  const body = m[2]!;
  const prefix = body.slice(0, 2).toLowerCase();
  const n = prefix === '0o' ? BigInt(`0o${body.slice(2)}`) : BigInt(body);
  return m[1] === '-' ? -n : n;
}

function ipWords(text: string): number[] {
  if (text.includes(':')) {
    const b = ipv6Bytes(text);
    return [0, 1, 2, 3].map((i) => b.readUInt32LE(4 * i));
  }
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255)))
    throw new Error(`bad IPv4 address ${text}`);
  return [Buffer.from(parts).readUInt32LE(0)];
}

function ipv6Bytes(text: string): Buffer {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (s: string | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff)))
    throw new Error(`bad IPv6 address ${text}`);
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(g, 2 * i);
  return b;
}
