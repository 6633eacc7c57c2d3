// CriuClient: dump, restore, check, version, ... of criu-ts (or CRIU) driven over its RPC protocol,
// through a swrk child (`<binary> swrk 3`) or a service socket. Each request opens its own
// connection, which the server ends after its reply (and the client waits for the swrk to exit),
// unless the request asks keepOpen: then the connection stays for the next requests of this client
// until one goes without keepOpen, or close().
import fs from 'node:fs';
import os from 'node:os';
import { CriuConnection, type Exchange, type NotifyAnswer, type StderrMode } from './connection.js';
import { CriuConnectionError, CriuRpcError } from './errors.js';
import {
  type CriuDumpResp,
  type CriuFeatures,
  type CriuNotify,
  type CriuOpts,
  type CriuReq,
  CriuReqType,
  type CriuResp,
  type CriuRestoreResp,
  type CriuVersion,
} from './gen/types.js';

/** CRIU's action-script stages, as NOTIFY names them (notify.script). */
export type NotifyStage =
  | 'pre-stream'
  | 'pre-dump'
  | 'post-dump'
  | 'pre-restore'
  | 'post-restore'
  | 'network-lock'
  | 'network-unlock'
  | 'setup-namespaces'
  | 'post-setup-namespaces'
  | 'pre-resume'
  | 'post-resume'
  | 'orphan-pts-master'
  | 'status-ready'
  | 'query-ext-files';

/**
 * A callback for one stage. `pid` is the notification's pid (CRIU sends one with setup-namespaces
 * and post-restore: the restored root). Throwing (or rejecting) answers the notification with
 * notify_success = false, which makes the server abort the dump or restore. For "query-ext-files"
 * it may return the list of external objects to add (sent back as opts.external).
 */
export type NotifyCallback = (pid: number | undefined, notify: CriuNotify) => unknown;

/** One function for every stage. */
export type NotifyFunction = (stage: NotifyStage, pid: number | undefined, notify: CriuNotify) => unknown;

/** Callbacks by stage (stages without one are answered with success), or one function for all. */
export type NotifyHandlers = NotifyFunction | { [stage in NotifyStage]?: NotifyCallback };

/** criu_opts' fields, all optional: images_dir_fd is filled from imagesDir when that is given. */
export type CriuOptsFields = Partial<CriuOpts>;

/** Options of any request: criu_opts' fields (CRIU's names) plus conveniences for Node. */
export interface RequestOptions extends CriuOptsFields {
  /**
   * The images directory: the client opens it (for a dump, creating it when missing) and sends the
   * fd as images_dir_fd; the server opens it again through /proc/<client pid>/fd.
   */
  imagesDir?: string;
  /** The work directory (logs, stats), sent as work_dir_fd the same way. */
  workDir?: string;
  /** Callbacks at the server's stages (sets notify_scripts). */
  notify?: NotifyHandlers;
  /** Keep the connection for the next request of this client (criu_req.keep_open). */
  keepOpen?: boolean;
}

export type DumpOptions = RequestOptions;
export type RestoreOptions = RequestOptions;

export interface CriuClientOptions {
  /**
   * The program to start as `<binary> swrk 3` for each connection: a name looked up in PATH or a
   * path (default 'criu-ts'; CRIU's own `criu` works too). Ignored when `socket` is given.
   */
  binary?: string;
  /** Connect to a service listening on this unix socket path instead of starting swrk. */
  socket?: string;
  /** The swrk child's environment (default: ours). */
  env?: NodeJS.ProcessEnv;
  /** The swrk child's working directory (default: ours). */
  cwd?: string;
  /** The swrk child's stderr: 'capture' (default; quoted in errors), 'inherit' or 'ignore'. */
  stderr?: StderrMode;
  /** keepOpen for every request that does not say (default false). */
  keepOpen?: boolean;
  /** The longest reply accepted, in bytes (default: more than a unix datagram can carry). */
  maxDatagram?: number;
}

/** A wait status as WAIT_PID returns it, decoded. */
export interface WaitStatus {
  /** The raw status of waitpid(2). */
  status: number;
  /** The exit code when the process exited, else null. */
  code: number | null;
  /** The signal that killed it, else null. */
  signal: NodeJS.Signals | null;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** Decode a waitpid(2) status. */
export function decodeWaitStatus(status: number): WaitStatus {
  const sig = status & 0x7f;
  if (sig === 0) return { status, code: (status >> 8) & 0xff, signal: null };
  return { status, code: null, signal: SIGNAL_NAMES.get(sig) ?? null };
}

const ALL_FEATURES: CriuFeatures = { mem_track: true, lazy_pages: true, pidfd_store: true };

export class CriuClient {
  readonly #opts: CriuClientOptions;
  /** The connection kept open by a keepOpen request. */
  #kept: CriuConnection | undefined;
  /** Requests that use or may leave a kept connection run one at a time. */
  #chain: Promise<unknown> = Promise.resolve();
  #queued = 0;
  /** Connections of requests under way (closed by close()). */
  readonly #live = new Set<CriuConnection>();
  #closed = false;

