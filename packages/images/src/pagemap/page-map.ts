import {
  closeSync,
  constants,
  existsSync,
  write as fsWrite,
  openSync,
  readSync,
  realpathSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { ImageError, writing } from '../errors.js';
import { ImageReader, ImageWriter } from '../image-file.js';
import { createImageFile, openImageForRead } from '../io/open.js';
import { imageFileName } from '../kinds.js';
import { type PagemapEntry, PE_LAZY, PE_PARENT, PE_PRESENT, pageCount, pagemapEntry } from './codec.js';

/**
 * The page unit of pagemap and pages images (x86_64). It equals @criu-ts/sys's PAGE_SIZE, the one the
 * rest of criu-ts uses; images keeps its own so that reading images needs no native code (no sys).
 */
export const PAGE_SIZE = 4096;

/** One run of pages of a pagemap, with where its data sits in pages-N.img. */
export interface PageRun {
  vaddr: bigint;
  pages: bigint;
  flags: number;
  /** Byte offset of the run's first page in the pages file (PE_PRESENT runs only). */
  dataOffset: bigint;
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Flags of an entry: field 4, or the legacy in_parent (field 3) as PE_PARENT. */
function entryFlags(e: PagemapEntry): number {
  if (e.flags !== undefined) return e.flags;
  return e.in_parent ? PE_PARENT : PE_PRESENT;
}

/**
 * A task's memory as an image directory holds it: pagemap-PID.img lists runs of pages and
 * pages-N.img holds the present ones back to back. Pages of incremental dumps that did not
 * change live in the `parent` directory; lookups follow that chain.
 */
export class PageMap {
  readonly runs: PageRun[] = [];
  readonly pagesId: number;
  private pagesFd: number | undefined;
  private parentMap: PageMap | null | undefined;
  /** Real paths of the dumps from the first one down to this one (readPage's loop guard). */
  private chainDirs: Set<string> | undefined;

  constructor(
    readonly dir: string,
    readonly pagemapName: string,
  ) {
    const r = ImageReader.open(join(dir, pagemapName), 'PAGEMAP');
    try {
      const head = r.next();
      if (!head) throw new ImageError(r.path, 8, 'pagemap has no pagemap_head');
      this.pagesId = Number(head.message.pages_id);
      let data = 0n;
      for (const e of r.entries()) {
        const pe = e.message as unknown as PagemapEntry;
        const run = { vaddr: pe.vaddr, pages: pageCount(pe), flags: entryFlags(pe), dataOffset: data };
        if (run.flags & PE_PRESENT) data += run.pages * BigInt(PAGE_SIZE);
        this.runs.push(run);
      }
    } finally {
      r.close();
    }
  }

  /** The pagemap of task `pid` in `dir`. */
  static forTask(dir: string, pid: number | bigint): PageMap {
    return new PageMap(dir, imageFileName('pagemap-%lu', pid));
  }

  /** The pagemap of shared memory object `shmid` in `dir` (vaddr = offset in the object). */
  static forShmem(dir: string, shmid: number | bigint): PageMap {
    return new PageMap(dir, imageFileName('pagemap-shmem-%lu', shmid));
  }

  get pagesFile(): string {
    return join(this.dir, imageFileName('pages-%u', this.pagesId));
  }

  /** The run holding `addr`, by binary search (runs are in address order). */
  findRun(addr: bigint): PageRun | undefined {
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const run = this.runs[mid]!;
      if (addr < run.vaddr) hi = mid - 1;
      else if (addr >= run.vaddr + run.pages * BigInt(PAGE_SIZE)) lo = mid + 1;
      else return run;
    }
    return undefined;
  }

  /**
   * The contents of the page holding `addr`: from this dump's pages, or from the parent
   * dump's for PE_PARENT runs. Undefined when the page was not dumped (not present, or
   * lazy: a page server holds it).
   */
  readPage(addr: bigint): Buffer | undefined {
    const page = addr & ~BigInt(PAGE_SIZE - 1);
    const run = this.findRun(page);
    if (!run) return undefined;
    // PE_PARENT first, as CRIU reads (and restore: chain.ts's runSource).
    if (run.flags & PE_PARENT) return this.parent()?.readPage(page);
    if (run.flags & PE_PRESENT) {
      const at = run.dataOffset + (page - run.vaddr);
      return this.readPagesFile(at);
    }
    if (run.flags & PE_LAZY) return undefined;
    return undefined;
  }

  /** `len` bytes from `addr`, across pages; missing pages read as zeroes. */
  read(addr: bigint, len: number): Buffer {
    const out = Buffer.alloc(len);
    let done = 0;
    while (done < len) {
      const at = addr + BigInt(done);
      const inPage = Number(at & BigInt(PAGE_SIZE - 1));
      const n = Math.min(PAGE_SIZE - inPage, len - done);
      this.readPage(at)?.copy(out, done, inPage, inPage + n);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.pagesFd !== undefined) closeSync(this.pagesFd);
    this.pagesFd = undefined;
    this.parentMap?.close();
  }

  private readPagesFile(at: bigint): Buffer {
    if (this.pagesFd === undefined) {
      this.pagesFd = openImageForRead(this.pagesFile).fd;
    }
    const buf = Buffer.alloc(PAGE_SIZE);
    let n = 0;
    // A corrupt pagemap can put a page past what a file offset can be: that is missing data too.
    if (at <= BigInt(Number.MAX_SAFE_INTEGER)) {
      try {
        n = readSync(this.pagesFd, buf, 0, PAGE_SIZE, at);
      } catch (err) {
        const why = (err as NodeJS.ErrnoException).code ?? String(err);
        throw new ImageError(this.pagesFile, Number(at), `cannot read: ${why}`);
      }
    }
    if (n !== PAGE_SIZE) {
      throw new ImageError(this.pagesFile, Number(at), `page data missing (read ${n} of ${PAGE_SIZE} bytes)`);
    }
    return buf;
  }

  /**
   * The same pagemap in the parent dump, opened through the real path of the `parent` link (a chain of
   * any length, not stopped by the 40 symlinks one lookup may follow); none when the link is missing,
   * dangles, or leads back into the chain (a loop).
   */
  private parent(): PageMap | null {
    if (this.parentMap === undefined) {
      this.parentMap = null;
      let dir: string;
      try {
        dir = realpathSync(join(this.dir, 'parent'));
      } catch {
        return null;
      }
      const seen = this.chainDirs ?? new Set([realOrSelf(this.dir)]);
      if (!seen.has(dir) && existsSync(join(dir, this.pagemapName))) {
        const p = new PageMap(dir, this.pagemapName);
        p.chainDirs = new Set([...seen, dir]);
        this.parentMap = p;
      }
    }
    return this.parentMap;
  }
}

/**
 * Writes pagemap-PID.img and pages-N.img together: each run's entry, and for present runs
 * the page data, which goes straight to the file in large writes. With `pattern`
 * 'pagemap-shmem-%lu' it writes the pages of a shared memory object (`id` = its shmid).
 */
export class PageMapWriter {
  private readonly pagemap: ImageWriter;
  private readonly pages: ImageRawWriter;

  constructor(
    dir: string,
    id: number | bigint,
    pagesId: number,
    pattern: 'pagemap-%lu' | 'pagemap-shmem-%lu' = 'pagemap-%lu',
    opts: RawWriterOptions = {},
  ) {
    this.pagemap = new ImageWriter(join(dir, imageFileName(pattern, id)), 'PAGEMAP');
    this.pagemap.write({ pages_id: pagesId });
    this.pages = new ImageRawWriter(join(dir, imageFileName('pages-%u', pagesId)), opts);
  }

  /** A run whose pages follow in `data` (or in later writeData calls). */
  addPresent(vaddr: bigint, pages: number | bigint, data?: Uint8Array): void {
    this.pagemap.write(pagemapEntry(vaddr, pages, PE_PRESENT));
    if (data) this.pages.write(data);
  }

  /** A run whose pages are in the parent dump. */
  addParent(vaddr: bigint, pages: number | bigint): void {
    this.pagemap.write(pagemapEntry(vaddr, pages, PE_PARENT));
  }

  /** Page data of present runs, in the order the runs were added. */
  writeData(data: Uint8Array): void {
    this.pages.write(data);
  }

  /** writeData() in libuv's thread pool (see ImageRawWriter.writeAsync): `data` stays untouched until then. */
  writeDataAsync(data: Uint8Array): Promise<void> {
    return this.pages.writeAsync(data);
  }

  /** Whether page data still goes past the page cache (O_DIRECT). */
  get direct(): boolean {
    return this.pages.direct;
  }

  close(): void {
    try {
      this.pagemap.close();
    } finally {
      this.pages.close();
    }
  }
}

/** Bytes an O_DIRECT write must be a multiple of (and its buffer aligned to): a page covers every device. */
export const DIRECT_ALIGN = 4096;

export interface RawWriterOptions {
  /**
   * Write page data past the page cache (O_DIRECT) where the file system allows it: the caller passes
   * buffers aligned to DIRECT_ALIGN. Any write the kernel refuses that way (EINVAL: an unaligned buffer,
   * a file system without O_DIRECT) goes through the page cache, and so does every later one.
   */
  direct?: boolean;
}

/**
 * A raw image (no magic): pages, written in large chunks at increasing offsets. With `direct`, through a
 * second open file description of the same file (/proc/self/fd/N) opened O_DIRECT: the data goes to the
 * device without a copy into the page cache. On a VM whose RAM the host backs on first touch, filling
 * fresh page cache is the slowest step of a dump (~0.5 GB/s here against ~2-4 GB/s for O_DIRECT).
 */
export class ImageRawWriter {
  private readonly fd: number;
  private directFd: number | undefined;
  private pos = 0;
  constructor(
    readonly path: string,
    opts: RawWriterOptions = {},
  ) {
    this.fd = createImageFile(path);
    if (opts.direct) {
      try {
        this.directFd = openSync(`/proc/self/fd/${this.fd}`, constants.O_WRONLY | constants.O_DIRECT);
      } catch {
        this.directFd = undefined;
      }
    }
  }

  /** Whether writes still go past the page cache. */
  get direct(): boolean {
    return this.directFd !== undefined;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.pos;
  }

  write(data: Uint8Array): void {
    let done = this.writeDirect(data);
    while (done < data.length) {
      const at = this.pos;
      const n = writing(this.path, () => writeSync(this.fd, data, done, data.length - done, at));
      done += n;
      this.pos += n;
    }
  }

  /**
   * The same as write(), in libuv's thread pool: the caller may fill its next buffer meanwhile. `data`
   * must stay untouched until the promise settles; writes are placed by offset, so two may be in flight.
   */
  writeAsync(data: Uint8Array): Promise<void> {
    const at = this.pos;
    this.pos += data.length;
    const fd = this.directFd !== undefined && data.length % DIRECT_ALIGN === 0 ? this.directFd : this.fd;
    return new Promise<void>((resolve, reject) => {
      const step = (useFd: number, done: number) => {
        fsWrite(useFd, data, done, data.length - done, at + done, (err, n) => {
          if (err) {
            // Refused as O_DIRECT: again through the page cache, and from now on.
            if (useFd === this.directFd && err.code === 'EINVAL') {
              this.dropDirect();
              step(this.fd, done);
              return;
            }
            try {
              writing(this.path, () => {
                throw err;
              });
            } catch (wrapped) {
              reject(wrapped);
            }
            return;
          }
          if (done + n < data.length) step(useFd === this.directFd ? useFd : this.fd, done + n);
          else resolve();
        });
      };
      if (data.length === 0) resolve();
      else step(fd, 0);
    });
  }

  /** Writes what O_DIRECT takes of `data` at the current offset; returns the bytes written. */
  private writeDirect(data: Uint8Array): number {
    const fd = this.directFd;
    if (fd === undefined || data.length % DIRECT_ALIGN !== 0) return 0;
    let done = 0;
    try {
      while (done < data.length) {
        const n = writeSync(fd, data, done, data.length - done, this.pos);
        done += n;
        this.pos += n;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') {
        writing(this.path, () => {
          throw err;
        });
      }
      this.dropDirect();
    }
    return done;
  }

  private dropDirect(): void {
    if (this.directFd === undefined) return;
    closeSync(this.directFd);
    this.directFd = undefined;
  }

  close(): void {
    try {
      this.dropDirect();
    } finally {
      closeSync(this.fd);
    }
  }
}
