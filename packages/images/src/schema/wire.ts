/**
 * The protobuf wire format, for the codecs that tools/codegen/codecs.mjs generates into
 * src/gen/codecs.ts: a reader and a writer of varints, zigzag, fixed 32/64-bit values and
 * length-delimited fields. Errors are the ones protobufjs raised before these codecs replaced
 * it (same classes, same messages), because image errors quote them.
 */

/** protoc's default recursion limit, which protobufjs also applies. */
export const MAX_DEPTH = 100;

const TWO_32 = 4294967296;

function outOfRange(r: WireReader, n = 1): RangeError {
  return new RangeError(`index out of range: ${r.pos} + ${n} > ${r.len}`);
}

/** 64 bits as two unsigned 32-bit halves (decoding needs no BigInt arithmetic per byte). */
function bigintOf(lo: number, hi: number, signed: boolean): bigint {
  // Below 2^53 a double holds the value exactly: one BigInt() instead of shifts and ors.
  if (hi < 0x200000) return BigInt(hi * TWO_32 + lo);
  const n = (BigInt(hi) << 32n) | BigInt(lo);
  return signed ? BigInt.asIntN(64, n) : n;
}

export class WireReader {
  /** The bytes as a Buffer (strings are decoded with Buffer's UTF-8, as protobufjs did). */
  private readonly text: Buffer;
  /** Where reading must stop: the end of the message being decoded. */
  len: number;
  pos = 0;
  private hi = 0;

