import { isAbsolute, join } from 'node:path';
import pino from 'pino';

/** CRIU's -v levels: 0 nothing, 1 errors, 2 warnings (default), 3 info, 4 debug. */
const LEVELS = ['silent', 'error', 'warn', 'info', 'debug'] as const;

/**
 * The log of one run, as CRIU keeps it: -o FILE (relative to the work dir -W) gets every
 * message up to -vN; without -o, messages go to stderr.
 */
export function makeLogger(opts: { verbosity: number; logFile?: string; workDir: string }): pino.Logger {
  const level = LEVELS[Math.max(0, Math.min(4, opts.verbosity))] ?? 'warn';
  if (!opts.logFile) return pino({ level, base: null }, pino.destination(2));
  const path = isAbsolute(opts.logFile) ? opts.logFile : join(opts.workDir, opts.logFile);
  return pino({ level, base: null }, pino.destination({ dest: path, sync: true, mkdir: true, mode: 0o600 }));
}

/** CRIU writes -v4 as one token; commander wants an option value. */
export function normalizeVerbosity(argv: string[]): string[] {
  return argv.map((a) => (/^-v\d$/.test(a) ? `--verbosity=${a.slice(2)}` : a === '-v' ? '--verbosity=4' : a));
}
