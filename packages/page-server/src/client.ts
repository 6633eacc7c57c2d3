import { connect, Socket } from 'node:net';
import {
  decodeDstId,
  encodeDstId,
  encodeHeader,
  type HeaderLayout,
  maxPagesPerHeader,
  PAGE_SIZE,
  type PagemapKind,
  PageServerError,
  PE_PARENT,
  PE_PRESENT,
  PS_IOV_ADD_F,
  PS_IOV_CLOSE,
  PS_IOV_FORCE_CLOSE,
  PS_IOV_OPEN2,
  PS_IOV_PARENT,
} from './protocol.js';

export interface ConnectOptions {
  host?: string;
  port?: number;
  /**
   * An already connected socket (CRIU's --ps-socket, RPC's criu_opts.ps.fd) instead of host and port.
   * Its holder may keep it open, so the session ends with FORCE_CLOSE, which tells the server to go.
   */
  fd?: number;
  /**
   * The header layout the server speaks: CRIU 4.2's (the default; criu-ts's server takes both) or
   * 'criu-4.1' for CRIU 4.1 and older. Nothing in the protocol tells them apart from the client's side.
   */
  layout?: HeaderLayout;
}

interface Waiter {
  size: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

/**
 * The dump side of CRIU's page-server protocol: one connection to a page server, over which each task's
 * (or shared memory object's) pagemap is opened in turn and its runs sent with their page data; close()
 * says CLOSE and waits for the server's answer, which means the memory is on the server's disk.
 */
export class PageServerClient {
  private inbox: Buffer = Buffer.alloc(0);
  private readonly waiters: Waiter[] = [];
  private broken: Error | undefined;
  private current: PageStream | undefined;
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    readonly layout: HeaderLayout,
    /** Connected by its holder (ConnectOptions.fd): close() says FORCE_CLOSE. */
    private readonly passed = false,
  ) {
    socket.on('data', (b: Buffer) => {
      this.inbox = this.inbox.length ? Buffer.concat([this.inbox, b]) : b;
      this.deliver();
    });
    socket.on('error', (e) =>
      this.fail(new PageServerError(`page server: ${(e as NodeJS.ErrnoException).code ?? e.message}`)),
    );
    socket.on('close', () => this.fail(new PageServerError('the page server closed the connection')));
  }

  static connect(opts: ConnectOptions): Promise<PageServerClient> {
    if (opts.fd !== undefined) {
      let s: Socket;
      try {
        s = new Socket({ fd: opts.fd, readable: true, writable: true });
      } catch (e) {
        const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        return Promise.reject(new PageServerError(`the page server socket (fd ${opts.fd}): ${why}`));
      }
      s.setNoDelay(true);
      return Promise.resolve(new PageServerClient(s, opts.layout ?? 'criu-4.2', true));
    }
    if (opts.host === undefined || opts.port === undefined)
      return Promise.reject(new PageServerError('a page server needs a host and a port, or a socket fd'));
    const { host, port } = opts;
    return new Promise((resolve, reject) => {
      const s = connect({ host, port, noDelay: true });
      const onError = (e: NodeJS.ErrnoException) =>
        reject(
          new PageServerError(`cannot connect to the page server ${host}:${port}: ${e.code ?? e.message}`),
        );
      s.once('error', onError);
      s.once('connect', () => {
        s.off('error', onError);
        resolve(new PageServerClient(s, opts.layout ?? 'criu-4.2'));
      });
    });
  }

  /** Opens the pagemap of task `id` (a pid) or of shared memory object `id` (OPEN2); resolves with its stream. */
  async open(kind: PagemapKind, id: number | bigint): Promise<PageStream> {
    this.check();
    this.current?.finish();
    const dstId = encodeDstId(kind, id);
    this.send(encodeHeader(this.layout, { op: PS_IOV_OPEN2, flags: 0, nrPages: 0n, vaddr: 0n, dstId }));
    const r = await this.replyOf(1);
    this.current = new PageStream(this, dstId, r[0] !== 0);
    return this.current;
  }

  /** Whether the server has a parent pagemap for it (PARENT; for incremental dumps). */
  async hasParent(kind: PagemapKind, id: number | bigint): Promise<boolean> {
    this.check();
    const dstId = encodeDstId(kind, id);
    this.send(encodeHeader(this.layout, { op: PS_IOV_PARENT, flags: 0, nrPages: 0n, vaddr: 0n, dstId }));
    return (await this.replyOf(4)).readInt32LE(0) !== 0;
  }

  /**
   * CLOSE (FORCE_CLOSE with `force`, for a server that keeps the socket): waits for the server's answer
   * (0: everything was received) and closes the connection.
   */
  async close(force = this.passed): Promise<void> {
    this.check();
    this.current?.finish();
    this.current = undefined;
    const op = force ? PS_IOV_FORCE_CLOSE : PS_IOV_CLOSE;
    this.send(encodeHeader(this.layout, { op, flags: 0, nrPages: 0n, vaddr: 0n, dstId: 0n }));
    const status = (await this.replyOf(4)).readInt32LE(0);
    this.closed = true;
    this.socket.end();
    if (status !== 0) throw new PageServerError(`the page server answered CLOSE with ${status}`);
  }

  /** Drops the connection without CLOSE: the server throws away what it received. */
  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  /** @internal */
  send(b: Uint8Array, cb?: (err?: Error | null) => void): void {
    this.check();
    this.socket.write(b, cb);
  }

  /** @internal */
  cork(): void {
    this.socket.cork();
  }

