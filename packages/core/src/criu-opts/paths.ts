// Checks made before a dump or restore creates anything: who runs it, and where its directories are.
import { isAbsolute, resolve } from 'node:path';

/** An option that cannot be acted on (a path that cannot be resolved, a run that needs root): one line. */
export class OptionError extends Error {
  override name = 'OptionError';
}

/**
 * dump and restore need root (ptrace of any task, clone3 with chosen pids, PR_SET_MM, TCP repair...):
 * anyone else is told so at once, before a directory, a log or a stub exists.
 */
export function requireRoot(command: 'dump' | 'pre-dump' | 'restore'): void {
  const euid = process.geteuid?.() ?? 0;
  if (euid !== 0)
    throw new OptionError(
      `${command} must run as root (euid 0), not as uid ${euid}: criu-ts has no unprivileged mode`,
    );
}

/**
 * An absolute path for a directory option. A relative one needs the current directory, which may have
 * been deleted: that is one clear line, not a stack trace from process.cwd().
 */
export function absolutePath(path: string, option: string, base?: string): string {
  if (isAbsolute(path)) return resolve(path);
  if (base !== undefined) return resolve(base, path);
  let cwd: string;
  try {
    cwd = process.cwd();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new OptionError(
      `${option} ${path} is relative and the current directory cannot be found (${code}: deleted?): give an absolute path`,
    );
  }
  return resolve(cwd, path);
}
