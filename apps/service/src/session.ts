// One client connection: requests in, responses out, until the client is done (no keep_open), a request
// fails, or the client goes. The same for `criu-ts swrk <fd>` and for a service worker, as CRIU's
// cr_service_work serves both.
import { closeSync, openSync, writeSync } from 'node:fs';
import {
  basicChecks,
  type CriuLog,
  cpuinfoCheck,
  cpuinfoDump,
  DumpError,
  dirtyTrackMechanism,
  dump,
  dumpOptionsOf,
  dumpStatsLines,
  makeLogger,
  preDump,
  preDumpOptionsOf,
  RestoreError,
  type RunHooks,
  restore,
  restoreOptionsOf,
  restoreStatsLines,
  runDirs,
  type StageHook,
} from '@criu-ts/core';
import { type CriuReq, CriuReqType, type CriuResp } from '@criu-ts/rpc';
import { ERRNO, fstat, SysError, waitpid } from '@criu-ts/sys';
import { RequestError, type RequestMode, type RequestOptions, requestOptions } from './criu-opts.js';
import { peerCred, peerGone, receiveRequest, sendResponse } from './wire.js';

/** The CRIU version criu-ts answers VERSION with: runc and go-criu compare it with what they need. */
export const CRIU_COMPAT = { major: 4, minor: 2 } as const;

export interface SessionOptions {
  /** `criu-ts swrk`: rst_sibling and inherit_fd are allowed (CRIU's swrk_restore). */
  swrk: boolean;
  /** criu-ts's own version, for VERSION's name. */
  version: string;
  /** Sets the process title (`ps`) while a request runs; undefined: back to idle. */
  title?: (what: string | undefined) => void;
  /**
   * A pool worker's: a RESTORE without keep_open makes the root the service's child (this worker's
   * sibling, as rst_sibling does), and `adopt` tells the service its pid, once the answer is sent, so
   * that the service reaps it; the worker then serves on. Without it (swrk, or keep_open, where a
   * WAIT_PID may follow) the tree is this process's child.
   */
  adopt?: (pid: number) => void;
}

export interface SessionResult {
  /**
   * The last request succeeded and the client ended the connection (swrk's exit status, as CRIU's: the
   * result of the last request of a kept connection, not of every one).
   */
  clean: boolean;
  /** Requests that failed (a pool worker that had one is retired). */
  failures: number;
  /** A tree was restored: its tasks are this process's children (or its parent's), not to be left. */
  restored: boolean;
  requests: number;
}

/**
 * What one request did: the response to send (none for a self-dump that killed the client), and whether
 * the connection may go on with keep_open (CRIU goes on after a failed WAIT_PID, CPUINFO or PAGE_SERVER
 * answer, not after a failed dump, restore, check or pre-dump).
 */
interface Outcome {
  resp?: CriuResp;
  ok: boolean;
  /** A tree was restored as this process's children. */
  restored?: boolean;
  /** The keep_open that decides whether the connection goes on (a PRE_DUMP loop ends with a DUMP's). */
  keepOpen?: boolean;
  /** A tree was restored as the service's child (SessionOptions.adopt): its root. */
  adopted?: number;
}

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(CriuReqType).map(([k, v]) => [v, k]));

/** CRIU's answer to what it cannot read or does not know: type EMPTY, not successful, why. */
function emptyError(why: string): CriuResp {
  return { type: CriuReqType.EMPTY, success: false, cr_errmsg: why };
}

function failure(type: number, e: unknown, errno?: number): CriuResp {
  const msg = e instanceof Error ? e.message : String(e);
  const code = errno ?? (e instanceof RequestError ? ERRNO.EBADRQC : errnoOf(e));
  return { type, success: false, cr_errmsg: msg, ...(code ? { cr_errno: code } : {}) };
}

/**
 * CRIU's cr_errno of a failure: the errno core gives it (ESRCH: no such pid to dump, EEXIST: a pid in
 * use at restore, as CRIU sets them) or that of the system call under it (a SysError, also as a cause).
 */
