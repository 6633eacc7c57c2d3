// Helpers of the service's tests: criu-ts's `swrk` and `service` run as separate processes (the CLI
// bundle), and plain clients written here with @criu-ts/sys sockets: one criu_req per datagram, one
// criu_resp per reply, as any CRIU client sends them.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type CriuReq, type CriuResp, decodeResponse, encodeRequest } from '@criu-ts/rpc';
import {
  AF_UNIX,
  close,
  connect,
  encodeSockaddrUn,
  MSG_NOSIGNAL,
  POLLIN,
  poll,
  recv,
  SOCK_CLOEXEC,
  SOCK_SEQPACKET,
  send,
  socket,
  socketpair,
} from '@criu-ts/sys';
import { onCleanup, REPO, track, unixListening, waitFor } from '@criu-ts/testkit';

export * from '@criu-ts/testkit';

/** criu-ts's own node process (bin/criu-ts.cjs: the bundle, as the installed command runs it). */
export const CRIU_TS_NODE = path.join(REPO, 'apps/cli/bin/criu-ts.cjs');

/** A client's end of one connection. */
export class Client {
  private closed = false;

  constructor(readonly fd: number) {}

  /** Sends raw bytes as one datagram. */
  sendRaw(bytes: Buffer): void {
    send(this.fd, bytes, MSG_NOSIGNAL);
  }

  send(req: CriuReq): void {
    this.sendRaw(encodeRequest(req));
  }

  /** The next response; undefined when the server closed the connection. Bounded by `timeoutMs`. */
  receive(timeoutMs = 60_000): CriuResp | undefined {
    const fds = [{ fd: this.fd, events: POLLIN }];
    if (poll(fds, timeoutMs) === 0) throw new Error(`no answer within ${timeoutMs} ms`);
    const buf = Buffer.alloc(1 << 16);
    let n: number;
    try {
      n = recv(this.fd, buf);
    } catch (e) {
      if ((e as { code?: string }).code === 'ECONNRESET') return undefined;
      throw e;
    }
    return n === 0 ? undefined : decodeResponse(buf.subarray(0, n));
  }

  /** One request, its response (which must come). */
  call(req: CriuReq, timeoutMs?: number): CriuResp {
    this.send(req);
    const r = this.receive(timeoutMs);
    if (!r) throw new Error(`request type ${req.type}: the server closed the connection`);
    return r;
  }

  /** Closes the fd once: a second close could hit an fd number reused since (vitest's own). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    close(this.fd);
  }
}

/** A process run with child_process (libuv reaps it), its exit awaited. */
export interface Proc {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

function runNode(
  args: string[],
  opts: { stdio?: Array<'ignore' | 'pipe' | number>; env?: NodeJS.ProcessEnv; argv0?: string[] } = {},
): Proc {
  const argv = opts.argv0 ?? [process.execPath, CRIU_TS_NODE];
  const child = spawn(argv[0] as string, [...argv.slice(1), ...args], {
    cwd: REPO,
    stdio: (opts.stdio ?? ['ignore', 'ignore', 'pipe']) as never,
    env: opts.env ?? process.env,
  });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const pid = child.pid as number;
  onCleanup(() => {
    // Only while libuv has not reaped it: once reaped, the pid may be anyone's.
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  return { child, pid, exited, stderr: () => err };
}

/** `criu-ts swrk <fd>` on a fresh socketpair; the client's end. */
export function startSwrk(): { client: Client; proc: Proc } {
  const [mine, theirs] = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
  let proc: Proc;
  try {
    proc = runNode(['swrk', '3'], { stdio: ['ignore', 'ignore', 'pipe', theirs] });
  } finally {
    close(theirs);
  }
  const client = new Client(mine);
  onCleanup(() => client.close());
  return { client, proc };
}

/** Children of `pid` (its first thread's list). */
export function childrenOf(pid: number): number[] {
  try {
    const s = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return s ? s.split(' ').map(Number) : [];
  } catch {
    return [];
  }
}

/** The command line of `pid` as `ps` shows it (NULs as spaces, trailing ones dropped). */
export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/** /proc state letter of `pid`, or 'gone'. */
export function stateOf(pid: number): string {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return 'gone';
  }
}

export interface Service {
  proc: Proc;
  address: string;
  connect(): Client;
  /** The service's workers now (its children, but for the roots of trees it restored). */
  workers(): number[];
  /** The service's children that are not workers: the roots of trees it restored. */
  trees(): number[];
}

/**
 * `criu-ts service --address DIR/sock ARGS`, resolved once the socket accepts connections. At cleanup
 * the service and its workers are killed and reaped (workers re-parented to this subreaper).
 */
export async function startService(dir: string, args: string[] = []): Promise<Service> {
  const address = path.join(dir, 'criu_service.socket');
  const proc = runNode(['service', '--address', address, ...args]);
  return serviceAt(proc, address);
}

export async function serviceAt(proc: Proc, address: string): Promise<Service> {
  onCleanup(() => {
    track(...childrenOf(proc.pid));
  });
  await waitFor(
    () => unixListening(address) || proc.child.exitCode !== null,
    `the service socket ${address}`,
  );
  if (proc.child.exitCode !== null) throw new Error(`the service exited: ${proc.stderr()}`);
  const svc: Service = {
    proc,
    address,
    connect: () => connectTo(address),
    workers: () => childrenOf(proc.pid).filter((p) => !isRestored(p)),
    trees: () => childrenOf(proc.pid).filter(isRestored),
  };
  return svc;
}

/** A child of the service that runs something else than node (a zombie's exe cannot be read: no). */
function isRestored(pid: number): boolean {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`) !== process.execPath;
  } catch {
    return false;
  }
}

export function connectTo(address: string): Client {
  const fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
  try {
    connect(fd, encodeSockaddrUn(address));
  } catch (e) {
    close(fd);
    throw e;
  }
  const c = new Client(fd);
  onCleanup(() => c.close());
  return c;
}

export { runNode };
