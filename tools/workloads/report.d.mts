export interface WaitForLineOptions {
  /** Give up after this long (default 20000 ms). */
  timeoutMs?: number;
  /** Ignore the first `fromLine` complete lines (default 0: scan from the start). */
  fromLine?: number;
  /**
   * Reject as soon as a line matching this (and not matching the wanted
   * line) appears. Default /^FAIL\b/; null disables.
   */
  failOn?: RegExp | null;
  /** Reject early if this process is gone or a zombie. */
  pid?: number;
  /** Poll interval used next to fs.watch (default 25 ms). */
  pollMs?: number;
  /** Abort the wait. */
  signal?: AbortSignal;
}

/**
 * Resolve to the first complete line of `file` (from `opts.fromLine`)
 * that matches `match`. Rejects on timeout, on a FAIL line, on the death of
 * `opts.pid` or on abort; the error message includes the last lines of the file.
 */
export declare function waitForLine(
  file: string,
  match: RegExp | ((line: string, index: number) => boolean),
  opts?: WaitForLineOptions,
): Promise<string>;

/** The complete ('\n'-terminated) lines of `file`; [] if it does not exist. */
export declare function readLines(file: string): string[];
