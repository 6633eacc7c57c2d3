import { lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ImageError, ImageWriteError } from './errors.js';
import type { Extra } from './extras.js';
import type {
  CoreEntry,
  FdinfoEntry,
  FileEntry,
  FsEntry,
  InventoryEntry,
  MmEntry,
  PstreeEntry,
  TaskKobjIdsEntry,
} from './gen/types.js';
import { type ImageEntry, ImageReader, ImageWriter, readImage } from './image-file.js';
import { fileKindOf, pseudoFsOf } from './io/open.js';
import {
  type AnyImagePattern,
  type EntriesOf,
  type ExtraOf,
  type IdArgs,
  type IdOf,
  IMAGE_NAMES,
  type ImageId,
  type ImageName,
  type ImagePattern,
  imageFileName,
  type MessageOf,
  type PatternsReadableAs,
  parseImageFileName,
} from './kinds.js';
import type { MagicName } from './magic.js';
import { PageMap, PageMapWriter, type RawWriterOptions } from './pagemap/page-map.js';

export interface ImageFileInfo {
  file: string;
  name: ImageName;
  id?: string;
}

/** The magic an image of this name must have (undefined for unknown names and raw images). */
function magicOf(pattern: string): MagicName | undefined {
  const magic = IMAGE_NAMES.find((x) => x.pattern === pattern)?.magic;
  return magic === 'RAW' ? undefined : magic;
}

function nameOf(pattern: string): ImageName {
  const n = IMAGE_NAMES.find((x) => x.pattern === pattern);
  if (!n) throw new Error(`unknown image name pattern ${pattern}`);
  return n;
}

/**
 * A directory of images, as `criu dump -D DIR` leaves it. Reads images by name pattern and
 * id (`dir.read('core-%u', 42)`), writes new ones (mode 0600, replacing old ones). Reads and
 * writes are typed by the pattern (ImageTypes, generated with the codecs): a message of another
 * kind, or a missing id, does not compile.
 */
export class ImageDir {
  /** Entries of the images in MEMO_PATTERNS read so far, by file path (withMemo()). */
  private memo: Map<string, ImageEntry[]> | undefined;

  private constructor(readonly path: string) {}

  /**
   * The same directory, keeping the images several parts of a restore read (inventory, pstree, ids,
   * fdinfo: all small) once read, so each is read and decoded once. The entries are shared between the
   * readers: not to be changed. For images that do not change while it is used (one restore); writing
   * one through this object forgets it.
   */
  withMemo(): ImageDir {
    const d = new ImageDir(this.path);
    d.memo = new Map();
    return d;
  }

  /** An existing image directory. */
  static open(path: string): ImageDir {
    refusePseudoFs(path);
    let isDir = false;
    try {
      isDir = statSync(path).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new ImageError(path, 0, 'image directory does not exist');
      throw new ImageError(path, 0, `image directory cannot be reached: ${code ?? err}`);
    }
    if (!isDir) throw new ImageError(path, 0, 'not a directory');
    return new ImageDir(path);
  }

  /** An image directory to write to; created with mode 0700 when missing. */
  static create(path: string): ImageDir {
    refusePseudoFs(path);
    if (!lexists(path)) {
      try {
        mkdirSync(path, { recursive: true, mode: 0o700 });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        throw new ImageError(path, 0, `cannot create the image directory: ${code}`);
      }
    }
    return ImageDir.open(path);
  }

  /** Every image file in the directory that has a CRIU name, sorted by file name. */
  list(): ImageFileInfo[] {
    const out: ImageFileInfo[] = [];
    for (const file of readdirSync(this.path).sort()) {
      const hit = parseImageFileName(file);
      if (hit) out.push({ file, ...hit });
    }
    return out;
  }

  /**
   * The path of an image: `dir.fileName('core-%u', 42)` is DIR/core-42.img. fileName, has and
   * checkCanWrite take any pattern (AnyImagePattern, or a string found at run time): no messages.
   */
  fileName(pattern: AnyImagePattern | (string & {}), id?: ImageId): string {
    return this.pathOf(pattern, id);
  }

