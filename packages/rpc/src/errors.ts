// The errors the client throws: CriuRpcError when CRIU (or criu-ts) answered and said no,
// CriuConnectionError when no answer could be had (the swrk could not start, died, or the service
// closed the connection).
import { errnoName } from '@criu-ts/sys';
import type { CriuResp } from './gen/types.js';
import { CriuReqType } from './gen/types.js';

const TYPE_NAMES = new Map<number, string>(Object.entries(CriuReqType).map(([name, n]) => [n, name]));

/** CRIU's name of a request type ("DUMP", "RESTORE", ...), or "type N" for one rpc.proto lacks. */
export function requestTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `type ${type}`;
}

/** Every error this package throws about a request. */
export class CriuError extends Error {
  override name = 'CriuError';
}

/**
 * The server answered the request with success = false (or with a reply of another type).
 * `crErrno` and `crErrmsg` are CRIU's cr_errno and cr_errmsg when the reply had them.
 */
export class CriuRpcError extends CriuError {
  override name = 'CriuRpcError';
  /** The request's type (CriuReqType). */
  readonly requestType: number;
  readonly crErrno: number | undefined;
  readonly crErrmsg: string | undefined;
  /** The reply as received. */
  readonly response: CriuResp;

  constructor(requestType: number, response: CriuResp, options?: { cause?: unknown }) {
    super(CriuRpcError.describe(requestType, response, options?.cause), options);
    this.requestType = requestType;
    this.response = response;
    this.crErrno = response.cr_errno;
    this.crErrmsg = response.cr_errmsg;
  }

  /** The request's type by name ("DUMP"). */
  get requestTypeName(): string {
    return requestTypeName(this.requestType);
  }

  private static describe(type: number, resp: CriuResp, cause: unknown): string {
    let s = `${requestTypeName(type)} failed`;
    if (resp.type !== type && !(resp.type === CriuReqType.EMPTY && !resp.success))
      s += ` (the reply was a ${requestTypeName(resp.type)})`;
    if (resp.cr_errmsg) s += `: ${resp.cr_errmsg.trim()}`;
    if (resp.cr_errno) s += ` (errno ${resp.cr_errno}${errnoLabel(resp.cr_errno)})`;
    if (cause !== undefined) s += `; ${cause instanceof Error ? cause.message : String(cause)}`;
    return s;
  }
}

function errnoLabel(n: number): string {
  return `, ${errnoName(n)}`;
}

/** How the process at the other end ended (a swrk child only). */
export interface ExitStatus {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * No reply could be had: the swrk could not be started, the connection was closed (by the service,
 * or because the swrk died) before the reply came, or the datagram was not a reply at all.
 */
export class CriuConnectionError extends CriuError {
  override name = 'CriuConnectionError';
  /** The request that was under way, when there was one. */
  readonly requestType: number | undefined;
  /** The swrk's pid, when the connection is to a swrk child. */
  readonly pid: number | undefined;
  /** How the swrk child ended, when it has. */
  readonly exit: ExitStatus | undefined;
  /** The end of what the swrk child wrote on stderr (when it was captured). */
  readonly stderr: string | undefined;

  constructor(
    message: string,
    details: {
      requestType?: number;
      pid?: number;
      exit?: ExitStatus;
      stderr?: string;
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.requestType = details.requestType;
    this.pid = details.pid;
    this.exit = details.exit;
    this.stderr = details.stderr;
  }
}

/** "exit status 1" / "killed by SIGKILL". */
export function describeExit(exit: ExitStatus): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit status ${exit.code}`;
}