function errnoOf(e: unknown): number | undefined {
  for (let at = e, depth = 0; at instanceof Error && depth < 8; at = at.cause, depth++) {
    const n = (at as { errno?: unknown }).errno;
    if (typeof n === 'number' && n > 0) return n;
  }
  return undefined;
}

/** Serves the client on `fd` (a connected SOCK_SEQPACKET socket) until it is done; `fd` stays open. */
export async function serveConnection(fd: number, so: SessionOptions): Promise<SessionResult> {
  const result: SessionResult = { clean: true, failures: 0, restored: false, requests: 0 };
  const peer = peerCred(fd).pid;
  for (;;) {
    const got = receiveRequest(fd);
    if (got.kind === 'eof') break;
    if (got.kind === 'bad') {
      sendResponse(fd, emptyError(got.why));
      result.clean = false;
      break;
    }
    const req = got.req;
    result.requests++;
    let outcome: Outcome;
    try {
      outcome = await handle(fd, req, peer, so);
    } catch (e) {
      outcome = { resp: failure(req.type, e), ok: false };
    } finally {
      so.title?.(undefined);
    }
    if (outcome.restored) result.restored = true;
    result.clean = outcome.ok && outcome.resp?.success !== false;
    if (!result.clean) result.failures++;
    const sent = outcome.resp === undefined || sendResponse(fd, outcome.resp);
    if (outcome.adopted !== undefined) so.adopt?.(outcome.adopted);
    if (!sent) {
      result.clean = false;
      break;
    }
    if (!outcome.ok || !(outcome.keepOpen ?? req.keep_open)) break;
  }
  return result;
}

async function handle(fd: number, req: CriuReq, peer: number, so: SessionOptions): Promise<Outcome> {
  const type = req.type;
  const name = NAMES[type];
  switch (type) {
    case CriuReqType.DUMP:
      return dumpRequest(fd, req, peer, so);
    case CriuReqType.RESTORE:
      return restoreRequest(fd, req, peer, so);
    case CriuReqType.CHECK:
      return checkRequest(req, peer, so);
    case CriuReqType.VERSION:
      return {
        ok: true,
        resp: {
          type,
          success: true,
          version: {
            major_number: CRIU_COMPAT.major,
            minor_number: CRIU_COMPAT.minor,
            name: `criu-ts ${so.version}`,
          },
        },
      };
    case CriuReqType.FEATURE_CHECK:
      // As CRIU: a feature asked for is answered; lazy pages and the pidfd store are not in criu-ts yet.
      return {
        ok: true,
        resp: {
          type,
          success: true,
          features: {
            mem_track: req.features?.mem_track === true && dirtyTrackMechanism().mechanism !== undefined,
            lazy_pages: false,
            pidfd_store: false,
          },
        },
      };
    case CriuReqType.WAIT_PID:
      return waitPid(req.pid ?? 0);
    case CriuReqType.PRE_DUMP:
      return preDumpLoop(fd, req, peer, so);
    case CriuReqType.SINGLE_PRE_DUMP:
      return preDumpRequest(req, peer, so, true);
    case CriuReqType.PAGE_SERVER:
    case CriuReqType.PAGE_SERVER_CHLD:
      return notSupported(
        type,
        `${name}: not supported by criu-ts yet (the page server is not in criu-ts yet)`,
      );
    case CriuReqType.CPUINFO_DUMP:
    case CriuReqType.CPUINFO_CHECK:
      return cpuinfoRequest(req, peer, so);
    default:
      // NOTIFY is only an answer inside a dump or restore; anything else is unknown. CRIU: "Invalid req".
      return {
        ok: false,
        resp: emptyError(
          type === CriuReqType.NOTIFY
            ? 'Invalid req: NOTIFY is only an answer to a notification during a dump or restore'
            : `Invalid req: unknown request type ${type}`,
        ),
      };
  }
}

function notSupported(type: number, why: string, goOn = true): Outcome {
  return { ok: goOn, resp: { type, success: false, cr_errno: ERRNO.EOPNOTSUPP, cr_errmsg: why } };
}

