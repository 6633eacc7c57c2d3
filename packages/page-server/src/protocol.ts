/**
 * CRIU's page-server wire protocol: fixed-size headers (`struct page_server_iov`, host byte order, so
 * little-endian on x86_64), some followed by page data, and small replies. No version negotiation exists:
 * the header's layout changed in CRIU 4.2 (nr_pages went from u32 to u64) and both are in the wild.
 */

/** Bytes of a page (x86_64). */
export const PAGE_SIZE = 4096;

/** The two header layouts. */
export type HeaderLayout =
  /** CRIU 4.2: `{u32 cmd; u32 pad; u64 nr_pages; u64 vaddr; u64 dst_id}`, 32 bytes. */
  | 'criu-4.2'
  /** CRIU 4.1 and older: `{u32 cmd; u32 nr_pages; u64 vaddr; u64 dst_id}`, 24 bytes. */
  | 'criu-4.1';

export const HEADER_SIZE: Record<HeaderLayout, number> = { 'criu-4.2': 32, 'criu-4.1': 24 };

/** Commands (the low 16 bits of `cmd`; ADD_F carries PE_* flags in the high 16). */
export const PS_IOV_ADD = 1;
export const PS_IOV_HOLE = 2;
export const PS_IOV_OPEN = 3;
export const PS_IOV_OPEN2 = 4;
export const PS_IOV_PARENT = 5;
export const PS_IOV_ADD_F = 6;
export const PS_IOV_GET = 7;
export const PS_IOV_CLOSE = 0x1023;
export const PS_IOV_FORCE_CLOSE = 0x1024;

/** pagemap_entry flags, as ADD_F carries them. */
export const PE_PARENT = 1;
export const PE_LAZY = 2;
export const PE_PRESENT = 4;
const PE_KNOWN = PE_PARENT | PE_LAZY | PE_PRESENT;

/** The kinds of pagemap a `dst_id` names: `(id << 8) | type`. */
export const PS_TYPE_PID = 1;
export const PS_TYPE_SHMEM = 2;

export type PagemapKind = 'task' | 'shmem';

export interface Header {
  /** The command, without its flags. */
  op: number;
  /** The high 16 bits of `cmd` (PE_* flags for ADD_F). */
  flags: number;
  nrPages: bigint;
  vaddr: bigint;
  dstId: bigint;
}

/** The command's name, for messages. */
export function opName(op: number): string {
  switch (op) {
    case PS_IOV_ADD:
      return 'ADD';
    case PS_IOV_HOLE:
      return 'HOLE';
    case PS_IOV_OPEN:
      return 'OPEN';
    case PS_IOV_OPEN2:
      return 'OPEN2';
    case PS_IOV_PARENT:
      return 'PARENT';
    case PS_IOV_ADD_F:
      return 'ADD_F';
    case PS_IOV_GET:
      return 'GET';
    case PS_IOV_CLOSE:
      return 'CLOSE';
    case PS_IOV_FORCE_CLOSE:
      return 'FORCE_CLOSE';
    default:
      return `0x${op.toString(16)}`;
  }
}

export function encodeDstId(kind: PagemapKind, id: number | bigint): bigint {
  return (BigInt(id) << 8n) | BigInt(kind === 'task' ? PS_TYPE_PID : PS_TYPE_SHMEM);
}

/**
 * What a `dst_id` names, or undefined for an unknown type. Older CRIUs sent their CR_FD_* numbers as the
 * type (CRIU's decode_pm keeps the list): 10, 11, 16, 17 were task pagemaps, 27-29 and 32-34 shmem.
 */
export function decodeDstId(dstId: bigint): { kind: PagemapKind; id: bigint } | undefined {
  const type = Number(dstId & 0xffn);
  const id = dstId >> 8n;
  if ([PS_TYPE_PID, 10, 11, 16, 17].includes(type)) return { kind: 'task', id };
  if ([PS_TYPE_SHMEM, 27, 28, 29, 32, 33, 34].includes(type)) return { kind: 'shmem', id };
  return undefined;
}

/** The largest page count a layout carries in one header. */
export function maxPagesPerHeader(layout: HeaderLayout): bigint {
  return layout === 'criu-4.1' ? 0xffffffffn : 0xffffffffffffffffn;
}

export function encodeHeader(
  layout: HeaderLayout,
  h: Header,
  out = Buffer.alloc(HEADER_SIZE[layout]),
  at = 0,
): Buffer {
  const cmd = ((h.flags << 16) | h.op) >>> 0;
  out.writeUInt32LE(cmd, at);
  if (layout === 'criu-4.2') {
    out.writeUInt32LE(0, at + 4);
    out.writeBigUInt64LE(h.nrPages, at + 8);
    out.writeBigUInt64LE(h.vaddr, at + 16);
    out.writeBigUInt64LE(h.dstId, at + 24);
  } else {
    if (h.nrPages > 0xffffffffn)
      throw new RangeError(`${h.nrPages} pages do not fit CRIU 4.1's u32 nr_pages`);
    out.writeUInt32LE(Number(h.nrPages), at + 4);
    out.writeBigUInt64LE(h.vaddr, at + 8);
    out.writeBigUInt64LE(h.dstId, at + 16);
  }
  return out;
}

export function decodeHeader(layout: HeaderLayout, b: Buffer, at = 0): Header {
  const cmd = b.readUInt32LE(at);
  const op = cmd & 0xffff;
  const flags = cmd >>> 16;
  if (layout === 'criu-4.2') {
    return {
      op,
      flags,
      nrPages: b.readBigUInt64LE(at + 8),
      vaddr: b.readBigUInt64LE(at + 16),
      dstId: b.readBigUInt64LE(at + 24),
    };
  }
  return {
    op,
    flags,
    nrPages: BigInt(b.readUInt32LE(at + 4)),
    vaddr: b.readBigUInt64LE(at + 8),
    dstId: b.readBigUInt64LE(at + 16),
  };
}

/**
 * The layout of a session, told from its first 24 bytes, or undefined when they cannot tell.
 *
 * A session starts with OPEN2, OPEN, PARENT or ADD (old CRIUs), all of which name a pagemap: `dst_id` is
 * never 0 (its low byte is the type). In CRIU 4.1's layout bytes 16-23 are `dst_id`; in 4.2's they are
 * `vaddr`, which OPEN2, OPEN and PARENT leave 0. So bytes 16-23 nonzero is 4.1, zero is 4.2. A session
 * that starts with CLOSE (a dump with no memory) has zeroes there in both: undefined (the server answers
 * it as 4.1 and tolerates the 8 zero bytes more that 4.2 sends).
 */
export function detectLayout(first24: Buffer): HeaderLayout | undefined {
  const op = first24.readUInt32LE(0) & 0xffff;
  if (first24.readBigUInt64LE(16) !== 0n) return 'criu-4.1';
  if (op === PS_IOV_CLOSE || op === PS_IOV_FORCE_CLOSE) return undefined;
  return 'criu-4.2';
}

/** Whether `flags` holds only PE_* bits. */
export function knownFlags(flags: number): boolean {
  return (flags & ~PE_KNOWN) === 0;
}

/** The error of a session: a broken or hostile stream, a peer that went away, an image that cannot be written. */
export class PageServerError extends Error {
  override name = 'PageServerError';
}
