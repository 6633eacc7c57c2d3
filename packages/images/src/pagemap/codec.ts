/**
 * A hand-written codec for pagemap_entry, the one message that comes by the million
 * (one per run of pages). Same bytes as the generic protobuf codec; anything it does not
 * expect (unknown field, wrong wire type) makes it give up so the generic decoder can
 * produce the exact error.
 */
export interface PagemapEntry {
  vaddr: bigint;
  /** CRIU <= 4.1 page count (field 2, u32); 4.2 writes 0 here and the count in nr_pages. */
  compat_nr_pages: number;
  in_parent?: boolean;
  flags?: number;
  nr_pages?: bigint;
}

export interface PagemapHead {
  pages_id: number;
}

export const PE_PARENT = 1;
export const PE_LAZY = 2;
export const PE_PRESENT = 4;

/** Pages in a run: field 5 when present, else field 2 (what CRIU 4.1 and crit 3.17 read). */
export function pageCount(e: PagemapEntry): bigint {
  return e.nr_pages ?? BigInt(e.compat_nr_pages);
}

/** A run of pages as written by criu-ts: both count fields, field 2 only when it fits u32. */
export function pagemapEntry(vaddr: bigint, pages: bigint | number, flags: number): PagemapEntry {
  const n = BigInt(pages);
  return { vaddr, compat_nr_pages: n <= 0xffffffffn ? Number(n) : 0, flags, nr_pages: n };
}

class Unexpected extends Error {}

/** Decodes one pagemap_entry; returns undefined when the generic decoder must take over. */
export function decodePagemapEntry(b: Uint8Array): PagemapEntry | undefined {
  let p = 0;
  const end = b.length;
  const varint = (): bigint => {
    let lo = 0;
    let shift = 0;
    // Fast path: up to 4 bytes fit in a 28-bit number.
    while (p < end && shift < 28) {
      const byte = b[p++]!;
      lo |= (byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt(lo >>> 0);
      shift += 7;
    }
    let v = BigInt(lo >>> 0);
    let s = 28n;
    while (p < end) {
      const byte = b[p++]!;
      v |= BigInt(byte & 0x7f) << s;
      if (byte < 0x80) return BigInt.asUintN(64, v);
      s += 7n;
      if (s > 63n) throw new Unexpected();
    }
    throw new Unexpected();
  };
  const small = (): number => {
    let v = 0;
    let shift = 0;
    while (p < end && shift < 28) {
      const byte = b[p++]!;
      v |= (byte & 0x7f) << shift;
      if (byte < 0x80) return v >>> 0;
      shift += 7;
    }
    // Five bytes or more: use the long path and keep the low 32 bits, as protobuf does.
    p -= shift / 7;
    return Number(BigInt.asUintN(32, varint()));
  };
  try {
    let vaddr: bigint | undefined;
    let compat: number | undefined;
    const e: Omit<PagemapEntry, 'vaddr' | 'compat_nr_pages'> = {};
    while (p < end) {
      const tag = b[p++]!;
      switch (tag) {
        case 0x08:
          vaddr = varint();
          break;
        case 0x10:
          compat = small();
          break;
        case 0x18:
          e.in_parent = varint() !== 0n;
          break;
        case 0x20:
          e.flags = small();
          break;
        case 0x28:
          e.nr_pages = varint();
          break;
        default:
          return undefined;
      }
    }
    if (vaddr === undefined || compat === undefined) return undefined;
    // Keep the field order of a generic decode: vaddr, compat_nr_pages, then the optional ones.
    return { vaddr, compat_nr_pages: compat, ...e };
  } catch (err) {
    if (err instanceof Unexpected) return undefined;
    throw err;
  }
}

function putVarint(out: Buffer, p: number, v: bigint): number {
  // In two 32-bit halves, as protobufjs does: one BigInt split instead of a BigInt shift per byte.
  const x = BigInt.asUintN(64, v);
  let lo = Number(x & 0xffffffffn);
  let hi = Number(x >> 32n);
  while (hi !== 0) {
    out[p++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  while (lo >= 0x80) {
    out[p++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  out[p++] = lo;
  return p;
}

function putSmall(out: Buffer, p: number, v: number): number {
  let x = v >>> 0;
  while (x >= 0x80) {
    out[p++] = (x & 0x7f) | 0x80;
    x >>>= 7;
  }
  out[p++] = x;
  return p;
}

/** Encodes into `out` at `p` (it needs at most 45 bytes); returns the end offset. */
export function encodePagemapEntryInto(e: PagemapEntry, out: Buffer, p: number): number {
  out[p++] = 0x08;
  p = putVarint(out, p, e.vaddr);
  out[p++] = 0x10;
  p = putSmall(out, p, e.compat_nr_pages);
  if (e.in_parent !== undefined) {
    out[p++] = 0x18;
    out[p++] = e.in_parent ? 1 : 0;
  }
  if (e.flags !== undefined) {
    out[p++] = 0x20;
    p = putSmall(out, p, e.flags);
  }
  if (e.nr_pages !== undefined) {
    out[p++] = 0x28;
    p = putVarint(out, p, e.nr_pages);
  }
  return p;
}

export const MAX_PAGEMAP_ENTRY_BYTES = 1 + 10 + 1 + 5 + 2 + 1 + 5 + 1 + 10;