  constructor(options: CriuClientOptions = {}) {
    this.#opts = { ...options };
  }

  /** A client that starts `<binary> swrk 3` (default binary: criu-ts). */
  static swrk(binary = 'criu-ts', options: Omit<CriuClientOptions, 'binary' | 'socket'> = {}): CriuClient {
    return new CriuClient({ ...options, binary });
  }

  /** A client of the service listening on the unix socket `path` (`criu-ts service --address PATH`). */
  static service(path: string, options: Omit<CriuClientOptions, 'binary' | 'socket'> = {}): CriuClient {
    return new CriuClient({ ...options, socket: path });
  }

  /**
   * Dump the tree of `opts.pid`, or without a pid this process itself (through a service only). Resolves to
   * CRIU's dump reply: `{ restored: true }` is what a restored self-dump gets.
   */
  async dump(opts: DumpOptions): Promise<CriuDumpResp> {
    // Without a pid the server dumps its peer: this process, frozen while it waits for the reply. A swrk
    // child is this process's own child, inside the tree it would dump: the server refuses such a tree.
    if (opts.pid === undefined && this.#opts.socket === undefined)
      throw new TypeError(
        'dump: opts.pid is needed with swrk (its child would be inside the tree of this process); ' +
          'dump this process itself through a service (CriuClient.service)',
      );
    const resp = await this.#run(CriuReqType.DUMP, opts, { create: true });
    return resp.dump ?? {};
  }

  /** Restore from `opts.imagesDir`; resolves to { pid } of the restored root. */
  async restore(opts: RestoreOptions): Promise<CriuRestoreResp> {
    const resp = await this.#run(CriuReqType.RESTORE, opts);
    if (!resp.restore) throw new CriuRpcError(CriuReqType.RESTORE, resp);
    return resp.restore;
  }

  /** CRIU's `check`: resolves when the kernel has what the server needs, else throws CriuRpcError. */
  async check(opts: RequestOptions = {}): Promise<void> {
    await this.#run(CriuReqType.CHECK, opts);
  }

  /** CPUINFO_DUMP: the server writes cpuinfo.img, this CPU's features, into `opts.imagesDir`. */
  async cpuinfoDump(opts: RequestOptions): Promise<void> {
    await this.#run(CriuReqType.CPUINFO_DUMP, opts, { create: true });
  }

  /**
   * CPUINFO_CHECK: resolves when this CPU can run images described by `opts.imagesDir`'s cpuinfo.img
   * (compared as `opts.cpu_cap` says), else throws CriuRpcError naming what is missing.
   */
  async cpuinfoCheck(opts: RequestOptions): Promise<void> {
    await this.#run(CriuReqType.CPUINFO_CHECK, opts);
  }

  /** The server's version (major_number, minor_number, sublevel, gitid, name). */
  async version(opts: Pick<RequestOptions, 'keepOpen'> = {}): Promise<CriuVersion> {
    const resp = await this.#run(CriuReqType.VERSION, opts, { noOpts: true });
    if (!resp.version) throw new CriuRpcError(CriuReqType.VERSION, resp);
    return resp.version;
  }

  /** Which of `features` (default: all) the server and kernel support. */
  async featureCheck(
    features: CriuFeatures = ALL_FEATURES,
    opts: Pick<RequestOptions, 'keepOpen'> = {},
  ): Promise<CriuFeatures> {
    const resp = await this.#run(CriuReqType.FEATURE_CHECK, opts, { noOpts: true, features });
    return resp.features ?? {};
  }

  /** WAIT_PID: the server waits for its child `pid` (a restored root) and returns its status. */
  async waitPid(pid: number, opts: Pick<RequestOptions, 'keepOpen'> = {}): Promise<WaitStatus> {
    const resp = await this.#run(CriuReqType.WAIT_PID, opts, { noOpts: true, pid });
    return decodeWaitStatus(resp.status ?? 0);
  }

  /**
   * Any request as is (for types without a method here). Resolves to the final reply whatever its
   * success; NOTIFY responses are answered through `notify`.
   */
  async request(req: CriuReq, opts: { notify?: NotifyHandlers } = {}): Promise<CriuResp> {
    const { resp } = await this.#exchange(req, opts.notify);
    return resp;
  }

  /**
   * Close the kept connection and any connection under way (their requests fail), and wait for every
   * swrk child to exit. The client can be used again afterwards.
   */
  async close(): Promise<void> {
    const conns = [...this.#live];
    if (this.#kept) conns.push(this.#kept);
    this.#kept = undefined;
    await Promise.all(conns.map((c) => c.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#closed = true;
    await this.close();
  }

  async #run(
    type: number,
    opts: RequestOptions,
    how: { create?: boolean; noOpts?: boolean; features?: CriuFeatures; pid?: number } = {},
  ): Promise<CriuResp> {
    const { imagesDir, workDir, notify, keepOpen, ...fields } = opts;
    const fds: number[] = [];
    try {
      const req: CriuReq = { type };
      if (!how.noOpts) {
        const o: CriuOpts = { ...fields, images_dir_fd: fields.images_dir_fd ?? -1 };
        if (imagesDir !== undefined) {
          if (fields.images_dir_fd !== undefined && fields.images_dir_fd >= 0)
            throw new TypeError('give imagesDir or images_dir_fd, not both');
          if (how.create) fs.mkdirSync(imagesDir, { recursive: true });
          o.images_dir_fd = openDir(imagesDir, fds);
        }
        if (workDir !== undefined) {
          if (fields.work_dir_fd !== undefined) throw new TypeError('give workDir or work_dir_fd, not both');
          o.work_dir_fd = openDir(workDir, fds);
        }
        if (notify) o.notify_scripts = true;
        req.opts = o;
      }
      if (how.features) req.features = how.features;
      if (how.pid !== undefined) req.pid = how.pid;
      if (keepOpen ?? this.#opts.keepOpen) req.keep_open = true;
      const { resp, notifyError } = await this.#exchange(req, notify);
      if (!resp.success || resp.type !== type) {
        const cause = notifyError
          ? new Error(`the ${notifyError.stage} callback failed: ${errorText(notifyError.error)}`, {
              cause: notifyError.error,
            })
          : undefined;
        throw new CriuRpcError(type, resp, cause ? { cause } : undefined);
      }
      return resp;
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
  }

  async #exchange(req: CriuReq, notify: NotifyHandlers | undefined): Promise<Exchange> {
    if (this.#closed) throw new CriuConnectionError('the client was disposed');
    const answer = notify ? answerWith(notify) : undefined;
    // A request that may find or leave a kept connection waits for the ones before it.
    if (this.#kept || req.keep_open || this.#queued > 0) {
      this.#queued++;
      const next = this.#chain.then(() => this.#onConnection(req, answer));
      this.#chain = next.catch(() => undefined);
      try {
        return await next;
      } finally {
        this.#queued--;
      }
    }
    return this.#onConnection(req, answer);
  }

  async #onConnection(req: CriuReq, answer: NotifyAnswer | undefined): Promise<Exchange> {
    if (this.#closed) throw new CriuConnectionError('the client was disposed');
    let conn = this.#kept;
    if (conn && !conn.open) {
      // The kept connection ended meanwhile (the swrk died, the service went): say so for this request.
      this.#kept = undefined;
    } else if (conn) {
      this.#kept = undefined;
    } else {
      conn = this.#connect();
    }
    this.#live.add(conn);
    let keep = false;
    try {
      const ex = await conn.request(req, answer);
      keep = Boolean(req.keep_open) && ex.resp.success && conn.open;
      return ex;
    } finally {
      this.#live.delete(conn);
      if (keep && !this.#closed) this.#kept = conn;
      else await conn.close();
    }
  }

  #connect(): CriuConnection {
    const o = this.#opts;
    const max = o.maxDatagram === undefined ? {} : { maxDatagram: o.maxDatagram };
    if (o.socket !== undefined) return CriuConnection.connectService(o.socket, max);
    return CriuConnection.spawnSwrk({
      binary: o.binary ?? 'criu-ts',
      ...(o.env ? { env: o.env } : {}),
      ...(o.cwd ? { cwd: o.cwd } : {}),
      ...(o.stderr ? { stderr: o.stderr } : {}),
      ...max,
    });
  }
}

function openDir(dir: string, fds: number[]): number {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  fds.push(fd);
  return fd;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Turn the user's handlers into the connection's NOTIFY answer. */
function answerWith(notify: NotifyHandlers): NotifyAnswer {
  return async (n: CriuNotify) => {
    const stage = (n.script ?? '') as NotifyStage;
    const result =
      typeof notify === 'function' ? await notify(stage, n.pid, n) : await notify[stage]?.(n.pid, n);
    if (stage === 'query-ext-files' && Array.isArray(result) && result.every((x) => typeof x === 'string'))
      return { external: result };
    return undefined;
  };
}
