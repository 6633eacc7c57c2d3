import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { createImageFile } from '@criu-ts/images';
import {
  type LogBindings,
  type Logger,
  type LogLevel,
  levelOfVerbosity,
  type PinoLogger,
  pinoLogger,
} from '../log/logger.js';
import type { CriuOptions } from './options.js';

/** The log of one run of a command (CLI) or request (RPC): core's Logger, and where its lines go. */
export interface CriuLog extends Logger {
  child(bindings: LogBindings): CriuLog;
  /** Whether messages go to a file (-o) rather than to stderr. */
  readonly toFile: boolean;
  /** Where its lines go: the -o file's fd, or 2. */
  readonly fd: number;
  flush(): void;
  /** Flushes and closes its file (a service worker's request log); nothing is written after. */
  close?(): void;
}

/**
 * The log as CRIU keeps it, so that zdtm and users' scripts that grep it work: every line starts with
 * the time since the start, `(SS.uuuuuu)`, and errors and warnings carry CRIU's `Error (where): ` and
 * `Warn  (where): ` prefixes. `--log-format json` gives pino's structured lines instead. `where` names
 * the part of criu-ts that speaks (CRIU puts file:line there); a child logger may name another.
 */
export function makeLogger(
  o: Pick<CriuOptions, 'verbosity' | 'logFile' | 'logFormat'>,
  workDir: string,
  where = 'criu-ts',
): CriuLog {
  const level = levelOfVerbosity(o.verbosity);
  // -o: relative to the work dir; `-` or none: stderr.
  const path =
    o.logFile && o.logFile !== '-'
      ? isAbsolute(o.logFile)
        ? o.logFile
        : join(workDir, o.logFile)
      : undefined;
  // A relative -o lands in the work dir, which may hold what was planted there: see openLog.
  const inWorkDir = o.logFile !== undefined && !isAbsolute(o.logFile);
  const fd = path === undefined ? 2 : openLog(path, inWorkDir);
  if (o.logFormat === 'json') {
    const log = jsonLog(pinoLogger({ level, destination: fd }), { where }, fd);
    let open = fd !== 2;
    return {
      ...log,
      close: () => {
        log.flush();
        if (open) closeSync(fd);
        open = false;
      },
    };
  }
  return new TextLog(new TextSink(RANK[level], fd), where, '');
}

const PREFIX: Record<LogLevel, (where: string) => string> = {
  error: (w) => `Error (${w}): `,
  warn: (w) => `Warn  (${w}): `,
  info: () => '',
  debug: () => '',
};
/** A level's rank: the -v it needs. */
const RANK: Record<LogLevel | 'silent', number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 };

/** One log file (or stderr) in CRIU's text layout, shared by a TextLog and its children. */
class TextSink {
  private readonly started = process.hrtime.bigint();
  private pending: string[] = [];
  private pendingBytes = 0;
  private closed = false;

  constructor(
    private readonly level: number,
    readonly fd: number,
  ) {}

  line(level: LogLevel, msg: string, where: string): void {
    if (RANK[level] > this.level || this.closed) return;
    const us = (process.hrtime.bigint() - this.started) / 1000n;
    const stamp = `(${String(us / 1_000_000n).padStart(2, '0')}.${String(us % 1_000_000n).padStart(6, '0')}) `;
    const text = `${stamp}${PREFIX[level](where)}${msg}\n`;
    this.pending.push(text);
    this.pendingBytes += text.length;
    // Errors and warnings go out at once (a crash must not lose them); the rest in 64 KiB batches.
    if (RANK[level] <= 2 || this.pendingBytes > 65536) this.flush();
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    try {
      writeSync(this.fd, text);
    } catch {
      // A log that cannot be written (disk full) must not turn a good dump into a failed one.
    }
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.fd !== 2) closeSync(this.fd);
  }
}

/**
 * CRIU's text lines. A child's `where` binding renames the speaker; its other bindings come before
 * the message as `key=value `.
 */
class TextLog implements CriuLog {
  readonly toFile: boolean;
  readonly fd: number;

  constructor(
    private readonly sink: TextSink,
    private readonly where: string,
    private readonly context: string,
  ) {
    this.toFile = sink.fd !== 2;
    this.fd = sink.fd;
  }

  error(msg: string): void {
    this.sink.line('error', this.context + msg, this.where);
  }
  warn(msg: string): void {
    this.sink.line('warn', this.context + msg, this.where);
  }
  info(msg: string): void {
    this.sink.line('info', this.context + msg, this.where);
  }
  debug(msg: string): void {
    this.sink.line('debug', this.context + msg, this.where);
  }
  child(bindings: LogBindings): CriuLog {
    const { where, ...rest } = bindings;
    const more = Object.entries(rest)
      .map(([k, v]) => `${k}=${v} `)
      .join('');
    return new TextLog(this.sink, where === undefined ? this.where : String(where), this.context + more);
  }
  flush(): void {
    this.sink.flush();
  }
  close(): void {
    this.sink.close();
  }
}

/**
 * pino's JSON lines (core's pinoLogger, synchronous). A child is made from the root with every binding
 * so far, so that a child's `where` replaces its parent's instead of repeating the key.
 */
function jsonLog(root: PinoLogger, bindings: LogBindings, fd: number): CriuLog {
  const p = root.child(bindings);
  return {
    error: (msg) => p.error(msg),
    warn: (msg) => p.warn(msg),
    info: (msg) => p.info(msg),
    debug: (msg) => p.debug(msg),
    child: (more) => jsonLog(root, { ...bindings, ...more }, fd),
    toFile: fd !== 2,
    fd,
    flush: () => p.flush(),
  };
}

/**
 * Opens the -o log (0600). One in the work dir (a relative -o) is created anew, as an image is: a
 * symlink or FIFO planted under its name is refused, not written through or waited on. An absolute
 * -o is the user's own choice of file (/dev/stderr, a FIFO read by a tool) and is opened as given.
 */
function openLog(path: string, inWorkDir: boolean): number {
  mkdirSync(dirname(path), { recursive: true });
  return inWorkDir ? createImageFile(path) : openSync(path, 'w', 0o600);
}
