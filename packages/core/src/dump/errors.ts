/**
 * A dump that cannot go on. The message names the task and object (pid, fd, VMA) so the one
 * line the CLI prints tells the user what stopped it; every task is resumed as it was.
 */
export class DumpError extends Error {
  override readonly name = 'DumpError';
  /** The errno CRIU reports for this failure over RPC (cr_errno), where it sets one: ESRCH for no such pid. */
  readonly errno: number | undefined;

  constructor(message: string, options?: { cause?: unknown; errno?: number }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.errno = options?.errno;
  }
}

/** A syscall result from an injected call: negative errno values become errors. */
export function checkRemote(what: string, pid: number, result: bigint): bigint {
  if (result < 0n && result > -4096n) {
    throw new DumpError(`${what} in pid ${pid} failed: errno ${-result}`);
  }
  return result;
}
