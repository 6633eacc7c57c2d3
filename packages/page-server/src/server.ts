import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ImageRawWriter, ImageWriter, imageFileName, pagemapEntry } from '@criu-ts/images';
import { alignedBuffer } from '@criu-ts/sys';
import {
  decodeDstId,
  decodeHeader,
  detectLayout,
  HEADER_SIZE,
  type Header,
  type HeaderLayout,
  knownFlags,
  opName,
  PAGE_SIZE,
  type PagemapKind,
  PageServerError,
  PE_PARENT,
  PE_PRESENT,
  PS_IOV_ADD,
  PS_IOV_ADD_F,
  PS_IOV_CLOSE,
  PS_IOV_FORCE_CLOSE,
  PS_IOV_GET,
  PS_IOV_HOLE,
  PS_IOV_OPEN,
  PS_IOV_OPEN2,
  PS_IOV_PARENT,
} from './protocol.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface ReceiveOptions {
  /** The images directory the pagemaps and pages go to. */
  dir: string;
  /** The header layout, or 'auto' (the default): told from the first header (see detectLayout). */
  layout?: HeaderLayout | 'auto';
  /**
   * Pages images are numbered from this base + 1, as CRIU's page server does (0x10000: the first is
   * pages-65537.img), so that they never clash with the pages images a local dump writes.
   */
  pagesIdBase?: number;
  /** Where the session's messages go (CRIU's page-server log lines). */
  log?: (level: LogLevel, msg: string) => void;
}

export interface ReceivedPagemap {
  kind: PagemapKind;
  id: bigint;
  /** File names in the images directory. */
  pagemap: string;
  pages: string;
  /** Pages received (PE_PRESENT runs). */
  pagesReceived: bigint;
}

export interface ReceiveResult {
  layout: HeaderLayout;
  pagemaps: ReceivedPagemap[];
  /** Pages received in all. */
  pages: bigint;
}

/** The end of the highest address a run may reach (x86_64 with 5-level paging: 57 bits). */
const ADDRESS_LIMIT = 1n << 57n;
const PAGE = BigInt(PAGE_SIZE);

