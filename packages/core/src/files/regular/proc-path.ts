// Paths under /proc that name a process: /proc/PID and everything below it. Dump tells by them a file
// of a task that has died; restore, a file it can open only once PID exists again.

/** The PID of /proc/PID or /proc/PID/..., or undefined for any other path. */
export function procPidOf(name: string): number | undefined {
  const m = /^\/proc\/(\d+)(?:\/|$)/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Whether `name` is /proc/PID or a file below it, for a PID among `pids`. */
export function isProcFileOf(name: string, pids: ReadonlySet<number>): boolean {
  const pid = procPidOf(name);
  return pid !== undefined && pids.has(pid);
}

/**
 * Whether `name` is a file of a process's fd table (/proc/PID/fd/N, /proc/PID/fdinfo/N): it can be opened
 * only once that fd is in place again.
 */
export function isProcFdFile(name: string): boolean {
  return /^\/proc\/\d+\/(?:fd|fdinfo)\/\d+$/.test(name);
}
