// Errors of this package. Failed syscalls (local or injected) are @criu-ts/sys SysErrors; everything
// else that concerns a task (it died, it stopped in an unexpected way, it cannot be seized) is a
// CompelError naming the pid.

export class CompelError extends Error {
  /** The task (or thread) concerned, when there is one. */
  readonly pid: number | undefined;

  constructor(message: string, pid?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CompelError';
    this.pid = pid;
  }
}

/** The task died (or was killed) while compel was working on it. */
export class TaskGoneError extends CompelError {
  constructor(message: string, pid: number) {
    super(message, pid);
    this.name = 'TaskGoneError';
  }
}
