// `criu-ts service`: a unix SOCK_SEQPACKET server, one worker process per connection, as CRIU's. For
// speed the workers are kept warm: the main process hands an accepted connection to an idle worker
// (SCM_RIGHTS over a socketpair), and a worker that served only successful requests goes back to the
// pool (at most WORKER_JOBS connections, then it exits). A restore makes the restored root the main
// process's child (the worker's sibling): the worker tells the main process its pid, and the main
// process reaps it when it exits. A worker that restored a tree as its own children (keep_open, where a
// WAIT_PID may follow) or saw a request fail exits after its connection. One idle worker is kept ready.
//
// The main process runs one blocking loop (poll on the listening socket, the workers' control sockets,
// their pidfds and those of the restored roots; accept; waitid) and never returns to Node's event loop:
// libuv never reaps a worker, so every exit is ours to collect, and none is left a zombie. A worker's
// death, SIGKILL included, only costs the connection it served; a root it restored and had no time to
// tell about is found among the main process's children then.
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, unlinkSync, writeSync } from 'node:fs';
import { withProcDir } from '@criu-ts/bfd';
import {
  type CriuLog,
  type CriuOptions,
  checkPidfile,
  makeLogger,
  OptionError,
  runDirs,
  startDaemonCopy,
  writePidfile,
} from '@criu-ts/core';
import {
  AF_UNIX,
  accept4,
  bind,
  close,
  encodeSockaddrUn,
  F_SETFD,
  FD_CLOEXEC,
  fcntl,
  getsockoptInt,
  listen,
  MSG_NOSIGNAL,
  P_PIDFD,
  POLLHUP,
  POLLIN,
  type PollFd,
  pidfdOpen,
  poll,
  recv,
  SO_ACCEPTCONN,
  SO_TYPE,
  SOCK_CLOEXEC,
  SOCK_SEQPACKET,
  SOL_SOCKET,
  sendmsg,
  socket,
  socketpair,
  WEXITED,
  WNOHANG,
  waitid,
} from '@criu-ts/sys';

/** CRIU's default service address, in the current directory. */
export const DEFAULT_ADDRESS = 'criu_service.socket';
/** Connections a worker serves before it exits (a fresh one takes its place). */
export const WORKER_JOBS = 64;
/** Idle workers kept; more are told to go. */
const MAX_IDLE = 2;
/** Workers kept at all times, idle or busy. */
const MIN_WORKERS = 2;
/**
 * While clients come, the main process and the idle workers wake up every IDLE_TICK_MS (one poll),
 * for IDLE_TICKING_MS after the last connection, then sleep until something happens. A process that
 * slept through a second or more takes 1-2 ms longer to wake here (measured: the accept and the hand-over
 * to the worker, 2.7 ms after 1.5 s asleep, 0.9 ms with ticks of 200 ms): a warm dump is 12 ms.
 */
export const IDLE_TICK_MS = 200;
export const IDLE_TICKING_MS = 60_000;
/** systemd's first passed fd (sd_listen_fds). */
const LISTEN_FDS_START = 3;

/** The environment variable that makes `criu-ts swrk 3` a pool worker on control socket 3. */
export const WORKER_ENV = 'CRIU_TS_SERVICE_WORKER';
/** The environment variable of `service -d`'s daemon: fd 3 listens, fd 4 is told when it is ready. */
const DAEMON_ENV = 'CRIU_TS_SERVICE_DAEMON';

/** Control messages between the main process and a worker (one byte each; a connection goes with 'C'). */
export const MSG_READY = 0x52; // 'R': started, or done with a connection and idle again
export const MSG_CONN = 0x43; // 'C': here is a connection (SCM_RIGHTS)
export const MSG_TREE = 0x54; // 'T' + pid (int32 LE): a restored root, the service's child now

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

interface Worker {
  pid: number;
  pidfd: number;
  ctl: number;
  state: 'starting' | 'idle' | 'busy';
  jobs: number;
}

