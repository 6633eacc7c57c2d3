// The bytes in flight in a pipe (or FIFO), read without taking them out, and put back at restore.
import {
  close,
  F_GETPIPE_SZ,
  F_SETFL,
  F_SETPIPE_SZ,
  fcntl,
  isSysError,
  O_CLOEXEC,
  O_NONBLOCK,
  pipe2,
  raw,
  read,
  SPLICE_F_NONBLOCK,
  SYS,
  write,
} from '@criu-ts/sys';

/** Buffer size of a pipe (F_GETPIPE_SZ), from any of its ends. */
export function pipeSize(fd: number): number {
  return fcntl(fd, F_GETPIPE_SZ);
}

/**
 * What is queued in the pipe behind read end `readEnd`, left in place: tee(2) duplicates the pipe's
 * buffers into a fresh pipe of the same size (references, not copies, and nothing is consumed), and
 * the fresh pipe is drained instead.
 */
export function peekPipe(readEnd: number): Buffer {
  const size = pipeSize(readEnd);
  const [r, w] = pipe2(O_CLOEXEC | O_NONBLOCK);
  try {
    fcntl(w, F_SETPIPE_SZ, size);
    const n = Number(raw.syscall(SYS.tee, readEnd, w, size, SPLICE_F_NONBLOCK));
    if (n < 0) {
      const errno = raw.lastErrno();
      if (errno === 11 /* EAGAIN: empty */) return Buffer.alloc(0);
      throw new Error(`tee of a pipe: errno ${errno}`);
    }
    const out = Buffer.alloc(n);
    let done = 0;
    while (done < n) {
      const got = read(r, out, n - done, done);
      if (got <= 0) break;
      done += got;
    }
    return out.subarray(0, done);
  } finally {
    close(r);
    close(w);
  }
}

/**
 * A pipe of `size` bytes holding `data`: made before any task runs, so writing never blocks (the size
 * was big enough to hold the data at the dump). Returns [read end, write end], both close-on-exec.
 */
export function makePipe(size: number | undefined, data: Buffer | undefined): [number, number] {
  const [r, w] = pipe2(O_CLOEXEC | O_NONBLOCK); // a write that does not fit fails instead of hanging
  try {
    if (size !== undefined && size > 0) setSizeAtLeast(w, size, data?.length ?? 0);
    if (data?.length) fillPipe(w, data);
    fcntl(r, F_SETFL, 0); // each description gets the task's flags later
    fcntl(w, F_SETFL, 0);
    return [r, w];
  } catch (e) {
    close(r);
    close(w);
    throw e;
  }
}

/** F_SETPIPE_SZ; a size over /proc/sys/fs/pipe-max-size needs CAP_SYS_RESOURCE: keep what fits. */
export function setSizeAtLeast(fd: number, size: number, need: number): void {
  try {
    fcntl(fd, F_SETPIPE_SZ, size);
  } catch (e) {
    if (!isSysError(e, 'EPERM') || pipeSize(fd) >= need) return;
    throw e;
  }
}

/** Write all of `data` into a pipe end (non-blocking: the pipe is known to have room). */
export function fillPipe(writeEnd: number, data: Buffer): void {
  let done = 0;
  while (done < data.length) {
    const n = write(writeEnd, data, data.length - done, done);
    if (n <= 0) throw new Error(`pipe full after ${done} of ${data.length} bytes`);
    done += n;
  }
}
