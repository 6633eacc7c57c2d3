// A datagram channel over a connected AF_UNIX SOCK_SEQPACKET fd that never blocks the event loop.
//
// Node's net module cannot wrap a SEQPACKET fd, so the fd stays a plain fd: every read() and write()
// runs in libuv's thread pool (fs.read / fs.write), and on SEQPACKET one read() returns exactly one
// datagram and one write() sends exactly one. A read() into a buffer shorter than the datagram returns
// the head and drops the rest without saying so, so the channel reads into a buffer one byte larger
// than the largest datagram it accepts: a read that fills it was cut, and is reported as such.
//
// A read that waits holds one thread of libuv's pool (UV_THREADPOOL_SIZE, 4 by default) until a
// datagram or the end comes. Reads happen only while a reply is awaited, never in the background.
// close() shuts the socket down first, which wakes a waiting read, and closes the fd only once no
// read or write uses it any more (so the number cannot be reused under a thread that still holds it).
import fs from 'node:fs';
import { close as closeFd, SHUT_RD, SHUT_RDWR, shutdown } from '@criu-ts/sys';

/**
 * The default limit: more than Linux lets one AF_UNIX datagram carry (its data is one kmalloc of at
 * most 4 MiB plus MAX_SKB_FRAGS pages: 4 MiB + 68 KiB measured on 6.18, whatever SO_SNDBUF allows).
 * The buffer is allocated once per channel and only the pages a datagram fills are ever touched.
 */
export const MAX_DATAGRAM = 8 << 20;

/** A datagram longer than the channel accepts: it was cut by the read and cannot be used. */
export class DatagramTruncatedError extends Error {
  override name = 'DatagramTruncatedError';
  constructor(readonly limit: number) {
    super(`a datagram longer than ${limit} bytes arrived and was truncated by the read`);
  }
}

/** The channel was closed by this side (close()) while an operation waited or after. */
export class ChannelClosedError extends Error {
  override name = 'ChannelClosedError';
}

export interface ChannelOptions {
  /** The longest datagram accepted (default MAX_DATAGRAM); a longer one is a DatagramTruncatedError. */
  maxDatagram?: number;
}

function readOnce(fd: number, buf: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function writeOnce(fd: number, buf: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

const code = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** One connected SOCK_SEQPACKET fd, owned by the channel from now on. */
export class SeqpacketChannel {
  readonly #fd: number;
  readonly #buf: Buffer;
  #closed = false;
  #fdClosed = false;
  /** Operations using the fd right now (in the pool). */
  #busy = 0;
  #idle: Array<() => void> = [];
  /** Reads and writes each run one at a time, in call order. */
  #readChain: Promise<unknown> = Promise.resolve();
  #writeChain: Promise<unknown> = Promise.resolve();

  constructor(fd: number, opts: ChannelOptions = {}) {
    const max = opts.maxDatagram ?? MAX_DATAGRAM;
    if (!Number.isInteger(max) || max < 1)
      throw new RangeError(`maxDatagram must be a positive integer, not ${max}`);
    this.#fd = fd;
    this.#buf = Buffer.allocUnsafe(max + 1);
  }

  /** The socket's fd (still owned by the channel). */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The longest datagram this channel accepts. */
  get maxDatagram(): number {
    return this.#buf.length - 1;
  }

  /**
   * The next datagram, or null at the end: the peer closed its end (or every process holding it
   * exited), or the channel was shut down. A zero-length datagram reads as the end too, as it does
   * for read(2). Rejects with DatagramTruncatedError for a datagram longer than maxDatagram.
   */
  receive(): Promise<Buffer | null> {
    const next = this.#readChain.then(() => this.#receiveNow());
    this.#readChain = next.catch(() => undefined);
    return next;
  }

  /** Send one datagram (resolves once the kernel took all of it). */
  send(datagram: Uint8Array): Promise<void> {
    const next = this.#writeChain.then(() => this.#sendNow(datagram));
    this.#writeChain = next.catch(() => undefined);
    return next;
  }

  async #receiveNow(): Promise<Buffer | null> {
    if (this.#closed) return null;
    this.#busy++;
    try {
      for (;;) {
        let n: number;
        try {
          n = await readOnce(this.#fd, this.#buf);
        } catch (e) {
          if (code(e) === 'EINTR' || code(e) === 'EAGAIN') continue;
          if (code(e) === 'ECONNRESET') return null;
          throw e;
        }
        if (n === 0) return null;
        if (n > this.maxDatagram) throw new DatagramTruncatedError(this.maxDatagram);
        return Buffer.from(this.#buf.subarray(0, n));
      }
    } finally {
      this.#done();
    }
  }

  async #sendNow(datagram: Uint8Array): Promise<void> {
    if (this.#closed) throw new ChannelClosedError('send on a closed channel');
    this.#busy++;
    try {
      for (;;) {
        try {
          const n = await writeOnce(this.#fd, datagram);
          // SEQPACKET sends all of a datagram or nothing; anything else is not this socket type.
          if (n !== datagram.length)
            throw new Error(`short write on a SEQPACKET socket: ${n} of ${datagram.length} bytes`);
          return;
        } catch (e) {
          if (code(e) === 'EINTR' || code(e) === 'EAGAIN') continue;
          throw e;
        }
      }
    } finally {
      this.#done();
    }
  }

  #done(): void {
    this.#busy--;
    if (this.#busy === 0) for (const wake of this.#idle.splice(0)) wake();
  }

  /**
   * No more datagrams will be read: a waiting receive() gets what is already queued, then the end.
   * Used when the peer process is known to be gone while something else may still hold its end.
   */
  shutdownRead(): void {
    if (this.#fdClosed) return;
    try {
      shutdown(this.#fd, SHUT_RD);
    } catch {
      // not connected any more: reads end anyway
    }
  }

  /** Shut the socket down (a waiting read ends), wait for the fd to be unused, close it. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        shutdown(this.#fd, SHUT_RDWR);
      } catch {
        // ENOTCONN: the peer is gone already
      }
    }
    if (this.#busy > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    if (!this.#fdClosed) {
      this.#fdClosed = true;
      closeFd(this.#fd);
    }
  }
}