/** `criu-ts service [--address SOCK] [-d] [--pidfile F] [-o LOG] [-v N] [-W DIR]`. */
export async function serviceCommand(o: CriuOptions, version: string): Promise<number> {
  const daemonChild = process.env[DAEMON_ENV] === '1';
  delete process.env[DAEMON_ENV];
  const { workDir } = runDirs(o);
  const log = makeLogger(o, workDir, 'service');
  const pidfile = o.pidfile ? resolvePath(o.pidfile, workDir) : undefined;
  if (pidfile && !daemonChild) checkPidfile(pidfile);
  const listenFd = daemonChild ? LISTEN_FDS_START : (passedSocket(log) ?? bindService(o.address, log));
  if (o.restoreDetached && !daemonChild) return startDaemon(listenFd, log);
  if (pidfile) writePidfile(pidfile, process.pid);
  if (daemonChild) {
    // The starter waits for this byte: the socket listens and the pidfile is there.
    try {
      writeSync(4, Buffer.of(MSG_READY));
    } finally {
      closeSync(4);
    }
  }
  // --status-fd, as CRIU's service: one zero byte once it listens, then the fd is the caller's no more.
  if (o.statusFd !== undefined) {
    writeSync(o.statusFd, Buffer.of(0));
    closeSync(o.statusFd);
  }
  log.info(`criu-ts ${version}: service ready (pid ${process.pid})`);
  log.flush();
  return new Pool(listenFd, log).run();
}

function resolvePath(p: string, base: string): string {
  return p.startsWith('/') ? p : `${base}/${p}`;
}

/**
 * A listening socket passed by whoever started the service, with systemd's socket activation protocol:
 * LISTEN_PID is this process and LISTEN_FDS counts the fds from 3 (the first is used). CRIU 4.2 itself
 * binds its own socket only; this is criu-ts's addition, for systemd units and supervisors.
 */
function passedSocket(log: CriuLog): number | undefined {
  const pid = process.env.LISTEN_PID;
  const n = Number(process.env.LISTEN_FDS ?? 0);
  if (pid === undefined || Number(pid) !== process.pid || !(n >= 1)) return undefined;
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_FDNAMES;
  const fd = LISTEN_FDS_START;
  let type: number;
  try {
    type = getsockoptInt(fd, SOL_SOCKET, SO_TYPE);
  } catch (e) {
    throw new OptionError(`LISTEN_FDS: fd ${fd} is not a socket (${(e as { code?: string }).code ?? e})`);
  }
  if (type !== SOCK_SEQPACKET) throw new OptionError(`LISTEN_FDS: fd ${fd} is not a SOCK_SEQPACKET socket`);
  if (getsockoptInt(fd, SOL_SOCKET, SO_ACCEPTCONN) === 0) listen(fd, 16);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  log.info(`The service socket is fd ${fd}, passed by the caller (LISTEN_FDS)`);
  return fd;
}

