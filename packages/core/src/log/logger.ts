// The one logger of dump and restore (and of what drives them: the CLI, a service): four levels, as
// CRIU's -v0..-v4 choose them, and child loggers whose lines carry more context. pino is underneath
// pinoLogger; any object with these methods does as well.
import { createRequire } from 'node:module';
import type pino from 'pino';

// pino (with its worker threads and streams) is loaded on the first pinoLogger() call: CRIU's text log,
// which the CLI writes by default, does not need it, and loading it costs a command's start-up.
const requireHere = createRequire(import.meta.url);
let pinoModule: typeof pino | undefined;
function pinoLib(): typeof pino {
  pinoModule ??= requireHere('pino') as typeof pino;
  return pinoModule;
}

/** The levels a line is logged at, from the most to the least important. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** Fields a child logger adds to each of its lines (`{ where: 'restore' }`, `{ pid: 1234 }`). */
export type LogBindings = Record<string, string | number | boolean>;

/** What dump and restore log through (`DumpOptions.logger`, `RestoreOptions.logger`). */
export interface Logger {
  /** What made the run fail; CRIU: -v1 and above. */
  error(msg: string): void;
  /** What was let go or done another way than asked; CRIU: -v2 (the default) and above. */
  warn(msg: string): void;
  /** The steps of the run; CRIU: -v3 and above. */
  info(msg: string): void;
  /** The details of each step; CRIU: -v4. */
  debug(msg: string): void;
  /**
   * A logger whose lines also carry `bindings` (pino's child loggers; with pino, a field bound again
   * appears twice in the line, as pino writes it).
   */
  child(bindings: LogBindings): Logger;
}

/** CRIU's -v levels: 0 nothing, 1 errors, 2 warnings (the default), 3 info, 4 debug. */
const VERBOSITY = ['silent', 'error', 'warn', 'info', 'debug'] as const;

/** The level of CRIU's `-v N` (out of range: clamped to 0..4), `silent` for -v0. */
export function levelOfVerbosity(v: number): LogLevel | 'silent' {
  return VERBOSITY[Math.max(0, Math.min(4, Math.trunc(v)))] ?? 'warn';
}

/** The logger that logs nothing: what dump and restore use when given none. */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  child() {
    return silentLogger;
  },
};

/** A Logger over pino, with pino's flush for a destination that buffers. */
export interface PinoLogger extends Logger {
  child(bindings: LogBindings): PinoLogger;
  flush(): void;
  /** The pino logger underneath. */
  readonly pino: pino.Logger;
}

export interface PinoLoggerOptions {
  /** The least important level written (default `warn`, CRIU's default -v2); `silent`: none. */
  level?: LogLevel | 'silent';
  /** Where lines go: a file descriptor or a file path (default 2, stderr). Written synchronously. */
  destination?: number | string;
  /** Fields of every line (default none: no pid or hostname, unlike pino's own default). */
  bindings?: LogBindings;
}

/**
 * A Logger writing pino's JSON lines (`{"level":30,"time":...,"msg":"..."}`), or one over a pino
 * logger of your own.
 */
export function pinoLogger(opts: PinoLoggerOptions | pino.Logger = {}): PinoLogger {
  if (isPino(opts)) return wrap(opts);
  const dest = opts.destination ?? 2;
  const lib = pinoLib();
  const p = lib(
    { level: opts.level ?? 'warn', base: opts.bindings ?? null },
    lib.destination({ dest, sync: true }),
  );
  return wrap(p);
}

function isPino(o: PinoLoggerOptions | pino.Logger): o is pino.Logger {
  return typeof (o as pino.Logger).child === 'function' && typeof (o as pino.Logger).info === 'function';
}

function wrap(p: pino.Logger): PinoLogger {
  return {
    error: (msg) => p.error(msg),
    warn: (msg) => p.warn(msg),
    info: (msg) => p.info(msg),
    debug: (msg) => p.debug(msg),
    child: (bindings) => wrap(p.child(bindings)),
    flush: () => p.flush(),
    pino: p,
  };
}
