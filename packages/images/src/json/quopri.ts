/**
 * Quoted-printable as Python's quopri.encodestring/decodestring do it (binascii's b2a_qp
 * with istext): crit shows unix socket names this way, so that "\0name" reads as "=00name".
 */
const MAX_LINE = 76;
const hex = (b: number) => `=${b.toString(16).toUpperCase().padStart(2, '0')}`;

export function qpEncode(data: Uint8Array): string {
  let out = '';
  let lineLen = 0;
  const emit = (piece: string) => {
    // A soft line break keeps encoded lines within 76 characters.
    if (lineLen + piece.length > MAX_LINE - 1) {
      out += '=\n';
      lineLen = 0;
    }
    out += piece;
    lineLen += piece.length;
  };
  for (let i = 0; i < data.length; i++) {
    const c = data[i]!;
    const next = data[i + 1];
    const atLineEnd = next === undefined || next === 0x0a || (next === 0x0d && data[i + 2] === 0x0a);
    if (c === 0x0a) {
      out += '\n';
      lineLen = 0;
    } else if (c === 0x0d && next === 0x0a) {
      out += '\r';
    } else if (
      c === 0x3d ||
      c > 0x7e ||
      (c < 0x20 && c !== 0x09) ||
      ((c === 0x20 || c === 0x09) && atLineEnd)
    ) {
      emit(hex(c));
    } else if (c === 0x2e && lineLen === 0 && atLineEnd) {
      emit(hex(c));
    } else {
      emit(String.fromCharCode(c));
    }
  }
  return out;
}

export function qpDecode(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '=') {
      if (text[i + 1] === '\n') {
        i += 1;
        continue;
      }
      if (text[i + 1] === '\r' && text[i + 2] === '\n') {
        i += 2;
        continue;
      }
      const h = text.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(h)) {
        bytes.push(Number.parseInt(h, 16));
        i += 2;
        continue;
      }
    }
    bytes.push(text.charCodeAt(i) & 0xff);
  }
  return Buffer.from(bytes);
}
