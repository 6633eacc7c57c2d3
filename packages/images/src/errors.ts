/**
 * Every problem with an image file is an ImageError that names the file and the byte
 * offset where reading went wrong, so that a user can find the bad spot with `xxd`.
 */
export class ImageError extends Error {
  override readonly name = 'ImageError';

  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`${file}: at byte ${offset}: ${reason}`);
  }
}

/** Turns anything thrown while decoding one entry into an ImageError at that entry. */
export function asImageError(err: unknown, file: string, offset: number): ImageError {
  if (err instanceof ImageError) return err;
  const why = err instanceof Error ? err.message : String(err);
  return new ImageError(file, offset, why);
}
