import { closeSync, writeSync } from 'node:fs';
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
import { ImageDir } from '@criu-ts/images';
import { PageServerError, PageServerListener, receivePages } from '@criu-ts/page-server';

/** Set in the daemon that `page-server -d` starts: fd 3 is the pipe its port goes back on. */
const DAEMON_ENV = 'CRIU_TS_PAGE_SERVER_DAEMON';

/**
 * `criu-ts page-server -D DIR [--address A] [--port P] [-d] [--status-fd FD] [--pidfile F]`, as CRIU's:
 * listens (port 0 or none: a free port, logged as `Using P port`), takes one connection, writes the dump's
 * pagemaps and pages into DIR and exits once the client said CLOSE (0), or on a broken session (1, nothing
 * written). -d: the server goes on as a daemon; this process returns once it listens, with its pid in
 * --pidfile. --status-fd gets one zero byte once the server listens.
 */
export async function pageServerCommand(o: CriuOptions): Promise<number> {
  if (o.operands.length > 0) throw new OptionError(`excessive parameters for command page-server`);
  const daemonChild = process.env[DAEMON_ENV] === '1';
  delete process.env[DAEMON_ENV];
  const dirs = runDirs(o);
  if (!daemonChild) ImageDir.create(dirs.imagesDir); // 0700, before the log file can create it
  // The daemon writes to the log its starter opened (its fd 2), as CRIU's daemon keeps its log fd.
  const log = makeLogger(daemonChild ? { ...o, logFile: undefined } : o, dirs.workDir, 'page-server');
  const pidfile = o.pidfile
    ? o.pidfile.startsWith('/')
      ? o.pidfile
      : `${dirs.workDir}/${o.pidfile}`
    : undefined;
  try {
    if (pidfile && !daemonChild) checkPidfile(pidfile);
    if (o.restoreDetached && !daemonChild) return startDaemon(log, pidfile, o.statusFd);
    log.info(`Starting page server on port ${o.port ?? 0}`);
    let listener: PageServerListener;
    try {
      listener = await PageServerListener.listen({ host: o.address, port: o.port ?? 0 });
    } catch (e) {
      throw new PageServerError(`Can't bind page server: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    if (!o.port) log.info(`Using ${listener.port} port`);
    log.flush();
    if (daemonChild) {
      const b = Buffer.alloc(2);
      b.writeUInt16LE(listener.port);
      try {
        writeSync(3, b);
      } finally {
        closeSync(3);
      }
    } else {
      if (pidfile) writePidfile(pidfile, process.pid);
      if (o.statusFd !== undefined) {
        writeSync(o.statusFd, Buffer.of(0));
        closeSync(o.statusFd);
      }
    }
    const socket = await listener.accept();
    listener.close();
    log.info(`Accepted connection from ${socket.remoteAddress}:${socket.remotePort}`);
    const r = await receivePages(socket, {
      dir: dirs.imagesDir,
      log: (level, msg) => log[level](msg),
    });
    log.info(`Session over: ${r.pagemaps.length} pagemaps, ${r.pages} pages (${r.layout} headers)`);
    return 0;
  } catch (e) {
    if (!(e instanceof PageServerError)) throw e;
    if (log.toFile || daemonChild) log.error(e.message);
    if (!daemonChild) process.stderr.write(`criu-ts: ${e.message}\n`);
    return 1;
  } finally {
    log.flush();
  }
}

/** -d: the same command again, detached, told to listen; its port comes back on a pipe once it does. */
function startDaemon(log: CriuLog, pidfile: string | undefined, statusFd: number | undefined): number {
  const { pid, ready } = startDaemonCopy({ flag: DAEMON_ENV, fds: [log.fd], readyBytes: 2 });
  if (!ready || pid === undefined) {
    log.error(`the page server daemon (pid ${pid}) did not start`);
    return 1;
  }
  log.info(`Page server daemon ${pid} listens on port ${ready.readUInt16LE(0)}`);
  if (pidfile) writePidfile(pidfile, pid);
  if (statusFd !== undefined) {
    writeSync(statusFd, Buffer.of(0));
    closeSync(statusFd);
  }
  return 0;
}