/** One pagemap being received: written in the session's staging directory. */
class OpenPagemap {
  readonly pagemap: ImageWriter;
  readonly pages: ImageRawWriter;
  readonly info: ReceivedPagemap;
  /** The end of the last run: runs come in address order. */
  end = 0n;
  private buf: Buffer = alignedBuffer(WRITE_CHUNK);
  private used = 0;
  private readonly free: Buffer[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private error: Error | undefined;

  constructor(
    staging: string,
    readonly dstId: bigint,
    kind: PagemapKind,
    id: bigint,
    pagesId: number,
  ) {
    const pagemap = imageFileName(kind === 'task' ? 'pagemap-%lu' : 'pagemap-shmem-%lu', id);
    const pages = imageFileName('pages-%u', pagesId);
    this.info = { kind, id, pagemap, pages, pagesReceived: 0n };
    this.pagemap = new ImageWriter(join(staging, pagemap), 'PAGEMAP');
    try {
      this.pagemap.write({ pages_id: pagesId });
      // Past the page cache where the file system allows it (whole pages from aligned buffers).
      this.pages = new ImageRawWriter(join(staging, pages), { direct: true });
    } catch (e) {
      this.pagemap.close();
      throw e;
    }
  }

  /**
   * Page data, gathered into large writes (a socket hands it over 64 KiB at a time) made in libuv's
   * thread pool while the socket is read on; `busy` says when two are under way (the caller waits).
   */
  write(data: Buffer): void {
    if (this.error) throw this.error;
    let p = 0;
    while (p < data.length) {
      const n = Math.min(data.length - p, this.buf.length - this.used);
      data.copy(this.buf, this.used, p, p + n);
      this.used += n;
      p += n;
      if (this.used === this.buf.length) this.flush();
    }
  }

  get busy(): boolean {
    return this.inflight.size >= 2;
  }

  /** Until fewer than two writes are under way. */
  async settle(): Promise<void> {
    while (this.busy) await Promise.race(this.inflight);
    if (this.error) throw this.error;
  }

  /** The last data written, the files closed. */
  async close(): Promise<void> {
    try {
      this.flush();
      await Promise.all(this.inflight);
      if (this.error) throw this.error;
    } finally {
      this.closeNow();
    }
  }

  /** Closes the files at once (a session thrown away; writes under way end on their own). */
  closeNow(): void {
    try {
      this.pagemap.close();
    } finally {
      this.pages.close();
    }
  }

  private flush(): void {
    if (this.used === 0) return;
    const b = this.buf;
    const w: Promise<void> = this.pages.writeAsync(b.subarray(0, this.used)).then(
      () => {
        this.inflight.delete(w);
        this.free.push(b);
      },
      (e: unknown) => {
        this.inflight.delete(w);
        this.error ??= e instanceof Error ? e : new Error(String(e));
      },
    );
    this.inflight.add(w);
    this.buf = this.free.pop() ?? alignedBuffer(WRITE_CHUNK);
    this.used = 0;
  }
}

/** Bytes of page data gathered before a write. */
const WRITE_CHUNK = 4 * 1024 * 1024;

/**
 * One page-server session: the headers and page data of one connection, written as pagemap and pages
 * images. Everything goes to a staging directory inside `dir` first and is renamed into `dir` when the
 * client says CLOSE, before the server answers it: a session that breaks off (a truncated stream, an
 * unknown command, a bad run, a peer that went away) leaves no image behind, and a client that got its
 * answer to CLOSE knows its memory is on the server's disk.
 */
export class PageServerSession {
  private layout: HeaderLayout | undefined;
  private headerSize = 24;
  private readonly head = Buffer.alloc(32);
  private headGot = 0;
  /** Bytes of page data still to come for the current run. */
  private dataLeft = 0;
  private staging: string | undefined;
  private current: OpenPagemap | undefined;
  private readonly done: ReceivedPagemap[] = [];
  private readonly opened = new Set<string>();
  private pagesId: number;
  private total = 0n;
  /** After CLOSE: the session is over; a 4.2 client whose CLOSE was read as 4.1's may send 8 zeroes more. */
  private closed = false;
  private trailing = 0;
  private ambiguousClose = false;
  private failed: Error | undefined;
  private readonly closing: Promise<void>[] = [];
  private committing: Promise<void> | undefined;
  private committed = false;
  private readonly log: (level: LogLevel, msg: string) => void;

  constructor(
    private readonly opts: ReceiveOptions,
    private readonly reply: (b: Buffer) => void,
  ) {
    this.layout = opts.layout === 'auto' || opts.layout === undefined ? undefined : opts.layout;
    if (this.layout) this.headerSize = HEADER_SIZE[this.layout];
    this.pagesId = opts.pagesIdBase ?? 0x10000;
    this.log = opts.log ?? (() => undefined);
  }

  /** Whether CLOSE was received and answered: the images are in place. */
  get complete(): boolean {
    return this.committed;
  }

  /**
   * What the connection must wait for before it reads on (undefined: nothing): two writes of page data
   * under way, or the images put in place after CLOSE. Rejects with the session's error.
   */
  wait(): Promise<void> | undefined {
    if (this.committing && !this.committed) return this.committing;
    if (this.current?.busy) return this.current.settle();
    if (this.closing.length > 4) {
      const all = Promise.all(this.closing.splice(0));
      this.closing.push(all.then(() => undefined));
      return all.then(() => undefined);
    }
    return undefined;
  }

  result(): ReceiveResult {
    return { layout: this.layout ?? 'criu-4.1', pagemaps: this.done, pages: this.total };
  }

