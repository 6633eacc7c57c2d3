// The bytes in flight in a pipe or FIFO, shared by files/pipe and files/fifo.
//
// Dump: one pipe_data_entry per pipe (pipes-data.img, or fifo-data.img for FIFOs), however many ends and
// descriptions the tree holds, written once every task is dumped (FileTable.later) so that a read end
// anywhere in the tree can be used. The bytes are copied with tee(2) into a fresh pipe and read from
// there: the pipe itself keeps them (a dump with -R must not take them away).
// Restore: the bytes go back into the new pipe before any task runs, after F_SETPIPE_SZ.

import type { ImageDir, PipeDataEntry } from '@criu-ts/images';
import {
  close,
  F_GETPIPE_SZ,
  F_SETFL,
  F_SETPIPE_SZ,
  FIONREAD,
  fcntl,
  ioctlGetInt,
  isSysError,
  O_ACCMODE,
  O_APPEND,
  O_ASYNC,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_WRONLY,
  open,
  pipe2,
  raw,
  read,
  SYS,
  SysError,
  write,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { RestoreError } from '../../restore/errors.js';
import type { FileTable, OpenFile } from '../table.js';

export type PipeDataImage = 'pipes-data' | 'fifo-data';

const SPLICE_F_NONBLOCK = 2;
/** Status flags F_SETFL can give a pipe description back (O_DIRECT, packet mode, is refused at dump). */
const SETFL_FLAGS = O_APPEND | O_NONBLOCK | O_ASYNC;

/** The pipe_id of images: the pipe's (or FIFO's) inode number, as a u32. */
export const pipeIdOf = (file: OpenFile): number => Number(file.stat.ino & 0xffffffffn);

/** Whether a description with these flags can read (O_RDONLY or O_RDWR). */
export const canRead = (flags: number): boolean => (flags & O_ACCMODE) !== O_WRONLY;

// ---- dump ---------------------------------------------------------------------------------------------

/** The ends of one pipe seen in the tree so far. */
interface SeenPipe {
  pipeId: number;
  ends: OpenFile[];
}

/** Per dump (per FileTable) and per image: the pipes seen, by pipe_id. */
const seenPipes = new WeakMap<FileTable, Map<string, SeenPipe>>();

/**
 * Remember one end of a pipe (or FIFO). The first time a pipe is seen, its bytes in flight are
 * scheduled to be copied once the whole tree is dumped: one pipe_data_entry per pipe, not per end.
 */
export function notePipeEnd(files: FileTable, image: PipeDataImage, file: OpenFile): void {
  let byKey = seenPipes.get(files);
  if (!byKey) {
    byKey = new Map();
    seenPipes.set(files, byKey);
  }
  const pipeId = pipeIdOf(file);
  const key = `${image}:${file.stat.dev}:${file.stat.ino}`;
  const seen = byKey.get(key);
  if (seen) {
    seen.ends.push(file);
    return;
  }
  const fresh: SeenPipe = { pipeId, ends: [file] };
  byKey.set(key, fresh);
  files.later(() => dumpPipeData(files, image, fresh));
}

/**
 * The pipe's bytes, from a read end the tree holds, or else from a new read end opened through
 * /proc/PID/fd/N of a write end (the same pipe). CRIU writes an entry for every pipe, with its size,
 * so an empty pipe keeps its F_SETPIPE_SZ size too.
 */
function dumpPipeData(files: FileTable, image: PipeDataImage, seen: SeenPipe): void {
  const reader = seen.ends.find((e) => canRead(e.flags));
  const end = reader ?? seen.ends[0]!;
  const what = `pid ${end.pid} fd ${end.fd} (${end.link})`;
  let fd: number;
  try {
    fd = reader
      ? files.steal(reader.pid, reader.fd)
      : open(`/proc/${end.pid}/fd/${end.fd}`, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  } catch (e) {
    throw new DumpError(`${what}: cannot reach the pipe's bytes: ${(e as Error).message}`);
  }
  try {
    const { data, size } = peekPipe(fd, what);
    const entry: PipeDataEntry = { pipe_id: seen.pipeId, bytes: data.length, size };
    files.addImageEntry(image, entry, data);
  } finally {
    if (!reader) close(fd);
  }
}

/**
 * The bytes waiting in the pipe behind `readFd`, left where they are: tee(2) duplicates them into a
 * fresh pipe as big as this one, and that copy is read. Also returns the pipe's size (F_GETPIPE_SZ).
 */
export function peekPipe(readFd: number, what: string): { data: Buffer; size: number } {
  const size = fcntl(readFd, F_GETPIPE_SZ);
  const queued = ioctlGetInt(readFd, FIONREAD);
  if (queued === 0) return { data: Buffer.alloc(0), size };
  const [r, w] = pipe2(O_CLOEXEC | O_NONBLOCK);
  try {
    // As many slots as the source, so that every one of its buffers fits in one tee.
    if (fcntl(w, F_GETPIPE_SZ) < size) fcntl(w, F_SETPIPE_SZ, size);
    const copied = tee(readFd, w, size);
    if (copied !== queued)
      throw new DumpError(`${what}: tee copied ${copied} of the ${queued} bytes in the pipe`);
    const data = Buffer.alloc(copied);
    for (let got = 0; got < copied; ) {
      const n = read(r, data, copied - got, got);
      if (n === 0) throw new DumpError(`${what}: the copy of the pipe's bytes ended early`);
      got += n;
    }
    return { data, size };
  } finally {
    close(r);
    close(w);
  }
}

/** tee(2) without blocking: bytes duplicated from pipe `from` into pipe `to` (0 when empty). */
function tee(from: number, to: number, len: number): number {
  const n = raw.syscall(SYS.tee, from, to, len, SPLICE_F_NONBLOCK);
  if (n !== -1) return Number(n);
  const err = new SysError('tee', raw.lastErrno(), `fd ${from} -> fd ${to}`);
  if (isSysError(err, 'EAGAIN')) return 0;
  throw err;
}

// ---- restore ------------------------------------------------------------------------------------------

export interface PipeData {
  size?: number;
  data: Buffer;
}

/** Every entry of pipes-data.img or fifo-data.img, by pipe_id; empty when the image is absent. */
export function readPipeData(dir: ImageDir, image: PipeDataImage): Map<number, PipeData> {
  const out = new Map<number, PipeData>();
  if (!dir.has(image)) return out;
  for (const e of dir.read(image)) {
    const m = e.message as unknown as PipeDataEntry;
    if (out.has(m.pipe_id)) throw new RestoreError(`${image}.img: pipe_id ${m.pipe_id} twice`);
    const data = (e.extra as Buffer | undefined) ?? Buffer.alloc(0);
    if (m.size !== undefined && data.length > m.size)
      throw new RestoreError(
        `${image}.img: pipe_id ${m.pipe_id} has ${data.length} bytes, more than its size ${m.size}`,
      );
    out.set(m.pipe_id, { size: m.size, data });
  }
  return out;
}

/**
 * Give a new pipe its dumped size and its bytes, through `writeFd` (a non-blocking write end):
 * the bytes must fit at once, or the images are inconsistent.
 */
export function refillPipe(writeFd: number, pipe: PipeData | undefined, what: string): void {
  if (!pipe) return;
  try {
    if (pipe.size !== undefined && fcntl(writeFd, F_GETPIPE_SZ) !== pipe.size)
      fcntl(writeFd, F_SETPIPE_SZ, pipe.size);
  } catch (e) {
    throw new RestoreError(`${what}: cannot set the pipe size to ${pipe.size}: ${(e as Error).message}`);
  }
  for (let done = 0; done < pipe.data.length; ) {
    let n: number;
    try {
      n = write(writeFd, pipe.data, pipe.data.length - done, done);
    } catch (e) {
      throw new RestoreError(
        `${what}: ${pipe.data.length - done} of ${pipe.data.length} bytes do not fit in the pipe: ${(e as Error).message}`,
      );
    }
    done += n;
  }
}

/** O_NONBLOCK, O_APPEND, O_ASYNC of a description, as the task had them. */
export function setStatusFlags(fd: number, flags: number): void {
  fcntl(fd, F_SETFL, flags & SETFL_FLAGS);
}