  /** @internal */
  uncork(): void {
    this.socket.uncork();
  }

  /** Whether the connection broke (the server went away, a socket error). */
  get isBroken(): boolean {
    return this.broken !== undefined;
  }

  /** @internal */
  check(): void {
    if (this.broken) throw this.broken;
    if (this.closed) throw new PageServerError('the page-server connection is closed');
  }

  private replyOf(size: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ size, resolve, reject });
      this.deliver();
    });
  }

  private deliver(): void {
    while (this.waiters.length && this.inbox.length >= this.waiters[0]!.size) {
      const w = this.waiters.shift()!;
      w.resolve(Buffer.from(this.inbox.subarray(0, w.size)));
      this.inbox = this.inbox.subarray(w.size);
    }
    if (!this.waiters.length && this.inbox.length && !this.closed)
      this.fail(new PageServerError(`the page server sent ${this.inbox.length} unexpected bytes`));
  }

  private fail(e: Error): void {
    if (this.closed && !this.waiters.length) return;
    this.broken ??= e;
    for (const w of this.waiters.splice(0)) w.reject(this.broken);
    this.socket.destroy();
  }
}

interface QueuedRun {
  vaddr: bigint;
  pages: bigint;
  flags: number;
}

/**
 * The runs of one pagemap as they go to the server. Like PageMapWriter (@criu-ts/images), runs and page data
 * are given apart: runs in address order, and the data of the PE_PRESENT ones in the same order, as much
 * or as little at a time as the caller has. Each run's ADD_F header goes out just before its data.
 */
export class PageStream {
  private readonly queue: QueuedRun[] = [];
  /** Bytes of the run whose data is being sent (its header went). */
  private left = 0;
  private done = false;

  /** @internal */
  constructor(
    private readonly client: PageServerClient,
    private readonly dstId: bigint,
    /** Whether the server holds a parent pagemap for this one (OPEN2's answer). */
    readonly hasParent: boolean,
  ) {}

  /** A run with `flags` (PE_*); PE_PRESENT runs' pages follow in `data` or in later writeData calls. */
  add(vaddr: bigint, pages: number | bigint, flags: number, data?: Uint8Array): void {
    if (this.done) throw new PageServerError('the pagemap stream is closed');
    let n = BigInt(pages);
    let at = vaddr;
    const max = maxPagesPerHeader(this.client.layout);
    while (n > 0n) {
      const k = n > max ? max : n;
      this.queue.push({ vaddr: at, pages: k, flags });
      at += k * BigInt(PAGE_SIZE);
      n -= k;
    }
    if (data) this.writeData(data);
    else this.sendHeadersWithoutData();
  }

  addPresent(vaddr: bigint, pages: number | bigint, data?: Uint8Array): void {
    this.add(vaddr, pages, PE_PRESENT, data);
  }

  addParent(vaddr: bigint, pages: number | bigint): void {
    this.add(vaddr, pages, PE_PARENT);
  }

  /** Page data; copied, so `data` may be reused at once. */
  writeData(data: Uint8Array): void {
    this.sendData(Buffer.from(data));
  }

  /** Page data, not copied: resolves once the socket took it, `data` untouched until then. */
  writeDataAsync(data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        this.sendData(data, (err) =>
          err ? reject(new PageServerError(`page server: ${err.message}`)) : resolve(),
        );
      } catch (e) {
        reject(e);
      }
    });
  }

  /** The end of this pagemap: every announced page must have been sent. The next open() or CLOSE follows. */
  close(): void {
    this.finish();
  }

  /** @internal */
  finish(): void {
    if (this.done) return;
    this.done = true;
    // A broken connection was reported where it broke (this may run in a finally, after that error).
    if (this.client.isBroken) return;
    this.sendHeadersWithoutData();
    if (this.left > 0 || this.queue.length > 0) {
      const t = decodeDstId(this.dstId);
      throw new PageServerError(
        `the pagemap of ${t?.kind ?? 'object'} ${t?.id ?? this.dstId} was closed with page data missing`,
      );
    }
  }

  private header(r: QueuedRun): Buffer {
    return encodeHeader(this.client.layout, {
      op: PS_IOV_ADD_F,
      flags: r.flags,
      nrPages: r.pages,
      vaddr: r.vaddr,
      dstId: this.dstId,
    });
  }

  /** Headers of the queued runs that carry no data, up to the next one that does. */
  private sendHeadersWithoutData(): void {
    if (this.left > 0) return;
    while (this.queue.length && !(this.queue[0]!.flags & PE_PRESENT))
      this.client.send(this.header(this.queue.shift()!));
  }

  private sendData(data: Uint8Array, cb?: (err?: Error | null) => void): void {
    this.client.check();
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.client.cork();
    try {
      let p = 0;
      while (p < bytes.length) {
        if (this.left === 0) {
          this.sendHeadersWithoutData();
          const r = this.queue.shift();
          if (!r) throw new PageServerError(`${bytes.length - p} bytes of page data beyond the runs added`);
          this.client.send(this.header(r));
          this.left = Number(r.pages) * PAGE_SIZE;
        }
        const n = Math.min(this.left, bytes.length - p);
        const last = p + n === bytes.length;
        this.client.send(bytes.subarray(p, p + n), last ? cb : undefined);
        this.left -= n;
        p += n;
      }
      if (bytes.length === 0) cb?.();
      this.sendHeadersWithoutData();
    } finally {
      this.client.uncork();
    }
  }
}
