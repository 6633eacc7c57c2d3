// Fixed-key lookup by byte comparison: "Name", "VmRSS", "Shared_Clean" ... -> small integer.
//
// Keys are bucketed by (length, first byte, last byte); a bucket hit is confirmed byte by byte.
// A `hint` (the index expected next, as in files whose keys come in a fixed order) is checked
// first, which usually makes the lookup one comparison.

export class KeyTable {
  readonly keys: readonly string[];
  private readonly bytes: Uint8Array[];
  private readonly buckets = new Map<number, number[]>();

  constructor(keys: readonly string[]) {
    this.keys = keys;
    this.bytes = keys.map((k) => Buffer.from(k, 'latin1'));
    this.bytes.forEach((k, i) => {
      const h = bucketOf(k, 0, k.length);
      const list = this.buckets.get(h);
      if (list) list.push(i);
      else this.buckets.set(h, [i]);
    });
  }

  /** Index of the key equal to buf[s, e), or -1. */
  lookup(buf: Uint8Array, s: number, e: number, hint = -1): number {
    if (hint >= 0 && hint < this.bytes.length && equal(this.bytes[hint]!, buf, s, e)) return hint;
    if (e <= s) return -1;
    const list = this.buckets.get(bucketOf(buf, s, e));
    if (list === undefined) return -1;
    for (let j = 0; j < list.length; j++) {
      const i = list[j]!;
      if (equal(this.bytes[i]!, buf, s, e)) return i;
    }
    return -1;
  }

  /** Index of `key`, or -1 (for building switch tables). */
  indexOf(key: string): number {
    return this.keys.indexOf(key);
  }
}

function bucketOf(b: Uint8Array, s: number, e: number): number {
  return ((e - s) << 16) | (b[s]! << 8) | b[e - 1]!;
}

function equal(key: Uint8Array, b: Uint8Array, s: number, e: number): boolean {
  const n = key.length;
  if (e - s !== n) return false;
  for (let i = 0; i < n; i++) if (key[i] !== b[s + i]) return false;
  return true;
}
