/**
 * A dump that cannot go on. The message names the task and object (pid, fd, VMA) so the one
 * line the CLI prints tells the user what stopped it; every task is resumed as it was.
 */
export class DumpError extends Error {
  override readonly name = 'DumpError';
}

/** A syscall result from an injected call: negative errno values become errors. */
export function checkRemote(what: string, pid: number, result: bigint): bigint {
  if (result < 0n && result > -4096n) {
    throw new DumpError(`${what} in pid ${pid} failed: errno ${-result}`);
  }
  return result;
}
