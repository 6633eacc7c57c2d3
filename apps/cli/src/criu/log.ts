import { mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
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
  if (o.logFormat === 'json') return pinoLog(LEVELS[levelIndex] ?? 'warn', path);
  return new TextLog(levelIndex, path);
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
  ) {
    this.toFile = path !== undefined;
    if (path === undefined) this.fd = 2;
    else {
      mkdirSync(dirname(path), { recursive: true });
      this.fd = openSync(path, 'w', 0o600);
    }
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

function pinoLog(level: string, path: string | undefined): CliLog {
  const p =
    path === undefined
      ? pino({ level, base: null }, pino.destination(2))
      : pino({ level, base: null }, pino.destination({ dest: path, sync: true, mkdir: true, mode: 0o600 }));
  return {
    error: (msg, where) => p.error({ where }, msg),
    warn: (msg, where) => p.warn({ where }, msg),
    info: (msg, where) => p.info({ where }, msg),
    debug: (msg, where) => p.debug({ where }, msg),
    toFile: path !== undefined,
    flush: () => p.flush(),
  };
}