  /**
   * Feeds bytes from the connection; rejects with a PageServerError on a broken stream (then call
   * abort()). One push at a time: the next waits for this one.
   */
  push(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    try {
      let p = 0;
      while (p < chunk.length) {
        if (this.closed) {
          p = this.afterClose(chunk, p);
          continue;
        }
        if (this.dataLeft > 0) {
          const n = Math.min(this.dataLeft, chunk.length - p);
          const cur = this.current!;
          cur.write(chunk.subarray(p, p + n));
          this.dataLeft -= n;
          p += n;

          continue;
        }
        const want = this.layout ? this.headerSize : 24;
        const n = Math.min(want - this.headGot, chunk.length - p);
        chunk.copy(this.head, this.headGot, p, p + n);
        this.headGot += n;
        p += n;
        if (this.headGot < want) continue;
        if (!this.layout) {
          const detected = detectLayout(this.head);
          this.layout = detected ?? 'criu-4.1';
          this.ambiguousClose = detected === undefined;
          this.headerSize = HEADER_SIZE[this.layout];
          this.log('info', `Header layout: ${this.layout}${detected ? '' : ' (a session with no memory)'}`);
          if (this.headGot < this.headerSize) continue;
        }
        this.headGot = 0;
        this.command(decodeHeader(this.layout, this.head));
      }
    } catch (e) {
      this.failed =
        e instanceof PageServerError ? e : new PageServerError(e instanceof Error ? e.message : String(e));
      throw this.failed;
    }
  }

