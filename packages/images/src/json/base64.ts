/** Python's base64.encodebytes: standard alphabet, a newline after every 76 characters and at the end. */
export function encodeBytes(data: Uint8Array): string {
  let out = '';
  for (let i = 0; i < data.length; i += 57) {
    out += `${Buffer.from(data.buffer, data.byteOffset + i, Math.min(57, data.length - i)).toString('base64')}\n`;
  }
  return out;
}

/** Python's base64.decodebytes: characters outside the alphabet (newlines) are skipped. */
export function decodeBytes(text: string): Buffer {
  const clean = text.replace(/[^A-Za-z0-9+/=]/g, '');
  if (clean.replace(/=+$/, '').length % 4 === 1) throw new Error('invalid base64: wrong length');
  return Buffer.from(clean, 'base64');
}
