// A reusable, growable read buffer: a whole /proc file in as few read() calls as the kernel allows.
//
// seq_file hands out at most its internal buffer (one page, more for a single huge record) per
// read(), whatever the size asked for; plain proc files return everything at once. Either way the
// bytes land back to back in one Buffer that is kept for the next file, so reading a file costs
// no allocation once the buffer has reached the size of the largest file seen.

import { read } from '@criu-ts/sys';

export const DEFAULT_BUFFER_SIZE = 64 * 1024;

export class BfdBuffer {
  /** The bytes [0, len) are the last file read. Replaced (never shrunk) when it grows. */
  buf: Buffer;
  len = 0;

  constructor(initialSize = DEFAULT_BUFFER_SIZE) {
    this.buf = Buffer.allocUnsafe(Math.max(initialSize, 256));
  }

  /** Grow so that at least `need` bytes fit, keeping the first `keep` bytes. */
  ensure(need: number, keep = this.len): Buffer {
    if (need <= this.buf.length) return this.buf;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const nb = Buffer.allocUnsafe(size);
    if (keep > 0) this.buf.copy(nb, 0, 0, keep);
    this.buf = nb;
    return nb;
  }

  /**
   * Read `fd` from its current position to end of file into [0, len). Returns len.
   * `singleRecord`: the file is produced in one piece (seq_file single_open: stat, status,
   * fdinfo ...), so a read shorter than asked for is the end and the final empty read is skipped.
   */
  readFd(fd: number, singleRecord = false): number {
    let len = 0;
    for (;;) {
      if (len === this.buf.length) this.ensure(len + 1, len);
      const want = this.buf.length - len;
      const n = read(fd, this.buf, want, len);
      len += n;
      if (n === 0 || (singleRecord && n < want)) break;
    }
    this.len = len;
    return len;
  }

  /** The bytes of the last file as a fresh string (for tests and debugging). */
  toString(encoding: BufferEncoding = 'utf8'): string {
    return this.buf.toString(encoding, 0, this.len);
  }
}

/** The buffer every ProcDir shares unless it is given its own. */
export const sharedBuffer = new BfdBuffer();
