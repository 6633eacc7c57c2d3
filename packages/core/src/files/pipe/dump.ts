// Pipes: one files.img entry per open description (PIPE, with the pipe's inode as pipe_id), and once
// per pipe the bytes in flight in pipes-data.img. A pipe whose other end only a process outside the
// tree holds is dumped as CRIU does: it comes back with the ends the tree had.

import { openSync } from 'node:fs';
import { procPath } from '@criu-ts/bfd';
import { close, O_ACCMODE, O_DIRECT, O_NONBLOCK, O_WRONLY, PAGE_SIZE } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';
import { peekPipe, pipeSize } from './data.js';

const DEFAULT_PIPE_SIZE = 16 * PAGE_SIZE;

export const pipeDriver: FdDumpDriver = {
  kind: 'pipe',
  dump(file, files) {
    if (file.flags & O_DIRECT)
      throw new DumpError(
        `pid ${file.pid} fd ${file.fd}: a packet-mode (O_DIRECT) pipe cannot be dumped yet`,
      );
    const pipeId = Number(file.stat.ino);
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.PIPE,
      pipe: { id, pipe_id: pipeId, flags: file.flags, fown: files.owner(file) },
    }));
    if (files.firstTime(`pipe-data:${pipeId}`)) savePipeData(files, file, 'pipes-data', pipeId);
    return { id, type: FD_TYPE.PIPE };
  },
};

/**
 * The pipe's queued bytes and size into `image` (pipes-data or fifo-data), read through a read end:
 * the task's own (a copy of its fd) or, when it holds only the write end, a new read end opened
 * through /proc/PID/fd/N (which opens the same pipe).
 */
export function savePipeData(
  files: FileTable,
  file: OpenFile,
  image: 'pipes-data' | 'fifo-data',
  pipeId: number,
): void {
  let readEnd: number;
  let own = false;
  if ((file.flags & O_ACCMODE) !== O_WRONLY) {
    readEnd = files.steal(file.pid, file.fd);
  } else {
    try {
      readEnd = openSync(procPath(file.pid, 'fd', file.fd), O_NONBLOCK); // O_RDONLY
      own = true;
    } catch (e) {
      throw new DumpError(`pid ${file.pid} fd ${file.fd} (${file.link}): cannot reach its pipe: ${e}`);
    }
  }
  try {
    const data = peekPipe(readEnd);
    const size = pipeSize(readEnd);
    // An empty pipe of the default size needs no entry; a resized one does, for its size.
    if (data.length > 0 || size !== DEFAULT_PIPE_SIZE)
      files.addImageEntry(image, { pipe_id: pipeId, bytes: data.length, size }, data);
  } finally {
    if (own) close(readEnd);
  }
}