/** CRIU's way: the address unlinked, bound, made 0666 (anyone may connect), listened on (backlog 16). */
function bindService(address: string | undefined, log: CriuLog): number {
  let path = address;
  if (path === undefined) {
    log.warn('Binding to local dir address!');
    path = DEFAULT_ADDRESS;
  }
  const fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
  try {
    try {
      unlinkSync(path);
    } catch {
      // nothing there
    }
    try {
      bind(fd, encodeSockaddrUn(path));
    } catch (e) {
      throw new OptionError(`Can't bind the service socket ${path}: ${e instanceof Error ? e.message : e}`);
    }
    log.info(`The service socket is bound to ${path}`);
    chmodSync(path, 0o666);
    listen(fd, 16);
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}

/**
 * -d: the service goes on in a new session with no terminal (CRIU's daemon()); this process returns once
 * the daemon listens and wrote its pidfile, so that a caller may connect (or read the pidfile) at once.
 */
function startDaemon(listenFd: number, log: CriuLog): number {
  const { pid, ready } = startDaemonCopy({
    flag: DAEMON_ENV,
    unset: [WORKER_ENV],
    fds: ['ignore', listenFd],
    readyBytes: 1,
  });
  close(listenFd);
  if (!ready) {
    log.error(`the service daemon (pid ${pid}) did not start`);
    return 1;
  }
  return 0;
}

class Pool {
  private readonly workers = new Map<number, Worker>();
  /** Restored roots that are this process's children (a worker restored them as its sibling): pidfds. */
  private readonly trees = new Map<number, number>();
  /** Accepted connections no worker has taken yet. */
  private readonly waiting: number[] = [];
  /** When the last connection came (process.uptime(), s). */
  private lastConnection = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly listenFd: number,
    private readonly log: CriuLog,
  ) {}

  run(): never {
    for (;;) {
      try {
        this.turn();
      } catch (e) {
        // The service outlives what goes wrong with one worker or one connection (EMFILE, EAGAIN on a
        // spawn, ...): said in the log, tried again a moment later.
        this.log.error(`service: ${e instanceof Error ? e.message : String(e)}`);
        this.log.flush();
        Atomics.wait(PAUSE, 0, 0, 50);
      }
    }
  }

  /** One turn of the loop: wait for something, then accept, hear workers, reap, dispatch. */
  private turn(): void {
    this.keepOneReady();
    const list = [...this.workers.values()];
    const fds: PollFd[] = [{ fd: this.listenFd, events: POLLIN }];
    for (const w of list) fds.push({ fd: w.ctl, events: POLLIN }, { fd: w.pidfd, events: POLLIN });
    const trees = [...this.trees];
    for (const [, pidfd] of trees) fds.push({ fd: pidfd, events: POLLIN });
    poll(fds, (process.uptime() - this.lastConnection) * 1000 < IDLE_TICKING_MS ? IDLE_TICK_MS : -1);
    if ((fds[0]?.revents ?? 0) & POLLIN) this.accept();
    list.forEach((w, i) => {
      const ctl = fds[1 + 2 * i]?.revents ?? 0;
      const dead = fds[2 + 2 * i]?.revents ?? 0;
      if (ctl & POLLIN) this.fromWorker(w);
      else if (ctl & POLLHUP && w.state !== 'busy') this.retire(w);
      if (dead & POLLIN) this.reap(w);
    });
    trees.forEach(([pid, pidfd], i) => {
      if ((fds[1 + 2 * list.length + i]?.revents ?? 0) & POLLIN) this.reapTree(pid, pidfd);
    });
    this.dispatch();
    this.log.flush();
  }

  private accept(): void {
    let conn: number;
    try {
      conn = accept4(this.listenFd, SOCK_CLOEXEC);
    } catch (e) {
      this.log.warn(`Can't accept connection: ${e instanceof Error ? e.message : e}`);
      return;
    }
    this.log.info('Connected.');
    this.lastConnection = process.uptime();
    this.waiting.push(conn);
  }

  /** A worker says it is ready (started, or idle again after a connection). */
  private fromWorker(w: Worker): void {
    const b = Buffer.alloc(8);
    let n = 0;
    try {
      n = recv(w.ctl, b);
    } catch {
      n = 0;
    }
    if (n === 0) {
      // Its end closed: it is exiting; its pidfd says when (our end would only read EOF again).
      this.retire(w);
      return;
    }
    if (b[0] === MSG_READY) {
      if (w.state === 'busy') w.jobs++;
      w.state = 'idle';
    } else if (b[0] === MSG_TREE && n >= 5) {
      this.adopt(b.readInt32LE(1));
    }
  }

  /**
   * A restored root that is our child: watched through a pidfd and reaped when it exits. Anything else
   * (not our child, a worker, known already) is left alone.
   */
  private adopt(pid: number): void {
    if (!(pid > 0) || this.trees.has(pid) || this.workers.has(pid)) return;
    let pidfd: number;
    try {
      pidfd = pidfdOpen(pid);
    } catch {
      return; // gone: not ours (we have not reaped it)
    }
    if (withProcDir(pid, (d) => d.stat().ppid) !== process.pid) {
      close(pidfd);
      return;
    }
    this.trees.set(pid, pidfd);
  }

  /** A restored root's pidfd is readable: it exited; collect it. */
  private reapTree(pid: number, pidfd: number): void {
    try {
      if (waitid(P_PIDFD, pidfd, WEXITED | WNOHANG) === null) return; // not yet after all
    } catch {
      // collected already (ECHILD): gone either way
    }
    close(pidfd);
    this.trees.delete(pid);
  }

  /** Our children that are neither workers nor known roots: roots whose worker died before telling. */
  private adoptOrphans(): void {
    for (const pid of withProcDir(process.pid, (d) => d.allChildren()) ?? []) this.adopt(pid);
  }

  /** Hands waiting connections to idle workers, the most used (warmest) first. */
  private dispatch(): void {
    while (this.waiting.length > 0) {
      const idle = [...this.workers.values()]
        .filter((w) => w.state === 'idle')
        .sort((a, b) => b.jobs - a.jobs);
      const w = idle[0];
      if (!w) break;
      const conn = this.waiting[0] as number;
      try {
        sendmsg(w.ctl, { iov: [Buffer.of(MSG_CONN)], fds: [conn] }, MSG_NOSIGNAL);
      } catch (e) {
        this.log.warn(`worker ${w.pid} cannot take a connection: ${e instanceof Error ? e.message : e}`);
        this.retire(w);
        continue;
      }
      this.waiting.shift();
      close(conn);
      w.state = 'busy';
    }
    // Too many idle workers (a burst is over): the coldest go.
    const idle = [...this.workers.values()].filter((w) => w.state === 'idle').sort((a, b) => b.jobs - a.jobs);
    for (const w of idle.slice(MAX_IDLE)) this.retire(w);
  }

  /**
   * MIN_WORKERS workers at all times (started one after the other: a warm-up is a second or two of
   * CPU), and one more per waiting connection that no idle or starting worker will take. Not one per
   * connection that finds every worker busy: a worker is busy for a moment after its answer too (see
   * idleGc), and a worker started for that would warm up beside the next requests, then go.
   */
  private keepOneReady(): void {
    const all = [...this.workers.values()];
    const live = all.filter((w) => w.ctl >= 0);
    const ready = all.filter((w) => w.state !== 'busy').length;
    const starting = all.some((w) => w.state === 'starting');
    if (live.length < MIN_WORKERS && !starting) this.startWorker();
    for (let i = ready; i < this.waiting.length; i++) this.startWorker();
  }

  private startWorker(): void {
    const [mine, theirs] = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
    const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_ENV]: '1' };
    delete env[DAEMON_ENV];
    // The worker's argv is its process title's room (Node's process.title cannot grow past it): the
    // padding operand makes room for `criu-ts dump --rpc -t 4194304`.
    const args = [...process.execArgv, process.argv[1] as string, 'swrk', '3', ' '.repeat(16)];
    let pid: number | undefined;
    try {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', theirs], env });
      pid = child.pid;
    } catch (e) {
      close(mine);
      throw e;
    } finally {
      close(theirs);
    }
    if (pid === undefined) {
      close(mine);
      this.log.error("Can't start a worker");
      return;
    }
    const pidfd = pidfdOpen(pid);
    this.workers.set(pid, { pid, pidfd, ctl: mine, state: 'starting', jobs: 0 });
    this.log.info(`Worker(pid ${pid}) started`);
  }

  /**
   * Tells a worker to go: its control socket closes, which it sees when it next waits for a connection.
   * It stays in the table (as busy: it takes nothing more) until its pidfd says it exited.
   */
  private retire(w: Worker): void {
    if (w.ctl >= 0) {
      close(w.ctl);
      w.ctl = -1;
    }
    w.state = 'busy';
  }

  /** The worker's pidfd is readable: it exited; collect it. */
  private reap(w: Worker): void {
    let st: ReturnType<typeof waitid> = null;
    try {
      st = waitid(P_PIDFD, w.pidfd, WEXITED | WNOHANG);
      if (st === null) return; // not yet after all
    } catch {
      // already collected (ECHILD): it is gone either way
    }
    if (st)
      this.log.info(
        `Worker(pid ${w.pid}) ${st.code === 1 ? `exited with ${st.status}` : `was killed by ${st.status}`}`,
      );
    close(w.pidfd);
    if (w.ctl >= 0) close(w.ctl);
    this.workers.delete(w.pid);
    this.adoptOrphans();
  }
}
