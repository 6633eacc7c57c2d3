// Holes punched in pages images (--auto-dedup, `criu-ts dedup`): fallocate(PUNCH_HOLE | KEEP_SIZE) frees
// the disk blocks of pages that are no longer needed there while every other page keeps its offset.
// Neighbouring ranges of one file are joined into one call, as CRIU's page_read bunches them.
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, fallocate, O_CLOEXEC } from '@criu-ts/sys';

/** Joined ranges are punched once they reach this size (one call per 64 MiB at most). */
const BUNCH_MAX = 64n * 1024n * 1024n;

interface Bunch {
  fd: number;
  off: bigint;
  len: bigint;
}

/** Punches holes in pages files, by path; each opened read-write once (no symlink as last component). */
export class HolePuncher {
  private readonly open = new Map<string, Bunch>();
  /** Bytes punched so far. */
  punched = 0n;

  constructor(private readonly fail: (msg: string) => Error = (m) => new Error(m)) {}

  /** Frees `len` bytes at `off` of `path` (now or when a neighbour does not follow). */
  punch(path: string, off: bigint, len: bigint): void {
    if (len <= 0n) return;
    const b = this.bunchOf(path);
    if (b.len > 0n && b.off + b.len === off && b.len + len <= BUNCH_MAX) {
      b.len += len;
      return;
    }
    this.flushOne(path, b);
    b.off = off;
    b.len = len;
  }

  /** Punches what is pending. */
  flush(): void {
    for (const [path, b] of this.open) this.flushOne(path, b);
  }

  /** flush(), then the files are closed. */
  close(): void {
    try {
      this.flush();
    } finally {
      for (const b of this.open.values()) closeSync(b.fd);
      this.open.clear();
    }
  }

  private bunchOf(path: string): Bunch {
    let b = this.open.get(path);
    if (b) return b;
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK | O_CLOEXEC);
    } catch (e) {
      throw this.fail(
        `${path}: cannot open to punch holes (--auto-dedup): ${(e as NodeJS.ErrnoException).code ?? e}`,
      );
    }
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      throw this.fail(`${path} is not a regular file: no hole punched`);
    }
    b = { fd, off: 0n, len: 0n };
    this.open.set(path, b);
    return b;
  }

  private flushOne(path: string, b: Bunch): void {
    if (b.len === 0n) return;
    const { off, len } = b;
    b.len = 0n;
    try {
      fallocate(b.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
    } catch (e) {
      throw this.fail(`${path}: punching a hole of ${len} bytes at ${off} failed: ${(e as Error).message}`);
    }
    this.punched += len;
  }
}
