// One connection to CRIU's RPC server: a swrk child started on a socketpair (`<binary> swrk 3`, the
// other end as its fd 3, as runc starts it) or a connection to a service socket. A request is one
// criu_req datagram; the server may answer with NOTIFY responses first, each answered with a
// criu_req of type NOTIFY (notify_success saying how the client's callback went), and then with the
// final reply. The server serves one request per connection unless the request asked keep_open.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  AF_UNIX,
  close as closeFd,
  connect,
  encodeSockaddrUn,
  SOCK_CLOEXEC,
  SOCK_SEQPACKET,
  socket,
  socketpair,
} from '@criu-ts/sys';
import { ChannelClosedError, SeqpacketChannel } from './channel.js';
import { CriuConnectionError, describeExit, type ExitStatus, requestTypeName } from './errors.js';
import { type CriuNotify, type CriuOpts, type CriuReq, CriuReqType, type CriuResp } from './gen/types.js';
import { decodeResponse, encodeRequest, RpcDecodeError } from './messages.js';

/** What happens to the swrk child's stderr: kept (its end goes into errors), shown, or dropped. */
export type StderrMode = 'capture' | 'inherit' | 'ignore';

export interface SwrkOptions {
  /** The program to run as `<binary> swrk 3` (a name looked up in PATH, or a path). */
  binary: string;
  /** Its environment (default: ours). */
  env?: NodeJS.ProcessEnv;
  /** Its working directory (default: ours). */
  cwd?: string;
  /** Its stderr (default 'capture': the last 16 KiB are kept and quoted in errors). */
  stderr?: StderrMode;
  /** Its stdout (default 'ignore'). */
  stdout?: 'inherit' | 'ignore';
  /** The longest reply accepted (see SeqpacketChannel). */
  maxDatagram?: number;
}

/**
 * Answers one NOTIFY: resolves to the opts to send back with the answer (CRIU reads opts.external
 * from the answer to "query-ext-files"), or undefined; throwing makes the answer notify_success=false.
 */
export type NotifyAnswer = (notify: CriuNotify) => Promise<Partial<CriuOpts> | undefined>;

/** The final reply of a request, and the first error a NOTIFY callback threw on the way. */
export interface Exchange {
  resp: CriuResp;
  notifyError?: { stage: string; error: unknown };
}

const STDERR_KEEP = 16 << 10;

export class CriuConnection {
  readonly #channel: SeqpacketChannel;
  readonly #child: ChildProcess | undefined;
  readonly #what: string;
  readonly #exited: Promise<ExitStatus | undefined>;
  #exit: ExitStatus | undefined;
  #spawnError: Error | undefined;
  #stderr = '';
  #stderrDone: Promise<void> = Promise.resolve();
  #chain: Promise<unknown> = Promise.resolve();
  #ended = false;

