/** Python's base64.encodebytes: standard alphabet, a newline after every 76 characters and at the end. */
export function encodeBytes(data: Uint8Array): string {
  let out = '';
  for (let i = 0; i < data.length; i += 57) {
    out += `${Buffer.from(data.buffer, data.byteOffset + i, Math.min(57, data.length - i)).toString('base64')}\n`;
  }
  return out;
}

/**
 * Python's base64.decodebytes (binascii.a2b_base64, not strict): characters outside the alphabet
 * (newlines) are skipped, a complete "=" padding ends the data, a "=" too early is ignored, and
 * data that does not end on a whole quantum is an error.
 */
export function decodeBytes(text: string): Buffer {
  const out = Buffer.alloc(Math.ceil(text.length / 4) * 3);
  let n = 0;
  let quad = 0;
  let left = 0;
  let pads = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x3d) {
      if (quad >= 2 && quad + ++pads >= 4) return out.subarray(0, n);
      continue;
    }
    const v = ch < 128 ? B64[ch]! : -1;
    if (v < 0) continue;
    pads = 0;
    if (quad === 0) left = v;
    else if (quad === 1) {
      out[n++] = (left << 2) | (v >> 4);
      left = v & 0x0f;
    } else if (quad === 2) {
      out[n++] = (left << 4) | (v >> 2);
      left = v & 0x03;
    } else out[n++] = (left << 6) | v;
    quad = (quad + 1) % 4;
  }
  if (quad === 1)
    throw new Error('Invalid base64-encoded string: data characters cannot be 1 more than a multiple of 4');
  if (quad !== 0) throw new Error('Incorrect padding');
  return out.subarray(0, n);
}

const B64 = Array.from({ length: 128 }, (_, c) =>
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.indexOf(String.fromCharCode(c)),
);