  /** The peer closed its side: an error unless CLOSE came first (then wait() for its answer). */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.closed) return;
    let where: string;
    if (this.dataLeft > 0) where = `${this.dataLeft} bytes of page data missing`;
    else if (this.headGot > 0) where = `in a header (${this.headGot} of ${this.headerSize} bytes)`;
    else where = 'between two commands';
    this.failed = new PageServerError(
      `the connection was closed before CLOSE (${where}): the data were not flushed`,
    );
    throw this.failed;
  }

  /** Drops everything this session wrote (nothing of it was taken as complete). */
  abort(): void {
    try {
      this.current?.closeNow();
    } catch {
      // closing what is thrown away
    }
    this.current = undefined;
    const staging = this.staging;
    // Writes still under way end in files already unlinked.
    if (staging) rmSync(staging, { recursive: true, force: true });
    this.staging = undefined;
  }

  private afterClose(chunk: Buffer, p: number): number {
    // CRIU 4.2's CLOSE read as 4.1's (a session with no memory) leaves 8 zero bytes.
    const n = chunk.length - p;
    const zero = chunk.subarray(p).every((b) => b === 0);
    this.trailing += n;
    if (!this.ambiguousClose || !zero || this.trailing > 8)
      throw new PageServerError('unexpected data after CLOSE');
    return chunk.length;
  }

  private command(h: Header): void {
    switch (h.op) {
      case PS_IOV_OPEN:
      case PS_IOV_OPEN2:
        this.open(h, h.op === PS_IOV_OPEN2);
        return;
      case PS_IOV_PARENT: {
        const target = this.target(h);
        const r = Buffer.alloc(4);
        r.writeInt32LE(this.hasParent(target.kind, target.id) ? 1 : 0);
        this.reply(r);
        return;
      }
      case PS_IOV_ADD:
      case PS_IOV_ADD_F:
      case PS_IOV_HOLE: {
        const flags = h.op === PS_IOV_ADD_F ? h.flags : h.op === PS_IOV_ADD ? PE_PRESENT : PE_PARENT;
        this.add(h, flags);
        return;
      }
      case PS_IOV_CLOSE:
      case PS_IOV_FORCE_CLOSE:
        // Answered once every image is written and in place (see wait()).
        this.closed = true;
        this.committing = this.commit().then(() => {
          this.committed = true;
          this.log('info', `${opName(h.op)}: ${this.done.length} pagemaps, ${this.total} pages received`);
          this.reply(Buffer.alloc(4));
        });
        this.committing.catch(() => undefined);
        return;
      case PS_IOV_GET:
        throw new PageServerError('GET: lazy pages are not supported by criu-ts page-server yet');
      default:
        throw new PageServerError(
          `Unknown command ${h.op | (h.flags << 16)} (0x${(h.op | (h.flags << 16)).toString(16)})`,
        );
    }
  }

  private target(h: Header): { kind: PagemapKind; id: bigint } {
    const t = decodeDstId(h.dstId);
    if (!t)
      throw new PageServerError(
        `${opName(h.op)}: unknown pagemap type ${h.dstId & 0xffn} in dst_id 0x${h.dstId.toString(16)}`,
      );
    return t;
  }

  private hasParent(kind: PagemapKind, id: bigint): boolean {
    const name = imageFileName(kind === 'task' ? 'pagemap-%lu' : 'pagemap-shmem-%lu', id);
    return existsSync(join(this.opts.dir, 'parent', name));
  }

  private open(h: Header, answer: boolean): void {
    const { kind, id } = this.target(h);
    this.finishCurrent();
    const key = `${kind}:${id}`;
    if (this.opened.has(key))
      throw new PageServerError(`${opName(h.op)}: the ${kind} pagemap ${id} was sent twice`);
    this.opened.add(key);
    this.staging ??= mkdtempSync(join(this.opts.dir, '.page-server-'));
    this.current = new OpenPagemap(this.staging, h.dstId, kind, id, ++this.pagesId);
    this.log('info', `Opening ${kind} ${id}: ${this.current.info.pagemap}, ${this.current.info.pages}`);
    if (answer) this.reply(Buffer.of(this.hasParent(kind, id) ? 1 : 0));
  }

  private add(h: Header, flags: number): void {
    if (!this.current || this.current.dstId !== h.dstId) {
      // CRIU's "Deprecated IO w/o open": old clients add without opening first.
      this.log('warn', 'Deprecated IO w/o open');
      this.open(h, false);
    }
    const cur = this.current!;
    const what = `${opName(h.op)} at 0x${h.vaddr.toString(16)}`;
    if (!knownFlags(flags)) throw new PageServerError(`${what}: unknown page flags 0x${flags.toString(16)}`);
    if (h.nrPages === 0n) throw new PageServerError(`${what}: a run of 0 pages`);
    if (h.vaddr % PAGE !== 0n) throw new PageServerError(`${what}: the address is not page-aligned`);
    const end = h.vaddr + h.nrPages * PAGE;
    if (end > ADDRESS_LIMIT)
      throw new PageServerError(
        `${what}: ${h.nrPages} pages do not fit (the run would end past 0x${ADDRESS_LIMIT.toString(16)})`,
      );
    if (h.vaddr < cur.end)
      throw new PageServerError(
        `${what}: the run overlaps or precedes the previous one (ending at 0x${cur.end.toString(16)})`,
      );
    cur.end = end;
    cur.pagemap.write(pagemapEntry(h.vaddr, h.nrPages, flags));
    if (flags & PE_PRESENT) {
      this.dataLeft = Number(h.nrPages * PAGE);
      cur.info.pagesReceived += h.nrPages;
      this.total += h.nrPages;
    }
  }

  /** The current pagemap's last writes and close go on in the background (commit waits for them). */
  private finishCurrent(): void {
    if (!this.current) return;
    const cur = this.current;
    this.current = undefined;
    const c = cur.close();
    c.catch(() => undefined);
    this.closing.push(c);
    this.done.push(cur.info);
  }

  /** CLOSE: every staged image into the images directory, then the staging directory goes. */
  private async commit(): Promise<void> {
    this.finishCurrent();
    await Promise.all(this.closing);
    if (!this.staging) return;
    for (const name of readdirSync(this.staging))
      renameSync(join(this.staging, name), join(this.opts.dir, name));
    rmSync(this.staging, { recursive: true, force: true });
    this.staging = undefined;
  }
}

/**
 * Receives one dump's memory from a connected socket into `opts.dir`; resolves once the client said CLOSE
 * and closed its side, rejects with a PageServerError (and no image left behind) on a broken stream.
 */
