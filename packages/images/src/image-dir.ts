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
import { IMAGE_NAMES, type ImageName, imageFileName, parseImageFileName } from './kinds.js';
import type { MagicName } from './magic.js';
import { PageMap, PageMapWriter } from './pagemap/page-map.js';

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
 * id (`dir.read('core-%u', 42)`), writes new ones (mode 0600, replacing old ones).
 */
export class ImageDir {
  private constructor(readonly path: string) {}

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

  fileName(pattern: string, id?: number | bigint | string): string {
    return join(this.path, imageFileName(pattern, id));
  }

  /**
   * Whether a file of that name is there, whatever it is (lstat: a dangling symlink or an unreadable
   * file is there too, and reading it says what is wrong with it rather than "missing").
   */
  has(pattern: string, id?: number | bigint | string): boolean {
    return lexists(this.fileName(pattern, id));
  }

  /** Every entry of an image. */
  read(pattern: string, id?: number | bigint | string): ImageEntry[] {
    return readImage(this.fileName(pattern, id), magicOf(pattern)).entries;
  }

  /** The messages of an image, typed by the caller. */
  messages<T>(pattern: string, id?: number | bigint | string): T[] {
    return this.read(pattern, id).map((e) => e.message as T);
  }

  /** The single entry of a one-entry image (inventory, core, mm, fs, ids). */
  one<T>(pattern: string, id?: number | bigint | string): T {
    const all = this.messages<T>(pattern, id);
    if (all.length !== 1) {
      throw new ImageError(this.fileName(pattern, id), 0, `expected one entry, found ${all.length}`);
    }
    return all[0]!;
  }

  open(pattern: string, id?: number | bigint | string): ImageReader {
    return ImageReader.open(this.fileName(pattern, id), magicOf(pattern));
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
  checkCanWrite(pattern?: string, id?: number | bigint | string): void {
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

  /** A writer for a new image; the magic comes from the name pattern. */
  writer(pattern: string, id?: number | bigint | string): ImageWriter {
    const n = nameOf(pattern);
    if (n.magic === 'RAW') throw new Error(`${pattern} is a raw image: write it with ImageRawWriter`);
    return new ImageWriter(this.fileName(pattern, id), n.magic);
  }

  /** Writes a whole image at once. */
  write(
    pattern: string,
    id: number | bigint | string | undefined,
    messages: object[],
    extras?: Extra[],
  ): void {
    const w = this.writer(pattern, id);
    try {
      for (const [i, m] of messages.entries()) w.write(m, extras?.[i]);
    } finally {
      w.close();
    }
  }

  pageMapWriter(pid: number | bigint, pagesId: number): PageMapWriter {
    return new PageMapWriter(this.path, pid, pagesId);
  }

  shmemPageMapWriter(shmid: number | bigint, pagesId: number): PageMapWriter {
    return new PageMapWriter(this.path, shmid, pagesId, 'pagemap-shmem-%lu');
  }
}

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
