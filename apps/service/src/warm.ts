// A pool worker's warm-up, before it says it is ready: requests of its own, served by the same code as a
// client's (serveConnection over a socketpair: the datagrams, criu_opts, the request's log, dump and
// restore, images_dir as a path and as an fd of the client), on a `sleep` of its own. So the code of
// both paths is compiled and optimized (and its first-use work done: codecs, koffi declarations, the
// CPU's XSAVE layout) before a client waits on it: the first dump in a fresh Node process takes several
// times a warm one. Off the clients' path; a warm-up that fails only costs speed.
//
// And the collection of garbage between connections (idleGc): a dump allocates about 1 MB, a restore a
// little more, so with the young generation emptied after each connection no scavenge falls inside a
// request, and a full collection now and then keeps the old generation from starting one there.
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { type CriuReq, CriuReqType, type CriuResp, decodeResponse, encodeRequest } from '@criu-ts/rpc';
import { AF_UNIX, close, recv, SOCK_CLOEXEC, SOCK_SEQPACKET, send, socketpair } from '@criu-ts/sys';
import { serveConnection } from './session.js';

const SLEEP = ['/usr/bin/sleep', '/bin/sleep'];
/** Rounds of the warm-up: dumps left running, a dump that kills, its restore. */
const ROUNDS = 3;
const LEAVE_RUNNING = 3;
/** A full collection every so many connections (a young one after each). */
const FULL_GC_EVERY = 8;

/** CRIU_TS_SERVICE_WARMUP=0 turns it off; a number sets the rounds. */
export async function warmUp(version: string): Promise<void> {
  const rounds = Number(process.env.CRIU_TS_SERVICE_WARMUP ?? ROUNDS);
  if (!(rounds > 0)) return;
  const dir = mkdtempSync(join(tmpdir(), 'criu-ts-warmup-'));
  let pid = 0;
  try {
    for (const exe of SLEEP) {
      try {
        // Not for long: a worker killed meanwhile leaves it behind.
        pid = startTraceable([exe, '120'], { setsid: true });
        break;
      } catch {
        // the next one
      }
    }
    if (pid === 0) return;
    for (let round = 0; round < rounds; round++) {
      const dirFd = openSync(dir, 'r');
      try {
        const images = round % 2 === 1 ? { images_dir_fd: dirFd } : { images_dir_fd: -1, images_dir: dir };
        for (let i = 0; i < LEAVE_RUNNING; i++)
          await call(version, { type: CriuReqType.DUMP, opts: { ...images, pid, leave_running: true } });
        await call(version, { type: CriuReqType.DUMP, opts: { ...images, pid } });
        killAndReap(pid);
        pid = 0;
        // Without adopt (SessionOptions): the tree is this worker's child, killed below.
        pid = (await call(version, { type: CriuReqType.RESTORE, opts: images })).restore?.pid ?? 0;
      } finally {
        closeSync(dirFd);
      }
    }
  } catch {
    // a warm-up only
  } finally {
    if (pid > 0) killAndReap(pid);
    rmSync(dir, { recursive: true, force: true });
  }
  idleGc(true);
}

/** One request served as a client's would be (this process is the client), its answer. */
async function call(version: string, req: CriuReq): Promise<CriuResp> {
  const [client, server] = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
  try {
    send(client, encodeRequest(req));
    await serveConnection(server, { swrk: false, version });
    const buf = Buffer.alloc(65536);
    const resp = decodeResponse(buf.subarray(0, recv(client, buf)));
    if (!resp.success) throw new Error(resp.cr_errmsg ?? 'failed');
    return resp;
  } finally {
    close(client);
    close(server);
  }
}

type Gc = (o?: { type?: 'major' | 'minor' }) => void;
let gc: Gc | null | undefined;
let connections = 0;

/**
 * Between connections: the young generation collected (and everything, every FULL_GC_EVERY calls or
 * with `full`). V8's gc() is exposed for a moment only: the flag is part of what V8 checks a code cache
 * against, and the CLI's loader writes its cache at exit with the flags of then.
 */
export function idleGc(full = false): void {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as Gc;
    } catch {
      gc = null;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }
  if (!gc) return;
  gc({ type: full || ++connections % FULL_GC_EVERY === 0 ? 'major' : 'minor' });
}