/** A request's log, flushed and closed once the request is done (a worker serves many). */
function closeLog(log: CriuLog): void {
  if (log.close) log.close();
  else log.flush();
}

/** The log of a request: log_file in the work dir (criu.log by default), or stderr. */
function requestLog(ro: RequestOptions, workDir: string, where: string): CriuLog {
  return makeLogger(ro.o, workDir, where);
}

/**
 * The NOTIFY exchange at each stage (opts.notify_scripts): criu_resp{NOTIFY, notify{script, pid}}, then
 * the client's criu_req{NOTIFY, notify_success}. Anything else (false, another request, a disconnect)
 * throws, which aborts the dump or restore. The pid goes with the stages CRIU sends it with.
 */
function notifier(fd: number, log: CriuLog): StageHook {
  return (stage, pid) => {
    log.info(`RPC: notify ${stage}`);
    const withPid = stage === 'setup-namespaces' || stage === 'post-restore';
    const sent = sendResponse(fd, {
      type: CriuReqType.NOTIFY,
      success: true,
      notify: { script: stage, ...(withPid ? { pid } : {}) },
    });
    if (!sent) throw new RequestError(`notify ${stage}: the RPC client is gone`);
    const got = receiveRequest(fd);
    if (got.kind !== 'request') throw new RequestError(`notify ${stage}: the RPC client is gone`);
    if (got.req.type !== CriuReqType.NOTIFY || got.req.notify_success !== true)
      throw new RequestError(`notify ${stage}: RPC client reported script error`);
  };
}

async function dumpRequest(fd: number, req: CriuReq, peer: number, so: SessionOptions): Promise<Outcome> {
  const ro = requestOptions(req.opts, 'dump', peer, so.swrk);
  // post-dump is sent while the tree is frozen: a client of the tree could never answer it.
  if (ro.selfDump && ro.notify)
    throw new RequestError(
      'criu_opts.notify_scripts: a client that dumps itself cannot answer notifications while it is frozen',
    );
  so.title?.(`dump --rpc -t ${ro.pid}`);
  const dirs = runDirs(ro.o);
  const log = requestLog(ro, dirs.workDir, 'dump');
  try {
    log.info(`criu-ts ${so.version}: RPC dump of the tree of pid ${ro.pid} into ${dirs.imagesDir}`);
    const hooks: RunHooks = {
      logger: log,
      // A client that hangs up mid-dump gets nothing: the dump stops and leaves the tree running.
      checkpoint: () => {
        if (peerGone(fd))
          throw new DumpError('the RPC client closed the connection; the tree was left running');
      },
      ...(ro.notify ? { notify: notifier(fd, log) } : {}),
    };
    // A client that dumps itself: its end of this connection is dumped as CRIU dumps it (closed, marked),
    // and its restore finds the answer restored = true in it.
    const self = ro.selfDump ? { rpcSocketIno: Number(fstat(fd).ino) } : {};
    const result = await dump({ ...dumpOptionsOf(ro.o, ro.pid, dirs, hooks), ...self });
    log.info(`Dumping finished successfully: ${result.tasks} tasks, ${result.pagesWritten} pages`);
    if (ro.o.displayStats) for (const line of dumpStatsLines(result.stats)) log.info(line);
    // A client that dumped itself without leave_running is dead now: CRIU sends it nothing.
    if (ro.selfDump && ro.o.finalState !== 'running') return { ok: true };
    return { ok: true, resp: { type: CriuReqType.DUMP, success: true, dump: { restored: false } } };
  } catch (e) {
    log.error(e instanceof Error ? e.message : String(e));
    return { ok: false, resp: { ...failure(CriuReqType.DUMP, e), dump: { restored: false } } };
  } finally {
    closeLog(log);
  }
}

/**
 * PRE_DUMP, as CRIU's pre_dump_loop: each pre-dump is answered, and the next request must be another
 * PRE_DUMP or the DUMP that ends the series (anything else: "Bad req seq"); a failed pre-dump ends the
 * connection.
 */
