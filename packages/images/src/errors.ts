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

/** A failed write of an image (full disk, quota, I/O error), naming the file. */
export class ImageWriteError extends Error {
  override readonly name = 'ImageWriteError';

  constructor(
    readonly file: string,
    readonly code: string,
  ) {
    super(`cannot write ${file}: ${code}`);
  }
}

/** Runs a write or open of `file`, turning a Node error into an ImageWriteError. */
export function writing<T>(file: string, op: () => T): T {
  try {
    return op();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code) throw new ImageWriteError(file, code === 'ENOSPC' ? 'ENOSPC (no space left on device)' : code);
    throw err;
  }
}
