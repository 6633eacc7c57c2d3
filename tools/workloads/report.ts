// Helpers for tests to follow a workload's report file.
//
// Workloads append whole lines with single write()s, so only complete
// ('\n'-terminated) lines are ever looked at; a trailing partial line is
// ignored until its newline arrives.
import { type FSWatcher, watch as fsWatch, readFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

const DEFAULT_TIMEOUT_MS = 20_000;
const DEFAULT_POLL_MS = 25;
const TAIL_LINES = 20;

/** What a wanted line must match: a RegExp, or a predicate given the line and its index. */
export type LineMatch = RegExp | ((line: string, index: number) => boolean);

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

/** Complete lines of a report file ([] if it does not exist yet). */
export function readLines(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const lines = text.split('\n');
  lines.pop(); // '' after the last '\n', or an incomplete last line
  return lines;
}

function regexTest(re: RegExp): (line: string) => boolean {
  return (line) => {
    re.lastIndex = 0; // a /g or /y regex is stateful
    return re.test(line);
  };
}

function describe(match: LineMatch): string {
  return typeof match === 'function' ? `a line accepted by ${match.name || 'the predicate'}` : String(match);
}

/** True while /proc/<pid> exists and is not a zombie / dead task. */
function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Wait until the report file has a complete line matching `match`
 * (a RegExp or a predicate `(line, index) => boolean`) and resolve to it.
 * Lines are scanned from the beginning of the file (or from line
 * `opts.fromLine`); already-written lines count.
 *
 * Rejects (always with the last lines of the file in the message):
 *  - after opts.timeoutMs (default 20 s) - one last scan is done first;
 *  - as soon as a line matching opts.failOn (default /^FAIL\b/, null to
 *    disable) is seen that did not match `match`;
 *  - if opts.pid is given and that process is gone or a zombie (after a
 *    last scan), so a crashed workload fails fast;
 *  - if opts.signal is aborted.
 *
 * New content is noticed through fs.watch, with a poll every opts.pollMs
 * (default 25 ms) as the fallback, so it works even when no inotify
 * event arrives (file not created yet, events lost under load).
 */
export async function waitForLine(
  file: string,
  match: LineMatch,
  opts: WaitForLineOptions = {},
): Promise<string> {
  const {
    timeoutMs = DEFAULT_TIMEOUT_MS,
    fromLine = 0,
    failOn = /^FAIL\b/,
    pid,
    pollMs = DEFAULT_POLL_MS,
    signal,
  } = opts;
  const test: (line: string, index: number) => boolean =
    typeof match === 'function' ? match : regexTest(match);
  const isFail = failOn ? regexTest(failOn) : () => false;
  const deadline = Date.now() + timeoutMs;

  let offset = 0; // bytes of the file consumed
  let rest = Buffer.alloc(0); // incomplete trailing line
  let index = 0; // index of the next complete line
  let tail: string[] = []; // last TAIL_LINES complete lines
  let watcher: FSWatcher | null = null;
  let wake: (() => void) | null = null;

  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };

  const tailText = () => {
    const lines = [...tail];
    if (rest.length > 0) lines.push(`${rest.toString('utf8')}  <- incomplete`);
    if (lines.length === 0) return `${file} is empty or missing`;
    return `last lines of ${file} (${index} complete):\n${lines.map((l) => `  | ${l}`).join('\n')}`;
  };

  // Consume whatever was appended since the last scan.
  // Returns { line } on a match, { fail } on a FAIL line, or null.
  const scan = async (): Promise<{ line?: string; fail?: string } | null> => {
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const { size } = await fh.stat();
      if (size < offset) {
        // Truncated / rewritten: start over.
        offset = 0;
        rest = Buffer.alloc(0);
        index = 0;
        tail = [];
      }
      if (size === offset) return null;
      const buf = Buffer.alloc(size - offset);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      offset += got;
      let data = rest.length > 0 ? Buffer.concat([rest, buf.subarray(0, got)]) : buf.subarray(0, got);
      let nl = data.indexOf(0x0a);
      while (nl !== -1) {
        const line = data.subarray(0, nl).toString('utf8');
        data = data.subarray(nl + 1);
        const i = index++;
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        if (i >= fromLine) {
          if (test(line, i)) {
            rest = Buffer.from(data);
            return { line };
          }
          if (isFail(line)) {
            rest = Buffer.from(data);
            return { fail: line };
          }
        }
        nl = data.indexOf(0x0a);
      }
      rest = Buffer.from(data);
      return null;
    } finally {
      await fh.close();
    }
  };

  const settle = (r: { line?: string; fail?: string } | null): string | undefined => {
    if (r?.line !== undefined) return r.line;
    if (r?.fail !== undefined) {
      throw new Error(`workload reported "${r.fail}" while waiting for ${describe(match)}; ${tailText()}`);
    }
    return undefined;
  };

  const onAbort = () => notify();
  signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      const found = settle(await scan());
      if (found !== undefined) return found;

      if (signal?.aborted) throw new Error(`aborted waiting for ${describe(match)}; ${tailText()}`);
      const timedOut = Date.now() >= deadline;
      const died = pid !== undefined && !processAlive(pid);
      if (timedOut || died) {
        const last = settle(await scan()); // anything written just before
        if (last !== undefined) return last;
        const why = died ? `process ${pid} exited` : `timed out after ${timeoutMs} ms`;
        throw new Error(`${why} waiting for ${describe(match)}; ${tailText()}`);
      }

      if (!watcher) {
        try {
          watcher = fsWatch(file, { persistent: false }, notify);
          watcher.on('error', () => {
            watcher?.close();
            watcher = null;
          });
        } catch {
          watcher = null; // not created yet: the poll covers it
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(notify, Math.max(1, Math.min(pollMs, deadline - Date.now())));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    watcher?.close();
  }
}