  private constructor(channel: SeqpacketChannel, what: string, child?: ChildProcess) {
    this.#channel = channel;
    this.#what = what;
    this.#child = child;
    if (!child) {
      this.#exited = Promise.resolve(undefined);
      return;
    }
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        // Whatever the swrk sent before it died is queued and still read; then the end, even when
        // something it started still holds its end of the socketpair.
        this.#channel.shutdownRead();
        resolve(this.#exit);
      });
      child.on('error', (e) => {
        // A spawn that failed (no such program, not executable): no 'exit' follows.
        if (child.pid === undefined) {
          this.#spawnError = e;
          this.#channel.shutdownRead();
          resolve(undefined);
        }
      });
    });
  }

  /** Start `<binary> swrk 3` with one end of a new socketpair as its fd 3. */
  static spawnSwrk(opts: SwrkOptions): CriuConnection {
    const [mine, theirs] = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
    let child: ChildProcess;
    const stderrMode = opts.stderr ?? 'capture';
    try {
      child = spawn(opts.binary, ['swrk', '3'], {
        stdio: ['ignore', opts.stdout ?? 'ignore', stderrMode === 'capture' ? 'pipe' : stderrMode, theirs],
        env: opts.env,
        cwd: opts.cwd,
      });
    } catch (e) {
      closeFd(mine);
      throw new CriuConnectionError(`could not start ${opts.binary} swrk 3: ${(e as Error).message}`, {
        cause: e,
      });
    } finally {
      // The child has its copy (as fd 3); ours must go, or the end of the swrk would never be seen.
      closeFd(theirs);
    }
    const channel = new SeqpacketChannel(
      mine,
      opts.maxDatagram === undefined ? {} : { maxDatagram: opts.maxDatagram },
    );
    const conn = new CriuConnection(channel, `${opts.binary} swrk 3`, child);
    if (child.stderr) {
      const err = child.stderr;
      err.setEncoding('utf8');
      err.on('data', (d: string) => {
        conn.#stderr = (conn.#stderr + d).slice(-STDERR_KEEP);
      });
      conn.#stderrDone = new Promise((resolve) => {
        err.once('close', resolve);
        err.once('error', () => resolve());
      });
    }
    return conn;
  }

  /** Connect to a service listening on the unix SOCK_SEQPACKET socket at `path`. */
  static connectService(path: string, opts: { maxDatagram?: number } = {}): CriuConnection {
    const fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
    try {
      connect(fd, encodeSockaddrUn(path));
    } catch (e) {
      closeFd(fd);
      const code = (e as { code?: string }).code;
      const why =
        code === 'ENOENT'
          ? 'no socket there'
          : code === 'ECONNREFUSED'
            ? 'nothing listens on it'
            : (e as Error).message;
      throw new CriuConnectionError(`could not connect to the CRIU service at ${path}: ${why}`, { cause: e });
    }
    const channel = new SeqpacketChannel(
      fd,
      opts.maxDatagram === undefined ? {} : { maxDatagram: opts.maxDatagram },
    );
    return new CriuConnection(channel, `the service at ${path}`);
  }

  /** The swrk child's pid (undefined for a service connection, or when the spawn failed). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** How the swrk child ended, once it has. */
  get exitStatus(): ExitStatus | undefined {
    return this.#exit;
  }

  /** False once the connection ended (closed by either side, or the swrk is gone). */
  get open(): boolean {
    return (
      !this.#ended && !this.#channel.closed && this.#exit === undefined && this.#spawnError === undefined
    );
  }

  /**
   * Send `req` and resolve to the final reply (whatever its success), answering every NOTIFY on the
   * way with `answer` (or with success when there is none). Requests on one connection run one at a
   * time. Rejects with CriuConnectionError when no reply comes (the connection ends first).
   */
  request(req: CriuReq, answer?: NotifyAnswer): Promise<Exchange> {
    const next = this.#chain.then(() => this.#exchange(req, answer));
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #exchange(req: CriuReq, answer: NotifyAnswer | undefined): Promise<Exchange> {
    const type = req.type;
    if (!this.open) throw await this.#endedError(type, 'before the request was sent');
    // A server that refused at once may have replied and closed already: its reply is still read.
    let sendFailed: unknown;
    try {
      await this.#channel.send(encodeRequest(req));
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'EPIPE' && code !== 'ECONNRESET')
        throw await this.#endedError(type, 'before it took the request', e);
      sendFailed = e;
    }
    let notifyError: Exchange['notifyError'];
    for (;;) {
      let dg: Buffer | null;
      try {
        dg = await this.#channel.receive();
      } catch (e) {
        if (e instanceof ChannelClosedError) throw await this.#endedError(type, 'before it replied', e);
        this.#ended = true;
        throw new CriuConnectionError(
          `${requestTypeName(type)}: bad reply from ${this.#what}: ${(e as Error).message}`,
          {
            requestType: type,
            ...this.#pidDetail(),
            cause: e,
          },
        );
      }
      if (dg === null && sendFailed !== undefined)
        throw await this.#endedError(type, 'before it took the request', sendFailed);
      if (dg === null) {
        this.#ended = true;
        const after = notifyError
          ? ` (after the ${notifyError.stage} callback failed: ${errorText(notifyError.error)})`
          : '';
        throw await this.#endedError(type, `before it replied${after}`, notifyError?.error);
      }
      let resp: CriuResp;
      try {
        resp = decodeResponse(dg);
      } catch (e) {
        this.#ended = true;
        const why = e instanceof RpcDecodeError ? e.message : String(e);
        throw new CriuConnectionError(
          `${requestTypeName(type)}: the reply of ${this.#what} is not a criu_resp: ${why}`,
          {
            requestType: type,
            ...this.#pidDetail(),
            cause: e,
          },
        );
      }
      if (resp.type !== CriuReqType.NOTIFY) {
        // The server ends the connection after a request without keep_open, and after a failure.
        if (!req.keep_open || !resp.success) this.#ended = true;
        return notifyError ? { resp, notifyError } : { resp };
      }
      const notify = resp.notify ?? {};
      let ok = true;
      let opts: Partial<CriuOpts> | undefined;
      if (answer) {
        try {
          opts = await answer(notify);
        } catch (error) {
          ok = false;
          notifyError ??= { stage: notify.script ?? '', error };
        }
      }
      const ack: CriuReq = { type: CriuReqType.NOTIFY, notify_success: ok };
      if (ok && opts) ack.opts = { images_dir_fd: -1, ...opts };
      try {
        await this.#channel.send(encodeRequest(ack));
      } catch (e) {
        throw await this.#endedError(
          type,
          `before it took the answer to the ${notify.script} notification`,
          e,
        );
      }
    }
  }

  #pidDetail(): { pid?: number } {
    const pid = this.pid;
    return pid === undefined ? {} : { pid };
  }

  /** The error for a connection that ended before a reply: with the swrk's exit status and stderr. */
  async #endedError(type: number, when: string, cause?: unknown): Promise<CriuConnectionError> {
    this.#ended = true;
    const name = requestTypeName(type);
    if (!this.#child) {
      const how = this.#channel.closed ? 'was closed by the client' : 'was closed by the service';
      return new CriuConnectionError(`${name}: the connection to ${this.#what} ${how} ${when}`, {
        requestType: type,
        cause,
      });
    }
    if (this.#channel.closed && this.#spawnError === undefined) {
      // close() ended it (the swrk may have exited since, seeing the end: said in passing).
      const exit = this.#exit;
      const then = exit ? ` (the swrk then exited: ${describeExit(exit)})` : '';
      return new CriuConnectionError(
        `${name}: the connection to ${this.#what} was closed by the client ${when}${then}`,
        {
          requestType: type,
          ...this.#pidDetail(),
          ...(exit ? { exit } : {}),
          cause,
        },
      );
    }
    // The end of the socket came first; the swrk's exit is a moment behind (bounded: a swrk that
    // closed its socket and lives on is reported as such).
    await this.#settled(2000);
    if (this.#spawnError) {
      return new CriuConnectionError(`${name}: could not start ${this.#what}: ${this.#spawnError.message}`, {
        requestType: type,
        cause: this.#spawnError,
      });
    }
    const stderr = await this.stderrText();
    const exit = this.#exit;
    const how = exit
      ? `exited (${describeExit(exit)}) ${when}`
      : `closed the connection ${when} (pid ${this.pid} still running)`;
    const tail = lastLines(stderr, 3);
    return new CriuConnectionError(`${name}: ${this.#what} ${how}${tail ? `: ${tail}` : ''}`, {
      requestType: type,
      ...this.#pidDetail(),
      ...(exit ? { exit } : {}),
      ...(stderr ? { stderr } : {}),
      cause,
    });
  }

  /** Wait for the child's exit (or spawn failure) for at most `ms`. */
  async #settled(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#exited,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
  }

  /** What the swrk child wrote on stderr (captured mode), once its stderr closed or shortly after its exit. */
  async stderrText(): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#stderrDone,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 200);
      }),
    ]);
    clearTimeout(timer);
    return this.#stderr;
  }

  /**
   * Close the connection and, for a swrk, wait for the child to exit (it does once its socket ends);
   * resolves to its exit status. Idempotent.
   */
  async close(): Promise<ExitStatus | undefined> {
    this.#ended = true;
    await this.#channel.close();
    const exit = await this.#exited;
    // A grandchild of the swrk may hold its stderr: do not wait for that pipe to close.
    this.#child?.stderr?.destroy();
    return exit;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}
