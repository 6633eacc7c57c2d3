import { asImageError, ImageError } from './errors.js';
import { type Extra, readExtra, writeExtra } from './extras.js';
import { FileReader } from './io/file-reader.js';
import { FileWriter } from './io/file-writer.js';
import { IMAGE_KINDS, type ImageKind } from './kinds.js';
import {
  headMagicOf,
  IMG_COMMON_MAGIC,
  IMG_SERVICE_MAGIC,
  MAGICS,
  type MagicName,
  magicName,
} from './magic.js';
import {
  decodePagemapEntry,
  encodePagemapEntryInto,
  MAX_PAGEMAP_ENTRY_BYTES,
  type PagemapEntry,
} from './pagemap/codec.js';
import { decodeMessage, encodeMessage, type MessageName } from './schema/index.js';

/**
 * One entry of an image: its message type, decoded value, and the blob after it if any. M and X are
 * the message and blob types when the image's kind is known (ImageDir.read), untyped otherwise.
 */
export interface ImageEntry<M = Record<string, unknown>, X = Extra> {
  /** Byte offset of the entry's length word in the file. */
  offset: number;
  type: string;
  message: M;
  extra?: X;
}

/** Whether an entry length can be right: proto messages of CRIU images stay far below this. */
const MAX_ENTRY = 64 * 1024 * 1024;

/**
 * Reads one image file entry by entry. Opening checks the magic; each entry is decoded
 * only when asked for, so a 1-million-entry pagemap streams in constant memory.
 */
export class ImageReader {
  readonly magic: MagicName;
  readonly kind: ImageKind;
  private readonly r: FileReader;
  private index = 0;
  private ghostChunks = false;

  private constructor(r: FileReader, magic: MagicName, kind: ImageKind) {
    this.r = r;
    this.magic = magic;
    this.kind = kind;
  }

  /** Opens an image; with `expect`, an image of any other magic is an error (as in CRIU). */
  static open(path: string, expect?: MagicName): ImageReader {
    const r = new FileReader(path);
    try {
      const { magic, kind } = readMagic(r, expect);
      return new ImageReader(r, magic, kind);
    } catch (err) {
      r.close();
      throw err;
    }
  }

  get path(): string {
    return this.r.path;
  }

  /** The message type of the next entry. */
  private nextType(): string {
    if (this.index === 0) return this.kind.message;
    if (this.kind.layout === 'pagemap') return 'pagemap_entry';
    if (this.kind.layout === 'ghost') return 'ghost_chunk_entry';
    return this.kind.message;
  }

  /** The next entry, or undefined at the end of the file. */
  next(): ImageEntry | undefined {
    if (this.r.atEnd()) return undefined;
    if (this.kind.layout === 'ghost' && this.index > 0 && !this.ghostChunks) return undefined;
    const offset = this.r.offset;
    const type = this.nextType();
    const payload = this.payload(type);
    let message: Record<string, unknown>;
    try {
      message = decodeAs(type, payload);
    } catch (err) {
      throw err instanceof ImageError ? err : badEntry(this.r.path, offset, type, err);
    }
    const entry: ImageEntry = { offset, type, message };
    this.index++;
    try {
      if (this.kind.extra) entry.extra = readExtra(this.kind.extra, message, this.r);
      else if (this.kind.layout === 'ghost') this.readGhostData(entry);
    } catch (err) {
      throw asImageError(err, this.r.path, this.r.offset);
    }
    return entry;
  }

  *entries(): Generator<ImageEntry> {
    for (let e = this.next(); e; e = this.next()) yield e;
  }

  /** Every entry, decoded; the reader is closed afterwards. */
  readAll(): ImageEntry[] {
    try {
      return [...this.entries()];
    } finally {
      this.close();
    }
  }

  close(): void {
    this.r.close();
  }

  private payload(type: string): Buffer {
    const len = this.r.u32(`length of ${type} entry`);
    if (len > MAX_ENTRY) {
      throw new ImageError(this.r.path, this.r.offset - 4, `entry length ${len} is implausible for ${type}`);
    }
    return this.r.take(len, `${type} entry`);
  }

  private readGhostData(entry: ImageEntry): void {
    if (entry.type === 'ghost_file_entry') {
      this.ghostChunks = entry.message.chunks === true;
      if (!this.ghostChunks) entry.extra = this.r.takeCopy(this.r.remaining, 'ghost file contents');
      return;
    }
    const len = Number(entry.message.len ?? 0);
    entry.extra = this.r.takeCopy(len, 'ghost file chunk');
  }
}