export function receivePages(socket: Socket, opts: ReceiveOptions): Promise<ReceiveResult> {
  return new Promise((resolve, reject) => {
    const session = new PageServerSession(opts, (b) => socket.write(b));
    socket.setNoDelay(true);
    let settled = false;
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      if (!session.complete) session.abort();
      socket.destroy();
      reject(
        e instanceof PageServerError ? e : new PageServerError(e instanceof Error ? e.message : String(e)),
      );
    };
    /** What the session waits for (writes, the answer to CLOSE), the socket paused meanwhile. */
    let waiting: Promise<void> | undefined;
    const settleAfter = (fn: () => void) => {
      if (waiting) waiting.then(fn, fail);
      else fn();
    };
    socket.on('data', (chunk: Buffer) => {
      if (settled) return;
      try {
        session.push(chunk);
      } catch (e) {
        fail(e);
        return;
      }
      const w = session.wait();
      if (!w) return;
      socket.pause();
      waiting = w.then(() => {
        waiting = undefined;
        if (!settled) socket.resume();
      });
      waiting.catch(fail);
    });
    socket.on('end', () =>
      settleAfter(() => {
        if (settled) return;
        try {
          session.end();
        } catch (e) {
          fail(e);
          return;
        }
        // CLOSE came: its answer (the images in place) may still be under way.
        const w = session.wait() ?? Promise.resolve();
        w.then(() => {
          if (settled) return;
          settled = true;
          socket.end();
          resolve(session.result());
        }, fail);
      }),
    );
    socket.on('error', (e) =>
      settleAfter(() => {
        // The answer to CLOSE was sent: the images are complete whatever happens to the socket now.
        if (session.complete) {
          if (!settled) {
            settled = true;
            resolve(session.result());
          }
        } else
          fail(new PageServerError(`connection error: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
      }),
    );
    socket.on('close', () =>
      settleAfter(() => {
        if (session.complete) {
          if (!settled) {
            settled = true;
            resolve(session.result());
          }
        } else fail(new PageServerError('the connection was closed before CLOSE: the data were not flushed'));
      }),
    );
  });
}

export interface ListenOptions {
  /** The address to bind (default: every address, as CRIU's page server without --address). */
  host?: string;
  /** The port; 0 or none binds a free one (CRIU 1.4's auto-bind), read it from `port` after listen. */
  port?: number;
}

/** A listening page server: `accept()` takes one connection at a time. */
export class PageServerListener {
  private readonly pending: Socket[] = [];
  private waiter: ((s: Socket) => void) | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly address: string,
  ) {
    server.on('connection', (s) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(s);
      } else this.pending.push(s);
    });
  }

  static async listen(opts: ListenOptions = {}): Promise<PageServerListener> {
    // Half-open: a client's FIN after CLOSE must not close the socket before the session has answered.
    const server = createServer({ noDelay: true, allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.host, port: opts.port ?? 0, backlog: 1, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address();
    if (a === null || typeof a === 'string') throw new PageServerError('the page server has no TCP address');
    return new PageServerListener(server, a.port, a.address);
  }

  /** The next connection. */
  accept(): Promise<Socket> {
    const s = this.pending.shift();
    if (s) return Promise.resolve(s);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Stops listening at once (connections already accepted go on). */
  close(): void {
    for (const s of this.pending.splice(0)) s.destroy();
    this.server.close();
  }
}

/**
 * CRIU's `page-server` in one call: listens, takes one connection, receives one dump's memory into
 * `opts.dir`, stops listening. `onListening` is told the port (useful with port 0).
 */
export async function servePages(
  opts: ReceiveOptions & ListenOptions & { onListening?: (port: number, address: string) => void },
): Promise<ReceiveResult> {
  const listener = await PageServerListener.listen(opts);
  let socket: Socket;
  try {
    opts.onListening?.(listener.port, listener.address);
    socket = await listener.accept();
  } finally {
    listener.close();
  }
  opts.log?.('info', `Accepted connection from ${socket.remoteAddress}:${socket.remotePort}`);
  return receivePages(socket, opts);
}