  /**
   * Whether a file of that name is there, whatever it is (lstat: a dangling symlink or an unreadable
   * file is there too, and reading it says what is wrong with it rather than "missing").
   */
  has(pattern: AnyImagePattern | (string & {}), id?: ImageId): boolean {
    return lexists(this.pathOf(pattern, id));
  }

  /** Every entry of an image, typed by its kind: `dir.read('pipes-data')` has PipeDataEntry messages. */
  read<K extends ImagePattern>(pattern: K, ...id: IdArgs<K>): ImageEntry<MessageOf<K>, ExtraOf<K>>[] {
    return this.readEntries(pattern, id[0]) as ImageEntry<MessageOf<K>, ExtraOf<K>>[];
  }

  /** The messages of an image, typed by its kind: `dir.messages('fdinfo-%u', filesId)` is FdinfoEntry[]. */
  messages<K extends ImagePattern>(pattern: K, ...id: IdArgs<K>): MessageOf<K>[];
  /**
   * The messages of an image as T, a supertype of the kind's message, checked at compile time:
   * `dir.messages<{ bytes: number }>('fifo-data')`.
   */
  messages<T, K extends PatternsReadableAs<T> = PatternsReadableAs<T>>(pattern: K, ...id: IdArgs<K>): T[];
  messages(pattern: ImagePattern, id?: ImageId): unknown[] {
    return this.readEntries(pattern, id).map((e) => e.message);
  }

  /** The single entry of a one-entry image (inventory, core, mm, fs, ids), typed by its kind. */
  one<K extends ImagePattern>(pattern: K, ...id: IdArgs<K>): MessageOf<K>;
  /** The single entry of a one-entry image as T, a supertype of the kind's message. */
  one<T, K extends PatternsReadableAs<T> = PatternsReadableAs<T>>(pattern: K, ...id: IdArgs<K>): T;
  one(pattern: ImagePattern, id?: ImageId): unknown {
    const all = this.readEntries(pattern, id);
    if (all.length !== 1) {
      throw new ImageError(this.pathOf(pattern, id), 0, `expected one entry, found ${all.length}`);
    }
    return all[0]!.message;
  }

  /** A reader of an image, entry by entry (untyped entries: for images too big to read at once). */
  open<K extends ImagePattern>(pattern: K, ...id: IdArgs<K>): ImageReader {
    return ImageReader.open(this.pathOf(pattern, id[0]), magicOf(pattern));
  }

  inventory(): InventoryEntry {
    return this.one('inventory');
  }
  pstree(): PstreeEntry[] {
    return this.messages('pstree');
  }
  core(tid: number | bigint): CoreEntry {
    return this.one('core-%u', tid);
  }
  mm(pid: number | bigint): MmEntry {
    return this.one('mm-%u', pid);
  }
  ids(pid: number | bigint): TaskKobjIdsEntry {
    return this.one('ids-%u', pid);
  }
  fs(pid: number | bigint): FsEntry {
    return this.one('fs-%u', pid);
  }
  files(): FileEntry[] {
    return this.has('files') ? this.messages('files') : [];
  }
  fdinfo(filesId: number | bigint): FdinfoEntry[] {
    return this.messages('fdinfo-%u', filesId);
  }

  pageMap(pid: number | bigint): PageMap {
    return PageMap.forTask(this.path, pid);
  }

  /** The pages of shared memory object `shmid` (pagemap-shmem-SHMID.img). */
  shmemPageMap(shmid: number | bigint): PageMap {
    return PageMap.forShmem(this.path, shmid);
  }