async function preDumpLoop(fd: number, first: CriuReq, peer: number, so: SessionOptions): Promise<Outcome> {
  let req = first;
  for (;;) {
    const out = await preDumpRequest(req, peer, so, false);
    if (!out.ok) return out;
    so.title?.(undefined);
    if (!out.resp || !sendResponse(fd, out.resp)) return { ok: false };
    const got = receiveRequest(fd);
    if (got.kind !== 'request')
      return { ok: false, ...(got.kind === 'bad' ? { resp: emptyError(got.why) } : {}) };
    req = got.req;
    if (req.type === CriuReqType.PRE_DUMP) continue;
    if (req.type !== CriuReqType.DUMP) return { ok: false, resp: emptyError('Bad req seq') };
    return { ...(await dumpRequest(fd, req, peer, so)), keepOpen: req.keep_open === true };
  }
}

/** One pre-dump (PRE_DUMP or SINGLE_PRE_DUMP, whose answer has its own type). */
async function preDumpRequest(
  req: CriuReq,
  peer: number,
  so: SessionOptions,
  single: boolean,
): Promise<Outcome> {
  const type = single ? CriuReqType.SINGLE_PRE_DUMP : CriuReqType.PRE_DUMP;
  const ro = requestOptions(req.opts, 'dump', peer, so.swrk);
  so.title?.(`pre-dump --rpc -t ${ro.pid}`);
  const dirs = runDirs(ro.o);
  const log = requestLog(ro, dirs.workDir, 'pre-dump');
  try {
    log.info(`criu-ts ${so.version}: RPC pre-dump of the tree of pid ${ro.pid} into ${dirs.imagesDir}`);
    const r = await preDump(preDumpOptionsOf(ro.o, ro.pid, dirs, { logger: log }));
    log.info(`Pre-dumping finished successfully: ${r.pagesWritten} pages written`);
    if (ro.o.displayStats) for (const line of dumpStatsLines(r.stats)) log.info(line);
    return { ok: true, resp: { type, success: true } };
  } catch (e) {
    log.error(e instanceof Error ? e.message : String(e));
    log.error('Pre-dumping FAILED.');
    return { ok: false, resp: failure(type, e) };
  } finally {
    closeLog(log);
  }
}

async function restoreRequest(fd: number, req: CriuReq, peer: number, so: SessionOptions): Promise<Outcome> {
  const ro = requestOptions(req.opts, 'restore', peer, so.swrk);
  so.title?.('restore --rpc');
  const dirs = runDirs(ro.o);
  const log = requestLog(ro, dirs.workDir, 'restore');
  // CRIU's RPC restore is always detached: the tree runs on as this process's child (or its client's,
  // with rst_sibling; or the service's, see SessionOptions.adopt) and the answer carries the root's pid.
  const adopted = so.adopt !== undefined && req.keep_open !== true;
  const o = adopted ? { ...ro.o, restoreSibling: true } : ro.o;
  let root: number;
  try {
    log.info(`criu-ts ${so.version}: RPC restore from ${dirs.imagesDir}`);
    const result = restore(
      restoreOptionsOf(o, dirs, { logger: log, ...(ro.notify ? { notify: notifier(fd, log) } : {}) }),
    );
    root = result.root;
    log.info(`Restore finished successfully: root ${root}, ${result.pids.length} tasks`);
    if (ro.o.displayStats) for (const line of restoreStatsLines(result.stats)) log.info(line);
    if (ro.statusFdPath) writeStatusFd(ro.statusFdPath, log);
  } catch (e) {
    log.error(e instanceof Error ? e.message : String(e));
    return {
      ok: false,
      restored: !(e instanceof RestoreError || e instanceof RequestError),
      resp: { ...failure(CriuReqType.RESTORE, e), restore: { pid: -1 } },
    };
  } finally {
    closeLog(log);
  }
  return {
    ok: true,
    ...(adopted ? { adopted: root } : { restored: true }),
    resp: { type: CriuReqType.RESTORE, success: true, restore: { pid: root } },
  };
}

