import { writeSync } from 'node:fs';

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * All of `text` to fd 1 or 2, now. process.stdout and process.stderr are streams node builds on first
 * use, loading its stream, net and tty modules (several ms of a command that prints one line); the fd
 * itself needs none of it. A non-blocking pipe that is full (EAGAIN) is waited on, a millisecond at a
 * time; a reader gone (EPIPE) ends the output, as it would a stream's.
 */
export function writeText(fd: 1 | 2, text: string): void {
  const bytes = Buffer.from(text);
  for (let at = 0; at < bytes.length; ) {
    try {
      at += writeSync(fd, bytes, at, bytes.length - at);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') Atomics.wait(pause, 0, 0, 1);
      else if (code === 'EPIPE') return;
      else throw e;
    }
  }
}