  /**
   * Before writing: every file of the directory with an image's name (or just the one named) must be a
   * regular file, which a new image replaces. A symlink, FIFO, device, socket or directory planted under
   * an image's name is refused here, before a dump or restore has done anything, with one line naming
   * it; writers refuse it too (O_EXCL | O_NOFOLLOW), but only when they get to it.
   */
  checkCanWrite(pattern?: AnyImagePattern | (string & {}), id?: ImageId): void {
    const names = pattern === undefined ? this.list().map((f) => f.file) : [imageFileName(pattern, id)];
    for (const name of names) {
      const path = join(this.path, name);
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new ImageWriteError(path, (err as NodeJS.ErrnoException).code ?? String(err));
      }
      if (!st.isFile())
        throw new ImageWriteError(
          path,
          `it exists and is ${fileKindOf(st)}: not replaced, not written through`,
        );
    }
  }

  /** A writer for a new image, typed by its kind; the magic comes from the name pattern. */
  writer<K extends ImagePattern>(pattern: K, ...id: IdArgs<K>): ImageWriter<MessageOf<K>, ExtraOf<K>> {
    return this.newWriter(pattern, id[0]);
  }

  /**
   * Writes a whole image at once, typed by its kind: `messages` are its entries (a pagemap's head
   * first), `extras` the blobs after them where the kind has some (pipes-data, tcp-stream-%x...).
   */
  write<K extends ImagePattern>(
    pattern: K,
    id: IdOf<K>,
    messages: EntriesOf<K>,
    extras?: readonly ExtraOf<K>[],
  ): void {
    this.writeAll(pattern, id, messages, extras);
  }

  /**
   * The untyped reads and writes, for a pattern only known at run time (a name from list(), a
   * pattern chosen by a table): the caller answers for the messages matching the kind.
   */
  readonly untyped = {
    read: (pattern: string, id?: ImageId): ImageEntry[] => this.readEntries(pattern, id),
    write: (
      pattern: string,
      id: ImageId | undefined,
      messages: readonly object[],
      extras?: readonly Extra[],
    ) => this.writeAll(pattern, id, messages, extras),
  };

  private writeAll(
    pattern: string,
    id: ImageId | undefined,
    messages: readonly object[],
    extras: readonly Extra[] | undefined,
  ): void {
    this.memo?.delete(this.pathOf(pattern, id));
    const w = this.newWriter(pattern, id);
    try {
      for (const [i, m] of messages.entries()) w.write(m, extras?.[i]);
    } finally {
      w.close();
    }
  }

  private pathOf(pattern: string, id: ImageId | undefined): string {
    return join(this.path, imageFileName(pattern, id));
  }

  private readEntries(pattern: string, id: ImageId | undefined): ImageEntry[] {
    const path = this.pathOf(pattern, id);
    if (!this.memo || !MEMO_PATTERNS.has(pattern)) return readImage(path, magicOf(pattern)).entries;
    let entries = this.memo.get(path);
    if (!entries) {
      entries = readImage(path, magicOf(pattern)).entries;
      this.memo.set(path, entries);
    }
    return entries;
  }

  private newWriter<M extends object, X extends Extra>(
    pattern: string,
    id: ImageId | undefined,
  ): ImageWriter<M, X> {
    const n = nameOf(pattern);
    if (n.magic === 'RAW') throw new Error(`${pattern} is a raw image: write it with ImageRawWriter`);
    return new ImageWriter<M, X>(this.pathOf(pattern, id), n.magic);
  }

  pageMapWriter(pid: number | bigint, pagesId: number, opts: RawWriterOptions = {}): PageMapWriter {
    return new PageMapWriter(this.path, pid, pagesId, 'pagemap-%lu', opts);
  }

  shmemPageMapWriter(shmid: number | bigint, pagesId: number): PageMapWriter {
    return new PageMapWriter(this.path, shmid, pagesId, 'pagemap-shmem-%lu');
  }
}

/** What withMemo() keeps: small images that several readers of one restore read. */
const MEMO_PATTERNS: ReadonlySet<string> = new Set(['inventory', 'pstree', 'ids-%u', 'fdinfo-%u']);

function lexists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (err) {
    // Not ENOENT (EACCES on the way, ELOOP...): something is there that cannot be looked at.
    const code = (err as NodeJS.ErrnoException).code;
    return code !== 'ENOENT' && code !== 'ENOTDIR';
  }
}

/**
 * An images directory in /proc, /sys or another of the kernel's pseudo filesystems is refused before
 * anything is created or opened there (a dump into /proc would hang on files that are not files).
 * The nearest existing ancestor decides for a directory still to be made.
 */
function refusePseudoFs(path: string): void {
  let at = resolve(path);
  while (!lexists(at) && dirname(at) !== at) at = dirname(at);
  const fs = pseudoFsOf(at);
  if (fs) throw new ImageError(path, 0, `is on ${fs}, not a place for images`);
}
