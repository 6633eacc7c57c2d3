// Byte cursor over a Buffer: number parsing and tokenizing without split() or per-line regexes.
//
// Every method works on bytes in place and advances `pos`. Strings are only created when a
// caller asks for one (field(), rest(), str()).

export const CH_NL = 0x0a;
export const CH_TAB = 0x09;
export const CH_SPACE = 0x20;
export const CH_COLON = 0x3a;
export const CH_MINUS = 0x2d;
export const CH_BACKSLASH = 0x5c;

/** Append to an optional array: `x.list = append(x.list, v)`. */
export function append<T>(list: T[] | undefined, v: T): T[] {
  if (list === undefined) return [v];
  list.push(v);
  return list;
}

/** Set a key of an optional record: `x.other = setKey(x.other, k, v)`. */
export function setKey<V>(rec: Record<string, V> | undefined, k: string, v: V): Record<string, V> {
  const r = rec ?? {};
  r[k] = v;
  return r;
}

/** Value of a hex digit byte, or -1. */
export function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** Encode a string as bytes once, for byte-by-byte key comparison. */
export function bytesOf(s: string): Uint8Array {
  return Buffer.from(s, 'latin1');
}

export class Cursor {
  buf: Buffer;
  pos: number;
  end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  reset(buf: Buffer, start = 0, end = buf.length): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  get eof(): boolean {
    return this.pos >= this.end;
  }

  /** Current byte, or -1 at the end. */
  peek(): number {
    return this.pos < this.end ? this.buf[this.pos]! : -1;
  }

  skip(n = 1): this {
    this.pos = Math.min(this.pos + n, this.end);
    return this;
  }

  /** Skip spaces and tabs (not newlines). */
  skipSpaces(): this {
    const b = this.buf;
    let p = this.pos;
    const e = this.end;
    while (p < e) {
      const c = b[p]!;
      if (c !== CH_SPACE && c !== CH_TAB) break;
      p++;
    }
    this.pos = p;
    return this;
  }

  /** Skip spaces, tabs and newlines. */
  skipWhitespace(): this {
    const b = this.buf;
    let p = this.pos;
    const e = this.end;
    while (p < e) {
      const c = b[p]!;
      if (c !== CH_SPACE && c !== CH_TAB && c !== CH_NL) break;
      p++;
    }
    this.pos = p;
    return this;
  }

  /** Move to the next occurrence of byte `ch` (pos at it). False (and pos = end) if absent. */
  skipTo(ch: number): boolean {
    const i = this.indexOf(ch);
    if (i < 0) {
      this.pos = this.end;
      return false;
    }
    this.pos = i;
    return true;
  }

  /** Move just past the next occurrence of `ch`. False (and pos = end) if absent. */
  skipPast(ch: number): boolean {
    const i = this.indexOf(ch);
    if (i < 0) {
      this.pos = this.end;
      return false;
    }
    this.pos = i + 1;
    return true;
  }

  /** Index of the next `ch` at or after pos within the window, or -1. */
  indexOf(ch: number, from = this.pos): number {
    const b = this.buf;
    const e = this.end;
    // Short scans are faster by hand than through Buffer.indexOf's native call.
    const lim = Math.min(e, from + 32);
    let p = from;
    for (; p < lim; p++) if (b[p] === ch) return p;
    if (p >= e) return -1;
    const i = b.indexOf(ch, p);
    return i < 0 || i >= e ? -1 : i;
  }

  /** Index of the end of the current line (the '\n' or the window end). */
  lineEnd(): number {
    const i = this.indexOf(CH_NL);
    return i < 0 ? this.end : i;
  }

  /** Move to the start of the next line. */
  nextLine(): this {
    this.skipPast(CH_NL);
    return this;
  }

  /** If the current byte is `ch`, consume it and return true. */
  eat(ch: number): boolean {
    if (this.pos < this.end && this.buf[this.pos] === ch) {
      this.pos++;
      return true;
    }
    return false;
  }

  /** True if the bytes at pos equal `key` (no advance). */
  at(key: Uint8Array): boolean {
    const b = this.buf;
    const p = this.pos;
    const n = key.length;
    if (p + n > this.end) return false;
    for (let i = 0; i < n; i++) if (b[p + i] !== key[i]) return false;
    return true;
  }

  /** Consume `key` if the bytes at pos equal it. */
  match(key: Uint8Array): boolean {
    if (!this.at(key)) return false;
    this.pos += key.length;
    return true;
  }

  /** Signed decimal as a number (exact up to 2^53). Leading spaces/tabs are skipped. */
  dec(): number {
    this.skipSpaces();
    const b = this.buf;
    let p = this.pos;
    const e = this.end;
    let neg = false;
    if (p < e && b[p] === CH_MINUS) {
      neg = true;
      p++;
    } else if (p < e && b[p] === 0x2b) p++;
    let v = 0;
    while (p < e) {
      const d = b[p]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      p++;
    }
    this.pos = p;
    return neg ? -v : v;
  }

