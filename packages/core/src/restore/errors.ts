/** A restore that cannot go on; the message is one line for the user. */
export class RestoreError extends Error {
  override name = 'RestoreError';
  /** The errno CRIU reports for this failure over RPC (cr_errno), where it sets one: EEXIST for a pid in use. */
  readonly errno: number | undefined;

  constructor(message: string, options?: { cause?: unknown; errno?: number }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.errno = options?.errno;
  }
}