  constructor(readonly buf: Uint8Array) {
    this.len = buf.length;
    this.text = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** A varint cut short: the error names where reading stopped, as protobufjs's did. */
  private truncated(pos: number): RangeError {
    this.pos = pos;
    return outOfRange(this);
  }

  /** A field tag: at most 5 bytes, and it must fit 32 bits. */
  tag(): number {
    const buf = this.buf;
    let pos = this.pos;
    let value = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= this.len) throw this.truncated(pos);
      const b = buf[pos++]!;
      value |= (b & 127) << shift;
      if (b < 128) {
        this.pos = pos;
        return value >>> 0;
      }
    }
    if (pos >= this.len) throw this.truncated(pos);
    const b = buf[pos++]!;
    this.pos = pos;
    if (b >= 128 || (b & 112) !== 0) throw new Error('invalid tag encoding');
    return (value | (b << 28)) >>> 0;
  }

  /** A varint's low 32 bits, unsigned; up to 10 bytes are accepted, as for any varint. */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (pos >= this.len) throw this.truncated(pos);
      const b = buf[pos++]!;
      value |= (b & 127) << shift;
      if (b < 128) {
        this.pos = pos;
        return value >>> 0;
      }
    }
    // Bytes 6 to 10 only carry bits above 32: skip them.
    for (let i = 0; i < 5; i++) {
      if (pos >= this.len) throw this.truncated(pos);
      if (buf[pos++]! < 128) {
        this.pos = pos;
        return value >>> 0;
      }
    }
    this.pos = pos;
    throw new Error('invalid varint encoding');
  }

  int32(): number {
    return this.uint32() | 0;
  }

  sint32(): number {
    const v = this.uint32();
    return ((v >>> 1) ^ -(v & 1)) | 0;
  }

  /** A length: a varint below 2^31, at most 5 bytes. */
  size(): number {
    const buf = this.buf;
    let pos = this.pos;
    let value = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= this.len) throw this.truncated(pos);
      const b = buf[pos++]!;
      value |= (b & 127) << shift;
      if (b < 128) {
        this.pos = pos;
        return value >>> 0;
      }
    }
    if (pos >= this.len) throw this.truncated(pos);
    const b = buf[pos++]!;
    this.pos = pos;
    if (b > 7) throw new Error('invalid length encoding');
    return (value | (b << 28)) >>> 0;
  }

  /** A 64-bit varint: returns the low half, leaves the high half in this.hi. */
  private varint64(): number {
    const buf = this.buf;
    let pos = this.pos;
    let lo = 0;
    let hi = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= this.len) throw this.truncated(pos);
      const b = buf[pos++]!;
      lo |= (b & 127) << shift;
      if (b < 128) {
        this.pos = pos;
        this.hi = 0;
        return lo >>> 0;
      }
    }
    for (let shift = -4; shift < 32; shift += 7) {
      if (pos >= this.len) throw this.truncated(pos);
      const b = buf[pos++]!;
      // The fifth byte straddles the halves: 4 bits for lo, 3 for hi.
      if (shift < 0) {
        lo |= (b & 127) << 28;
        hi = (b & 127) >> 4;
      } else {
        hi |= (b & 127) << shift;
      }
      if (b < 128) {
        this.pos = pos;
        this.hi = hi >>> 0;
        return lo >>> 0;
      }
    }
    this.pos = pos;
    throw new Error('invalid varint encoding');
  }

  uint64(): bigint {
    const lo = this.varint64();
    return bigintOf(lo, this.hi, false);
  }

  int64(): bigint {
    const lo = this.varint64();
    return bigintOf(lo, this.hi, true);
  }

  sint64(): bigint {
    const lo = this.varint64();
    const hi = this.hi;
    const mask = -(lo & 1);
    return bigintOf((((lo >>> 1) | (hi << 31)) ^ mask) >>> 0, ((hi >>> 1) ^ mask) >>> 0, true);
  }

  bool(): boolean {
    let value = false;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.len) throw outOfRange(this);
      const b = this.buf[this.pos++]!;
      if (b & 127) value = true;
      if (b < 128) return value;
    }
    throw new Error('invalid varint encoding');
  }

  private need(n: number): number {
    if (this.pos + n > this.len) throw outOfRange(this, n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  fixed32(): number {
    return this.text.readUInt32LE(this.need(4));
  }

  sfixed32(): number {
    return this.text.readInt32LE(this.need(4));
  }

  fixed64(): bigint {
    const at = this.need(8);
    return bigintOf(this.text.readUInt32LE(at), this.text.readUInt32LE(at + 4), false);
  }

  sfixed64(): bigint {
    const at = this.need(8);
    return bigintOf(this.text.readUInt32LE(at), this.text.readUInt32LE(at + 4), true);
  }

  float(): number {
    return this.text.readFloatLE(this.need(4));
  }

  double(): number {
    return this.text.readDoubleLE(this.need(8));
  }

  /** Bytes as a view of the input (a Buffer for a Buffer), not a copy: as protobufjs did. */
  bytes(): Uint8Array {
    const n = this.size();
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }

  /** Invalid UTF-8 becomes U+FFFD (WHATWG decoding, BOM kept), as protobufjs did. */
  string(): string {
    const n = this.size();
    const at = this.need(n);
    return this.text.toString('utf8', at, at + n);
  }

  /**
   * Reads a length-delimited field with its own end: reading may not go past it, and must
   * stop exactly at it. Returns the enclosing end, to hand back to leave().
   */
  enter(depth: number): number {
    const n = this.size();
    if (depth > MAX_DEPTH) throw new Error('max depth exceeded');
    const end = this.pos + n;
    if (end > this.len) throw new RangeError('index out of range');
    const outer = this.len;
    this.len = end;
    return outer;
  }

  leave(outer: number): void {
    if (this.pos !== this.len) throw new RangeError('index out of range');
    this.len = outer;
  }

  /**
   * Skips a field no codec knows (or one with an unexpected wire type, as protobufjs does):
   * varint, 64-bit, length-delimited, group (up to its end tag) or 32-bit.
   */
  skip(tag: number, depth: number): void {
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (depth > MAX_DEPTH) throw new Error('max depth exceeded');
    if (field === 0) throw new Error('illegal tag: field number 0');
    switch (wireType) {
      case 0:
        do {
          if (this.pos >= this.len) throw outOfRange(this);
        } while (this.buf[this.pos++]! & 128);
        return;
      case 1:
        this.need(8);
        return;
      case 2:
        this.need(this.size());
        return;
      case 3:
        this.skipGroup(field, depth);
        return;
      case 5:
        this.need(4);
        return;
      default:
        throw new Error(`invalid wire type ${wireType} at offset ${this.pos}`);
    }
  }

  private skipGroup(field: number, depth: number): void {
    for (;;) {
      const tag = this.tag();
      if (tag >>> 3 === 0) throw new Error('illegal tag: field number 0');
      if ((tag & 7) === 4) {
        if (tag >>> 3 !== field) throw new Error('invalid end group tag');
        return;
      }
      this.skip(tag, depth + 1);
    }
  }

  /** A packed run of values: its own end, like a nested message. */
  packed<T>(read: (r: WireReader) => T, into: T[]): void {
    const n = this.size();
    const end = this.pos + n;
    if (end > this.len) throw outOfRange(this, n);
    const outer = this.len;
    this.len = end;
    while (this.pos < end) into.push(read(this));
    if (this.pos !== end) throw new RangeError('index out of range');
    this.len = outer;
  }
}

/** Readers of each scalar type, for packed fields. */
export const read = {
  int32: (r: WireReader) => r.int32(),
  uint32: (r: WireReader) => r.uint32(),
  sint32: (r: WireReader) => r.sint32(),
  fixed32: (r: WireReader) => r.fixed32(),
  sfixed32: (r: WireReader) => r.sfixed32(),
  int64: (r: WireReader) => r.int64(),
  uint64: (r: WireReader) => r.uint64(),
  sint64: (r: WireReader) => r.sint64(),
  fixed64: (r: WireReader) => r.fixed64(),
  sfixed64: (r: WireReader) => r.sfixed64(),
  bool: (r: WireReader) => r.bool(),
  float: (r: WireReader) => r.float(),
  double: (r: WireReader) => r.double(),
};

export function missingRequired(name: string): Error {
  // protobufjs's ProtocolError: an Error named so.
  const err = new Error(`missing required '${name}'`);
  err.name = 'ProtocolError';
  return err;
}

// --- encoding ---------------------------------------------------------------------------------

/**
 * What protobufjs (through long.js) made of a value given for a 64-bit field: bigint wraps
 * modulo 2^64; a number is truncated and saturates (an unsigned field takes negatives as 0);
 * a decimal string is parsed; {low, high} is taken as is. The bits land in bitsLo/bitsHi.
 */
let bitsLo = 0;
let bitsHi = 0;

function setBits(v: unknown, unsigned: boolean): void {
  if (typeof v === 'bigint') {
    if (v >= 0n && v < 0x100000000n) {
      bitsLo = Number(v);
      bitsHi = 0;
    } else {
      bitsLo = Number(BigInt.asUintN(32, v));
      bitsHi = Number(BigInt.asUintN(32, v >> 32n));
    }
  } else if (typeof v === 'number') {
    setBitsOfNumber(v, unsigned);
  } else if (typeof v === 'string') {
    setBitsOfString(v, unsigned);
  } else {
    // long.js's fromBits(v.low, v.high): a TypeError for null, zero for other non-objects.
    const o = v as { low?: number; high?: number };
    bitsLo = (o.low as number) >>> 0;
    bitsHi = (o.high as number) >>> 0;
  }
}

/** long.js's fromNumber: NaN is 0, out of range saturates, the fraction is cut off. */
function setBitsOfNumber(v: number, unsigned: boolean): void {
  if (Number.isNaN(v) || (unsigned && v < 0)) {
    bitsLo = bitsHi = 0;
  } else if (unsigned && v >= 2 ** 64) {
    bitsLo = bitsHi = 0xffffffff;
  } else if (!unsigned && v <= -(2 ** 63)) {
    bitsLo = 0;
    bitsHi = 0x80000000;
  } else if (!unsigned && v + 1 >= 2 ** 63) {
    bitsLo = 0xffffffff;
    bitsHi = 0x7fffffff;
  } else if (v < 0) {
    setBitsOfNumber(-v, unsigned);
    // Two's complement: ~x + 1 over 64 bits.
    const lo = (~bitsLo + 1) >>> 0;
    bitsHi = (~bitsHi + (lo === 0 ? 1 : 0)) >>> 0;
    bitsLo = lo;
  } else {
    bitsLo = (v % TWO_32) >>> 0;
    bitsHi = (v / TWO_32) >>> 0;
  }
}

function setBitsOfString(s: string, unsigned: boolean): void {
  if (/^-?\d+$/.test(s)) setBits(BigInt(s), unsigned);
  else setBitsOfNumber(Number.parseInt(s, 10), unsigned);
}

export class WireWriter {
  buf: Buffer;
  pos = 0;

  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }

  uint32(value: number): void {
    let v = value >>> 0;
    this.reserve(5);
    const buf = this.buf;
    while (v > 127) {
      buf[this.pos++] = (v & 127) | 128;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  /** A negative int32 takes 10 bytes: it is sign-extended to 64 bits. */
  int32(value: number): void {
    if (value < 0) this.varint64(value >>> 0, 0xffffffff);
    else this.uint32(value);
  }

  sint32(value: number): void {
    this.uint32(((value << 1) ^ (value >> 31)) >>> 0);
  }

  private varint64(lo: number, hi: number): void {
    this.reserve(10);
    const buf = this.buf;
    let l = lo;
    let h = hi;
    while (h) {
      buf[this.pos++] = (l & 127) | 128;
      l = ((l >>> 7) | (h << 25)) >>> 0;
      h >>>= 7;
    }
    while (l > 127) {
      buf[this.pos++] = (l & 127) | 128;
      l >>>= 7;
    }
    buf[this.pos++] = l;
  }

  uint64(value: unknown): void {
    setBits(value, true);
    this.varint64(bitsLo, bitsHi);
  }

  int64(value: unknown): void {
    setBits(value, false);
    this.varint64(bitsLo, bitsHi);
  }

  sint64(value: unknown): void {
    setBits(value, false);
    const mask = bitsHi >> 31;
    this.varint64(((bitsLo << 1) ^ mask) >>> 0, (((bitsHi << 1) | (bitsLo >>> 31)) ^ mask) >>> 0);
  }

  fixed64(value: unknown): void {
    setBits(value, true);
    this.fixed32(bitsLo);
    this.fixed32(bitsHi);
  }

  sfixed64(value: unknown): void {
    setBits(value, false);
    this.fixed32(bitsLo);
    this.fixed32(bitsHi);
  }

  bool(value: boolean): void {
    this.reserve(1);
    this.buf[this.pos++] = value ? 1 : 0;
  }

  fixed32(value: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(value >>> 0, this.pos);
    this.pos += 4;
  }

  sfixed32(value: number): void {
    this.fixed32(value);
  }

  float(value: number): void {
    this.reserve(4);
    this.buf.writeFloatLE(value, this.pos);
    this.pos += 4;
  }

  double(value: number): void {
    this.reserve(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /** A string is base64 (protobufjs's rule for bytes given as text). */
  bytes(value: ArrayLike<number> | string): void {
    const b = typeof value === 'string' ? Buffer.from(value, 'base64') : value;
    const n = b.length >>> 0;
    this.uint32(n);
    this.reserve(n);
    this.buf.set(b, this.pos);
    this.pos += n;
  }

  /**
   * UTF-8 as protobufjs wrote it: under 40 UTF-16 units by hand, where a lone surrogate takes
   * 3 bytes of its own; longer strings by Buffer, where it becomes U+FFFD.
   */
  string(value: string): void {
    const n = value.length;
    if (n < 40) {
      this.reserve(n * 3 + 1);
      const start = this.pos;
      const len = this.utf8Short(value, start + 1);
      this.buf[start] = len;
      this.pos = start + 1 + len;
      return;
    }
    if (n < 128) {
      // At most 3 bytes per unit: the length may need 2 bytes, then it is shifted in by end().
      this.reserve(n * 3 + 1);
      const start = this.fork();
      this.pos += this.buf.write(value, this.pos);
      this.end(start);
      return;
    }
    const len = Buffer.byteLength(value);
    this.uint32(len);
    this.reserve(len);
    this.pos += this.buf.write(value, this.pos);
  }

  /** Writes a short string's UTF-8 at `at` and returns its length in bytes (< 128). */
  private utf8Short(s: string, at: number): number {
    const buf = this.buf;
    let pos = at;
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        buf[pos++] = c;
      } else if (c < 0x800) {
        buf[pos++] = (c >> 6) | 0xc0;
        buf[pos++] = (c & 63) | 0x80;
      } else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c & 0x3ff) << 10) + (s.charCodeAt(++i) & 0x3ff);
        buf[pos++] = (c >> 18) | 0xf0;
        buf[pos++] = ((c >> 12) & 63) | 0x80;
        buf[pos++] = ((c >> 6) & 63) | 0x80;
        buf[pos++] = (c & 63) | 0x80;
      } else {
        buf[pos++] = (c >> 12) | 0xe0;
        buf[pos++] = ((c >> 6) & 63) | 0x80;
        buf[pos++] = (c & 63) | 0x80;
      }
    }
    return pos - at;
  }

  /** Starts a length-delimited part (a nested message or a packed run); returns its start. */
  fork(): number {
    // One byte for the length, the usual case; end() makes room if it needs more.
    this.reserve(1);
    return this.pos++;
  }

  end(start: number): void {
    const n = this.pos - start - 1;
    if (n < 128) {
      this.buf[start] = n;
      return;
    }
    let extra = 0;
    for (let v = n >>> 7; v > 0; v >>>= 7) extra++;
    this.reserve(extra);
    this.buf.copyWithin(start + 1 + extra, start + 1, this.pos);
    this.pos += extra;
    let v = n;
    let at = start;
    while (v > 127) {
      this.buf[at++] = (v & 127) | 128;
      v >>>= 7;
    }
    this.buf[at] = v;
  }
}

/** protobufjs's fromObject check that a message value is an object. */
export function objectExpected(what: string): TypeError {
  return new TypeError(`${what}: object expected`);
}

export function arrayExpected(what: string): TypeError {
  return new TypeError(`${what}: array expected`);
}

export const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object';