  /** Signed decimal as a bigint, exact for any width. */
  decBig(): bigint {
    this.skipSpaces();
    const b = this.buf;
    const s = this.pos;
    let p = s;
    const e = this.end;
    let neg = false;
    if (p < e && b[p] === CH_MINUS) {
      neg = true;
      p++;
    }
    const ds = p;
    let v = 0;
    while (p < e) {
      const d = b[p]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      p++;
    }
    this.pos = p;
    if (p - ds <= 15) return BigInt(neg ? -v : v);
    const r = BigInt(b.toString('latin1', ds, p));
    return neg ? -r : r;
  }

  /** Hex digits (optional 0x) as a number; exact up to 13 digits. */
  hex(): number {
    this.skipSpaces();
    const b = this.buf;
    let p = this.pos;
    const e = this.end;
    if (p + 1 < e && b[p] === 0x30 && (b[p + 1]! | 0x20) === 0x78) p += 2;
    let v = 0;
    while (p < e) {
      const d = hexDigit(b[p]!);
      if (d < 0) break;
      v = v * 16 + d;
      p++;
    }
    this.pos = p;
    return v;
  }

  /** Hex digits (optional 0x) as a bigint, exact for any width. */
  hexBig(): bigint {
    this.skipSpaces();
    const b = this.buf;
    let p = this.pos;
    const e = this.end;
    if (p + 1 < e && b[p] === 0x30 && (b[p + 1]! | 0x20) === 0x78) p += 2;
    const s = p;
    let v = 0;
    while (p < e) {
      const d = hexDigit(b[p]!);
      if (d < 0) break;
      v = v * 16 + d;
      p++;
    }
    this.pos = p;
    return hexSpanToBig(b, s, p, v);
  }

  /** Octal digits as a number. */
  oct(): number {
    this.skipSpaces();
    const b = this.buf;
    let p = this.pos;
    const e = this.end;
    let v = 0;
    while (p < e) {
      const d = b[p]! - 0x30;
      if (d < 0 || d > 7) break;
      v = v * 8 + d;
      p++;
    }
    this.pos = p;
    return v;
  }

  /** End index of the token at pos (up to space, tab, newline or the window end). */
  fieldEnd(): number {
    const b = this.buf;
    let p = this.pos;
    const e = this.end;
    while (p < e) {
      const c = b[p]!;
      if (c === CH_SPACE || c === CH_NL || c === CH_TAB) break;
      p++;
    }
    return p;
  }

  /** Token up to space/tab/newline, as a string; leading spaces are skipped. */
  field(): string {
    this.skipSpaces();
    const s = this.pos;
    const e = this.fieldEnd();
    this.pos = e;
    return this.buf.toString('utf8', s, e);
  }

  /** The rest of the current line as a string (pos moves to the '\n'). */
  rest(): string {
    const s = this.pos;
    const e = this.lineEnd();
    this.pos = e;
    return this.buf.toString('utf8', s, e);
  }

  str(start: number, end: number): string {
    return this.buf.toString('utf8', start, end);
  }
}

/** bigint from a hex digit span [s, e); `approx` is the float accumulation of the same digits. */
export function hexSpanToBig(b: Buffer, s: number, e: number, approx: number): bigint {
  const n = e - s;
  if (n <= 13) return BigInt(approx);
  if (n <= 21) {
    let hi = 0;
    for (let i = s; i < e - 8; i++) hi = hi * 16 + hexDigit(b[i]!);
    let lo = 0;
    for (let i = e - 8; i < e; i++) lo = lo * 16 + hexDigit(b[i]!);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  return BigInt(`0x${b.toString('latin1', s, e)}`);
}

/** Decode the kernel's octal escapes (`\040`, `\134`, ...) as produced by seq_escape / mangle_path. */
export function unescapeOctal(b: Buffer, s: number, e: number): string {
  const i = b.indexOf(CH_BACKSLASH, s);
  if (i < 0 || i >= e) return b.toString('utf8', s, e);
  const out = Buffer.allocUnsafe(e - s);
  let o = 0;
  let p = s;
  while (p < e) {
    const c = b[p]!;
    if (c === CH_BACKSLASH && p + 3 < e && isOct(b[p + 1]!) && isOct(b[p + 2]!) && isOct(b[p + 3]!)) {
      out[o++] = ((b[p + 1]! - 0x30) << 6) | ((b[p + 2]! - 0x30) << 3) | (b[p + 3]! - 0x30);
      p += 4;
    } else {
      out[o++] = c;
      p++;
    }
  }
  return out.toString('utf8', 0, o);
}

function isOct(c: number): boolean {
  return c >= 0x30 && c <= 0x37;
}
