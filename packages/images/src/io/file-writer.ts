import { closeSync, writeSync } from 'node:fs';
import { writing } from '../errors.js';
import { createImageFile } from './open.js';

/** Entries are gathered and written 1 MiB at a time: one write() per MiB, never per entry. */
const CHUNK = 1024 * 1024;
/**
 * The buffer starts this small and doubles as entries come, up to CHUNK: most images are a few hundred
 * bytes, written with one write() at close, and a dump writes hundreds of them.
 */
const FIRST = 4096;

/**
 * An append-only writer of a new file, mode 0600 (images hold memory and secrets: CRIU 1.4
 * stopped making them group-writable). An existing image is replaced, as CRIU does, but created anew
 * (O_EXCL, O_NOFOLLOW): a symlink or anything else planted under the name is refused, never written through.
 */
export class FileWriter {
  private readonly fd: number;
  private buf = Buffer.allocUnsafe(FIRST);
  private used = 0;
  private written = 0;

  constructor(readonly path: string) {
    this.fd = createImageFile(path);
  }

  /** Bytes handed to the writer so far. */
  get offset(): number {
    return this.written + this.used;
  }

  /** Reserves `n` bytes in the buffer and returns them to be filled in place. */
  reserve(n: number): Buffer {
    if (n > CHUNK) throw new RangeError(`reserve(${n}) is larger than the write buffer`);
    this.room(n);
    const view = this.buf.subarray(this.used, this.used + n);
    this.used += n;
    return view;
  }

  /** Gives back the unused tail of the last reserve(). */
  unreserve(n: number): void {
    this.used -= n;
  }

  u32(value: number): void {
    this.reserve(4).writeUInt32LE(value >>> 0, 0);
  }

  write(bytes: Uint8Array): void {
    if (bytes.length > CHUNK / 4) {
      // Large blobs (pipe data, pages) go straight to the file.
      this.flush();
      this.writeAll(bytes);
      return;
    }
    this.room(bytes.length);
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  flush(): void {
    if (this.used === 0) return;
    this.writeAll(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  close(): void {
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
    }
  }

  /** Makes room for `n` more bytes (n <= CHUNK): the buffer grows up to CHUNK, then is flushed. */
  private room(n: number): void {
    const need = this.used + n;
    if (need <= this.buf.length) return;
    if (this.buf.length < CHUNK) {
      let size = this.buf.length * 2;
      while (size < need) size *= 2;
      const grown = Buffer.allocUnsafe(Math.min(size, CHUNK));
      this.buf.copy(grown, 0, 0, this.used);
      this.buf = grown;
      if (need <= grown.length) return;
    }
    this.flush();
  }

  private writeAll(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length)
      done += writing(this.path, () => writeSync(this.fd, bytes, done, bytes.length - done));
    this.written += bytes.length;
  }
}
