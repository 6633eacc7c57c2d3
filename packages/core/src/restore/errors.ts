/** A restore that cannot go on; the message is one line for the user. */
export class RestoreError extends Error {
  override name = 'RestoreError';
}
