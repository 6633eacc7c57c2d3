import { closeSync, readSync } from 'node:fs';
import { ImageError } from '../errors.js';
import { openImageForRead } from './open.js';

/**
 * Reads are done in chunks of up to this size: one syscall per 256 KiB, never per entry. A file smaller
 * than that is read whole into a buffer of its own size (most images are a few hundred bytes: a restore
 * opens hundreds of them, and 256 KiB each would cost more in allocation and GC than the reads).
 */
const CHUNK = 256 * 1024;

const EMPTY = Buffer.alloc(0);

/**
 * A forward-only reader over one file with a reused chunk buffer, sized to the file (fstat) and
 * allocated at the first read. Every length it is asked for is checked against the file's size first,
 * so a corrupt length never makes it allocate or wait for bytes that do not exist.
 */
export class FileReader {
  readonly size: number;
  private readonly fd: number;
  private buf: Buffer = EMPTY;
  private start = 0; // file offset of buf[0]
  private end = 0; // file offset just past the buffered bytes
  private pos = 0; // current file offset

  constructor(readonly path: string) {
    // No symlink followed, no wait on a FIFO; anything but a regular file is refused, named.
    const { fd, size } = openImageForRead(path);
    this.fd = fd;
    this.size = size;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.size - this.pos;
  }

  atEnd(): boolean {
    return this.pos >= this.size;
  }

  /**
   * Returns the next `n` bytes as a view that stays valid until the next call.
   * `what` names the thing being read, for the error message.
   */
  take(n: number, what: string): Buffer {
    if (n > this.remaining) {
      throw new ImageError(
        this.path,
        this.pos,
        `${what} needs ${n} bytes but only ${this.remaining} remain (file size ${this.size})`,
      );
    }
    if (this.pos + n > this.end) this.fill(n);
    const at = this.pos - this.start;
    this.pos += n;
    return this.buf.subarray(at, at + n);
  }

  /** Like take(), but the bytes are copied and stay valid forever. */
  takeCopy(n: number, what: string): Buffer {
    return Buffer.from(this.take(n, what));
  }

  skip(n: number, what: string): void {
    if (n > this.remaining) {
      throw new ImageError(this.path, this.pos, `${what} of ${n} bytes runs past the end of the file`);
    }
    this.pos += n;
  }

  u32(what: string): number {
    // take() without the view: this runs once per entry.
    if (this.pos + 4 > this.end) return this.take(4, what).readUInt32LE(0);
    const v = this.buf.readUInt32LE(this.pos - this.start);
    this.pos += 4;
    return v;
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Makes at least `n` bytes from `pos` available in the buffer. */
  private fill(n: number): void {
    // n <= remaining (checked by the callers): never more than what is left of the file.
    const len = Math.max(n, Math.min(CHUNK, this.size - this.pos));
    if (this.buf.length < len) this.buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      let r: number;
      try {
        r = readSync(this.fd, this.buf, got, len - got, this.pos + got);
      } catch (err) {
        const why = (err as NodeJS.ErrnoException).code ?? String(err);
        throw new ImageError(this.path, this.pos + got, `cannot read: ${why}`);
      }
      if (r === 0) throw new ImageError(this.path, this.pos + got, 'file shrank while being read');
      got += r;
    }
    this.start = this.pos;
    this.end = this.pos + got;
  }
}