/** opts.status_fd (obsolete in CRIU, still honoured): one zero byte to the client's fd once the tree runs. */
function writeStatusFd(path: string, log: CriuLog): void {
  log.warn('status_fd is obsoleted; use status-ready notification instead');
  try {
    const fd = openSync(path, 'w');
    try {
      writeSync(fd, Buffer.of(0));
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    log.error(`Can't reopen status fd ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}

function checkRequest(req: CriuReq, peer: number, so: SessionOptions): Outcome {
  so.title?.('check --rpc');
  // CHECK looks at the log options only, as CRIU's.
  const o = req.opts;
  const logOnly = o
    ? {
        images_dir_fd: o.images_dir_fd,
        ...(o.images_dir !== undefined ? { images_dir: o.images_dir } : {}),
        ...(o.work_dir_fd !== undefined ? { work_dir_fd: o.work_dir_fd } : {}),
        ...(o.log_file !== undefined ? { log_file: o.log_file } : {}),
        ...(o.log_level !== undefined ? { log_level: o.log_level } : {}),
        ...(o.log_to_stderr !== undefined ? { log_to_stderr: o.log_to_stderr } : {}),
      }
    : undefined;
  const ro = requestOptions(logOnly, 'check' satisfies RequestMode, peer, so.swrk);
  const wantsFile = o?.log_file !== undefined && ro.o.workDir !== undefined;
  const log = wantsFile ? requestLog(ro, runDirs(ro.o).workDir, 'check') : undefined;
  try {
    for (const { name, answer } of basicChecks()) {
      if (!answer.ok) {
        log?.error(`${name}: ${answer.why}`);
        return {
          ok: false,
          resp: { type: CriuReqType.CHECK, success: false, cr_errmsg: `${name}: ${answer.why}` },
        };
      }
    }
    log?.info('Looks good.');
    return { ok: true, resp: { type: CriuReqType.CHECK, success: true } };
  } finally {
    if (log) closeLog(log);
  }
}

/**
 * CPUINFO_DUMP writes cpuinfo.img into the images dir; CPUINFO_CHECK compares it with this CPU under
 * opts.cpu_cap (CRIU's default fpu,ins without it). Either way the connection may go on (keep_open).
 */
function cpuinfoRequest(req: CriuReq, peer: number, so: SessionOptions): Outcome {
  const isDump = req.type === CriuReqType.CPUINFO_DUMP;
  so.title?.(`cpuinfo ${isDump ? 'dump' : 'check'} --rpc`);
  let log: CriuLog | undefined;
  try {
    const ro = requestOptions(req.opts, 'cpuinfo', peer, so.swrk);
    const dirs = runDirs(ro.o);
    log = requestLog(ro, dirs.workDir, 'cpuinfo');
    const debug = (m: string) => log?.debug(m);
    if (isDump) cpuinfoDump(dirs.imagesDir, debug);
    else cpuinfoCheck(dirs.imagesDir, ro.o.cpuCap, debug);
    return { ok: true, resp: { type: req.type, success: true } };
  } catch (e) {
    log?.error(e instanceof Error ? e.message : String(e));
    return { ok: true, resp: failure(req.type, e) };
  } finally {
    if (log) closeLog(log);
  }
}

/** WAIT_PID: waitpid() on a child of this process (a tree restored here), its raw status. */
function waitPid(pid: number): Outcome {
  try {
    const st = waitpid(pid, 0);
    return { ok: true, resp: { type: CriuReqType.WAIT_PID, success: true, status: st?.status ?? 0 } };
  } catch (e) {
    const errno = e instanceof SysError ? e.errno : undefined;
    return {
      ok: true,
      resp: {
        type: CriuReqType.WAIT_PID,
        success: false,
        ...(errno ? { cr_errno: errno } : {}),
        cr_errmsg: `Unable to wait ${pid}: ${e instanceof Error ? e.message : String(e)}`,
      },
    };
  }
}
