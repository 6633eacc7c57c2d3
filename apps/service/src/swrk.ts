// `criu-ts swrk <fd>`: serve CRIU's RPC on a socket the caller made (a socketpair end, as runc, pycriu
// and go-criu pass it) until the caller is done; and the service's pool worker, which is `criu-ts swrk 3`
// started by the service with its control socket as fd 3 (service.ts).
import type { CriuOptions } from '@criu-ts/core';
import { OptionError } from '@criu-ts/core';
import {
  close,
  fstat,
  getsockoptInt,
  MSG_NOSIGNAL,
  POLLIN,
  poll,
  recvmsg,
  S_IFMT,
  S_IFSOCK,
  SO_TYPE,
  SOCK_SEQPACKET,
  SOL_SOCKET,
  send,
} from '@criu-ts/sys';
import { IDLE_TICK_MS, IDLE_TICKING_MS, MSG_READY, MSG_TREE, WORKER_ENV, WORKER_JOBS } from './service.js';
import { serveConnection } from './session.js';
import { idleGc, warmUp } from './warm.js';

/** Process titles: `ps` shows what a worker does (`criu-ts dump --rpc -t PID`). */
function titler(idle: string): (what: string | undefined) => void {
  return (what) => {
    process.title = what === undefined ? idle : `criu-ts ${what}`;
  };
}

export async function swrkCommand(o: CriuOptions, version: string): Promise<number> {
  if (process.env[WORKER_ENV] === '1') {
    delete process.env[WORKER_ENV];
    return poolWorker(3, version);
  }
  const arg = o.operands[0];
  const fd = arg !== undefined && /^\d+$/.test(arg) ? Number(arg) : Number.NaN;
  if (!Number.isInteger(fd) || o.operands.length !== 1) throw new OptionError('Usage: criu-ts swrk <fd>');
  checkSeqpacket(fd);
  const r = await serveConnection(fd, { swrk: true, version, title: titler('criu-ts swrk') });
  close(fd);
  return r.clean ? 0 : 1;
}

function checkSeqpacket(fd: number): void {
  let ok = false;
  try {
    ok = (fstat(fd).mode & S_IFMT) === S_IFSOCK && getsockoptInt(fd, SOL_SOCKET, SO_TYPE) === SOCK_SEQPACKET;
  } catch {
    ok = false;
  }
  if (!ok) throw new OptionError(`swrk: fd ${fd} is not a SOCK_SEQPACKET socket`);
}

/**
 * A pool worker: says it is ready, then serves each connection the service hands it. It exits when
 * the service closes the control socket, after a connection that saw a request fail or restored a tree
 * as its own children (keep_open), or after WORKER_JOBS connections. A plain restore makes the tree the
 * service's child (SessionOptions.adopt), so the worker, warm from real work, serves on.
 */
async function poolWorker(ctl: number, version: string): Promise<number> {
  const idle = 'criu-ts service worker';
  const title = titler(idle);
  title(undefined);
  await warmUp(version);
  if (!tell(ctl)) return 0;
  for (let jobs = 1; ; jobs++) {
    await idleUntilReadable(ctl);
    const m = recvmsg(ctl, { iov: [Buffer.alloc(1)], maxFds: 1 });
    const conn = m.fds[0];
    if (m.bytes === 0 || conn === undefined) {
      for (const f of m.fds) close(f);
      return 0;
    }
    const r = await serveConnection(conn, { swrk: false, version, title, adopt: (pid) => adopt(ctl, pid) });
    close(conn);
    if (!r.clean || r.failures > 0) return 1;
    if (r.restored || jobs >= WORKER_JOBS) return 0;
    // Before it says it is ready: a connection that comes meanwhile goes to another idle worker.
    idleGc();
    if (!tell(ctl)) return 0;
  }
}

/**
 * Waits for the service's next message: a poll every IDLE_TICK_MS (with a turn of the event loop in
 * between, for what V8 and libuv have pending) for IDLE_TICKING_MS, then recvmsg blocks (see service.ts).
 */
async function idleUntilReadable(ctl: number): Promise<void> {
  const until = process.uptime() * 1000 + IDLE_TICKING_MS;
  while (process.uptime() * 1000 < until) {
    if (poll([{ fd: ctl, events: POLLIN }], IDLE_TICK_MS) > 0) return;
    await new Promise((r) => setImmediate(r));
  }
}

/** Tells the service that `pid`, a restored root, is its child now (to be reaped by it). */
function adopt(ctl: number, pid: number): void {
  const m = Buffer.alloc(5);
  m[0] = MSG_TREE;
  m.writeInt32LE(pid, 1);
  try {
    send(ctl, m, MSG_NOSIGNAL);
  } catch {
    // the service is gone: the tree goes to its reaper with it
  }
}

/** Tells the service this worker is ready; false when the service is gone (the worker then exits). */
function tell(ctl: number): boolean {
  try {
    send(ctl, Buffer.of(MSG_READY), MSG_NOSIGNAL);
    return true;
  } catch {
    return false;
  }
}
