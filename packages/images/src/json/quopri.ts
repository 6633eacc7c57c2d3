/**
 * Quoted-printable as Python's quopri.encodestring/decodestring do it (binascii's b2a_qp with
 * istext and a2b_qp, ported from CPython): crit shows unix socket names this way, so that
 * "\0name" reads as "=00name". Like Python, the encoder writes every line end the way the first
 * one is written ("\r\n" or "\n"), so names that mix both do not survive a round trip.
 */
const MAX_LINE = 76;
const hex = (b: number) => `=${b.toString(16).toUpperCase().padStart(2, '0')}`;

export function qpEncode(data: Uint8Array): string {
  const n = data.length;
  const firstLf = data.indexOf(0x0a);
  const eol = firstLf > 0 && data[firstLf - 1] === 0x0d ? '\r\n' : '\n';
  let out = '';
  let lineLen = 0;
  for (let i = 0; i < n; ) {
    const c = data[i]!;
    const next = i + 1 < n ? data[i + 1] : undefined;
    if (
      c > 0x7e ||
      c === 0x3d ||
      (c === 0x2e && lineLen === 0 && (next === undefined || next === 0x0a || next === 0x0d || next === 0)) ||
      ((c === 0x09 || c === 0x20) && next === undefined) ||
      (c < 0x21 && c !== 0x0d && c !== 0x0a && c !== 0x09 && c !== 0x20)
    ) {
      // A soft line break keeps encoded lines within 76 characters.
      if (lineLen + 3 >= MAX_LINE) {
        out += `=${eol}`;
        lineLen = 0;
      }
      out += hex(c);
      lineLen += 3;
      i++;
    } else if (c === 0x0a || (c === 0x0d && next === 0x0a)) {
      lineLen = 0;
      // Whitespace just before a line end is encoded.
      const last = out.charCodeAt(out.length - 1);
      if (last === 0x20 || last === 0x09) out = out.slice(0, -1) + hex(last);
      out += eol;
      i += c === 0x0d ? 2 : 1;
    } else {
      if (next !== undefined && next !== 0x0a && lineLen + 1 >= MAX_LINE) {
        out += `=${eol}`;
        lineLen = 0;
      }
      lineLen++;
      out += String.fromCharCode(c);
      i++;
    }
  }
  return out;
}

const isHex = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

export function qpDecode(text: string): Buffer {
  if (/[^\x00-\x7f]/.test(text)) throw new Error('string argument should contain only ASCII characters');
  const bytes: number[] = [];
  const n = text.length;
  for (let i = 0; i < n; ) {
    const c = text.charCodeAt(i);
    if (c !== 0x3d) {
      bytes.push(c);
      i++;
      continue;
    }
    i++;
    if (i >= n) break;
    const d = text.charCodeAt(i);
    if (d === 0x0a || d === 0x0d) {
      // Soft line break: "=" up to the end of the line is dropped.
      while (i < n && text.charCodeAt(i) !== 0x0a) i++;
      if (i < n) i++;
    } else if (d === 0x3d) {
      bytes.push(0x3d);
      i++;
    } else if (i + 1 < n && isHex(d) && isHex(text.charCodeAt(i + 1))) {
      bytes.push(Number.parseInt(text.slice(i, i + 2), 16));
      i += 2;
    } else {
      bytes.push(0x3d);
    }
  }
  return Buffer.from(bytes);
}