function badEntry(file: string, offset: number, type: string, err: unknown): ImageError {
  const why = err instanceof Error ? err.message : String(err);
  return new ImageError(file, offset, `bad ${type} entry: ${why}`);
}

function decodeAs(type: string, payload: Buffer): Record<string, unknown> {
  if (type === 'pagemap_entry') {
    const fast = decodePagemapEntry(payload);
    if (fast) return fast as unknown as Record<string, unknown>;
  }
  return decodeMessage(type as MessageName, payload) as Record<string, unknown>;
}

function readMagic(r: FileReader, expect?: MagicName): { magic: MagicName; kind: ImageKind } {
  let value = r.u32('image magic');
  if (value === IMG_COMMON_MAGIC || value === IMG_SERVICE_MAGIC) value = r.u32('image magic');
  const magic = magicName(value);
  if (!magic) {
    throw new ImageError(
      r.path,
      r.offset - 4,
      `unknown magic 0x${value.toString(16)} (not a CRIU image, or a raw one such as pages-N.img)`,
    );
  }
  if (expect !== undefined && magic !== expect) {
    throw new ImageError(r.path, r.offset - 4, `magic is ${magic}, expected ${expect}`);
  }
  const kind = IMAGE_KINDS[magic];
  if (!kind) throw new ImageError(r.path, r.offset - 4, `image ${magic} has no entry format`);
  return { magic, kind };
}

/**
 * Writes one image file: magic first, then entries (and their blobs) through a buffer that grows to 1 MiB. M and X
 * are the message and blob types when the image's kind is known (ImageDir.writer), untyped otherwise.
 */
export class ImageWriter<M extends object = object, X extends Extra = Extra> {
  readonly kind: ImageKind;
  private readonly w: FileWriter;
  private index = 0;

  constructor(
    path: string,
    readonly magic: MagicName,
  ) {
    const kind = IMAGE_KINDS[magic];
    if (!kind) throw new Error(`image ${magic} has no entry format`);
    this.kind = kind;
    this.w = new FileWriter(path);
    const head = headMagicOf(magic);
    if (head !== undefined) this.w.u32(head);
    this.w.u32(MAGICS[magic]);
  }

  get path(): string {
    return this.w.path;
  }

  /** Appends an entry; `extra` is required for kinds that carry a blob. */
  write(message: M, extra?: X): void {
    const type = this.index === 0 ? this.kind.message : this.followingType();
    if (type === 'pagemap_entry') {
      this.writePagemapEntry(message as PagemapEntry);
    } else {
      this.writePayload(encodeMessage(type as MessageName, message as never));
    }
    this.index++;
    if (this.kind.extra) {
      if (extra === undefined) throw new Error(`${this.magic} entry needs its extra blob`);
      writeExtra(this.kind.extra, message as Record<string, unknown>, extra, this.w);
    } else if (extra !== undefined) {
      if (this.kind.layout !== 'ghost') throw new Error(`${this.magic} entries carry no extra blob`);
      this.w.write(extra as Buffer);
    }
  }

  /** Raw bytes straight after the last entry (ghost file contents). */
  writeRaw(bytes: Uint8Array): void {
    this.w.write(bytes);
  }

  close(): void {
    this.w.close();
  }

  private followingType(): string {
    if (this.kind.layout === 'pagemap') return 'pagemap_entry';
    if (this.kind.layout === 'ghost') return 'ghost_chunk_entry';
    return this.kind.message;
  }

  private writePayload(bytes: Uint8Array): void {
    this.w.u32(bytes.length);
    this.w.write(bytes);
  }

  private writePagemapEntry(e: PagemapEntry): void {
    // Encode in place after a length word, then fill the length in: no intermediate buffers.
    const slot = this.w.reserve(4 + MAX_PAGEMAP_ENTRY_BYTES);
    const end = encodePagemapEntryInto(e, slot, 4);
    slot.writeUInt32LE(end - 4, 0);
    this.w.unreserve(slot.length - end);
  }
}

/** Reads a whole image: its magic name and every entry. */
export function readImage(path: string, expect?: MagicName): { magic: MagicName; entries: ImageEntry[] } {
  const r = ImageReader.open(path, expect);
  return { magic: r.magic, entries: r.readAll() };
}

/** Writes a whole image at once. */
export function writeImage(
  path: string,
  magic: MagicName,
  entries: Array<{ message: object; extra?: Extra }>,
): void {
  const w = new ImageWriter(path, magic);
  try {
    for (const e of entries) w.write(e.message, e.extra);
  } finally {
    w.close();
  }
}
