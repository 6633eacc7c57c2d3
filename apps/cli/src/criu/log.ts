import { mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { createImageFile } from '@criu-ts/images';
import pino from 'pino';
import type { CriuOptions } from './options.js';

/** CRIU's -v levels: 0 nothing, 1 errors, 2 warnings (default), 3 info, 4 debug. */
const LEVELS = ['silent', 'error', 'warn', 'info', 'debug'] as const;
type Level = Exclude<(typeof LEVELS)[number], 'silent'>;

/** The log of one run; `where` names the part of criu-ts that speaks (CRIU puts file:line there). */
export interface CliLog {
  error(msg: string, where?: string): void;
  warn(msg: string, where?: string): void;
  info(msg: string, where?: string): void;
  debug(msg: string, where?: string): void;
  /** Whether messages go to a file (-o) rather than to stderr. */
  readonly toFile: boolean;
  flush(): void;
}

/**
 * The log as CRIU keeps it, so that zdtm and users' scripts that grep it work: every line starts with
 * the time since the start, `(SS.uuuuuu)`, and errors and warnings carry CRIU's `Error (where): ` and
 * `Warn  (where): ` prefixes. `--log-format json` gives pino's structured lines instead.
 */
export function makeLogger(
  o: Pick<CriuOptions, 'verbosity' | 'logFile' | 'logFormat'>,
  workDir: string,
): CliLog {
  const levelIndex = Math.max(0, Math.min(4, o.verbosity));
  // -o: relative to the work dir; `-` or none: stderr.
  const path =
    o.logFile && o.logFile !== '-'
      ? isAbsolute(o.logFile)
        ? o.logFile
        : join(workDir, o.logFile)
      : undefined;
  // A relative -o lands in the work dir, which may hold what was planted there: see openLog.
  const inWorkDir = o.logFile !== undefined && !isAbsolute(o.logFile);
  if (o.logFormat === 'json') return pinoLog(LEVELS[levelIndex] ?? 'warn', path, inWorkDir);
  return new TextLog(levelIndex, path, inWorkDir);
}

const PREFIX: Record<Level, (where: string) => string> = {
  error: (w) => `Error (${w}): `,
  warn: (w) => `Warn  (${w}): `,
  info: () => '',
  debug: () => '',
};
const RANK: Record<Level, number> = { error: 1, warn: 2, info: 3, debug: 4 };

class TextLog implements CliLog {
  private readonly started = process.hrtime.bigint();
  private readonly fd: number;
  private pending: string[] = [];
  private pendingBytes = 0;
  readonly toFile: boolean;

  constructor(
    private readonly level: number,
    path: string | undefined,
    inWorkDir: boolean,
  ) {
    this.toFile = path !== undefined;
    if (path === undefined) this.fd = 2;
    else this.fd = openLog(path, inWorkDir);
  }

  error(msg: string, where = 'criu-ts'): void {
    this.line('error', msg, where);
  }
  warn(msg: string, where = 'criu-ts'): void {
    this.line('warn', msg, where);
  }
  info(msg: string, where = 'criu-ts'): void {
    this.line('info', msg, where);
  }
  debug(msg: string, where = 'criu-ts'): void {
    this.line('debug', msg, where);
  }

  private line(level: Level, msg: string, where: string): void {
    if (RANK[level] > this.level) return;
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
}

function pinoLog(level: string, path: string | undefined, inWorkDir: boolean): CliLog {
  const p = pino(
    { level, base: null },
    pino.destination(path === undefined ? 2 : { dest: openLog(path, inWorkDir), sync: true }),
  );
  return {
    error: (msg, where) => p.error({ where }, msg),
    warn: (msg, where) => p.warn({ where }, msg),
    info: (msg, where) => p.info({ where }, msg),
    debug: (msg, where) => p.debug({ where }, msg),
    toFile: path !== undefined,
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
