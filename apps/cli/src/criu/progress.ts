// The line a long dump or restore shows on a terminal: the step it is in, and how far it is (pages
// written of pages to write, tasks, connections). It appears only once the work has run for a second,
// only when stderr is a terminal and the verbosity is above 0, and it is gone (the line cleared) when
// the work ends, well or not, so that the error line or --display-stats read as without it.
//
// The drawing is cli-progress's. It is loaded only when a line is about to show (loadCliProgress): a
// short command never pays for it. Core's work is synchronous for long stretches (a task's pages are copied in one
// call), so the line is redrawn from the hook's calls (cli-progress's synchronousUpdate), not only
// from timers.
import { createRequire } from 'node:module';
import type { CriuLog as CliLog, Progress, ProgressKind, ProgressPhase } from '@criu-ts/core';
import { isTerminal } from '@criu-ts/sys';
import type { SingleBar } from 'cli-progress';
import type { CriuOptions } from './options.js';

/**
 * How long the work runs before its progress shows, in milliseconds: 1 s, or CRIU_TS_PROGRESS_AFTER_MS
 * (the tests show the line of a short dump with 0; no option of CRIU's says this).
 */
function showAfterMs(): number {
  const v = Number(process.env.CRIU_TS_PROGRESS_AFTER_MS);
  return process.env.CRIU_TS_PROGRESS_AFTER_MS && Number.isFinite(v) && v >= 0 ? v : 1000;
}

/** A Progress hook drawn on a terminal, with what the command needs around it. */
export interface ProgressDisplay extends Progress {
  /** The command's log, with warnings and errors written past the line (cleared first, drawn again). */
  wrapLog(log: CliLog): CliLog;
  /** The work is over: the line goes (idempotent). */
  end(): void;
}

/** The stream the line goes to: stderr, or another terminal in tests. */
type Tty = NodeJS.WriteStream;

/**
 * The progress display of a dump or restore, or undefined when none may show: stderr is no terminal,
 * -v0, or the log itself goes to the terminal line by line (-v3 and more without -o: a line drawn
 * between its messages would be torn; the messages tell the progress then).
 */
export function progressDisplay(
  o: Pick<CriuOptions, 'verbosity'>,
  log: Pick<CliLog, 'toFile'>,
  stream?: Tty,
): ProgressDisplay | undefined {
  if (o.verbosity <= 0 || (!log.toFile && o.verbosity > 2)) return undefined;
  // Asked of fd 2 first: process.stderr is a stream node builds (and loads modules for) on first use.
  if (stream === undefined && !isTerminal(2)) return undefined;
  const out = stream ?? process.stderr;
  if (out.isTTY !== true) return undefined;
  return new TerminalProgress(out, showAfterMs());
}

const KINDS: readonly ProgressKind[] = ['tasks', 'pages', 'connections'];

class TerminalProgress implements ProgressDisplay {
  private readonly started = process.uptime() * 1000;
  private phaseName: ProgressPhase | 'starting' = 'starting';
  private readonly counts = new Map<ProgressKind, { done: number; total: number | undefined }>();
  private bar: SingleBar | undefined;
  private shownTotal = -1;
  /** The steps drawn so far: each is drawn at once the first time it comes, the rest at 10 a second. */
  private readonly stepsDrawn = new Set<string>();
  private ended = false;
  /** Shows the line at 1 s if the event loop is free then (the work may be waiting on something). */
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly stream: Tty,
    private readonly afterMs: number,
  ) {
    this.timer = setTimeout(() => this.draw(), afterMs);
    this.timer.unref();
  }

  phase(name: ProgressPhase): void {
    this.phaseName = name;
    this.draw();
  }

  count(kind: ProgressKind, done: number, total?: number): void {
    this.counts.set(kind, { done, total });
    this.draw();
  }

  wrapLog(log: CliLog): CliLog {
    const clearFirst =
      (say: (msg: string) => void) =>
      (msg: string): void => {
        this.hide();
        say(msg);
      };
    return {
      error: clearFirst((m) => log.error(m)),
      warn: clearFirst((m) => log.warn(m)),
      info: (m) => log.info(m),
      debug: (m) => log.debug(m),
      child: (bindings) => this.wrapLog(log.child(bindings)),
      toFile: log.toFile,
      fd: log.fd,
      flush: () => log.flush(),
    };
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    this.hide();
  }

  /** The line goes; the next call of the hook draws it again. */
  private hide(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  private draw(): void {
    if (this.ended) return;
    try {
      this.redraw();
    } catch {
      // A line that cannot be drawn (the terminal went away) must not fail the work: no more lines.
      this.ended = true;
      this.bar = undefined;
    }
  }

  private redraw(): void {
    const { value, total } = this.measure();
    const payload = { phase: this.phaseName, counts: this.describe() };
    if (this.bar === undefined) {
      if (process.uptime() * 1000 - this.started < this.afterMs) return;
      this.bar = makeBar(this.stream);
      this.shownTotal = total;
      this.stepsDrawn.add(this.phaseName);
      this.bar.start(total, value, payload);
      return;
    }
    if (total !== this.shownTotal) {
      this.shownTotal = total;
      this.bar.setTotal(total);
    }
    this.bar.update(value, payload);
    // cli-progress redraws at most every 200 ms from update(); a new step shows at once.
    if (!this.stepsDrawn.has(this.phaseName)) {
      this.stepsDrawn.add(this.phaseName);
      this.bar.render();
    }
  }

  /** What the bar measures: pages once there are pages to copy, else tasks. */
  private measure(): { value: number; total: number } {
    for (const kind of ['pages', 'tasks'] as const) {
      const c = this.counts.get(kind);
      if (c?.total) return { value: Math.min(c.done, c.total), total: c.total };
    }
    return { value: 0, total: 1 };
  }

  /** " | 1/4 tasks, 12345/131072 pages, 3/500 connections": what is known so far. */
  private describe(): string {
    const parts: string[] = [];
    for (const kind of KINDS) {
      const c = this.counts.get(kind);
      if (c === undefined || (c.total === 0 && c.done === 0)) continue;
      parts.push(c.total === undefined ? `${c.done} ${kind}` : `${c.done}/${c.total} ${kind}`);
    }
    return parts.length ? ` | ${parts.join(', ')}` : '';
  }
}

/**
 * cli-progress, loaded now and not at start-up: bundle.mjs makes it a file of its own beside the
 * command's bundle (dist/cli-progress.cjs), required synchronously (the work does not wait for a
 * promise). Run unbundled (dist/criu/progress.js), the package itself.
 */
function loadCliProgress(): typeof import('cli-progress') {
  const req = createRequire(import.meta.url);
  try {
    return req('./cli-progress.cjs');
  } catch {
    return req('cli-progress');
  }
}

/** cli-progress's single bar: one line, cleared at the end, cut to the terminal's width. */
function makeBar(stream: Tty): SingleBar {
  const { SingleBar: Bar } = loadCliProgress();
  return new Bar({
    stream,
    format: '{phase} [{bar}] {percentage}%{counts}',
    barsize: 20,
    clearOnComplete: true,
    hideCursor: false,
    // Lines are cut to the terminal's width instead of turning wrapping off (which a killed criu-ts
    // would leave off).
    linewrap: true,
    fps: 10,
    synchronousUpdate: true,
    gracefulExit: false,
  });
}
