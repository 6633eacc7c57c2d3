// FIFOs: a REG entry carries the path, flags and position (regf_id), the FIFO entry ties it to the pipe
// (pipe_id = the FIFO's inode), and the bytes in flight go to fifo-data.img, once per FIFO.
import { procPath } from '@criu-ts/bfd';
import { savePipeData } from '../pipe/dump.js';
import { regularFileEntry } from '../regular/dump.js';
import { FD_TYPE, type FdDumpDriver } from '../table.js';

export const fifoDriver: FdDumpDriver = {
  kind: 'fifo',
  dump(file, files) {
    const pipeId = Number(file.stat.ino);
    const key = files.descriptionKey(file);
    const regfId = regularFileEntry(files, file.link, file.stat, {
      key: `fifo-path:${key}`,
      flags: file.flags,
      fown: files.owner(file), // CRIU keeps a FIFO's owner in its REG entry (fifo_entry has none)
      procPath: procPath(file.pid, 'fd', file.fd),
    });
    const id = files.add(key, (id) => ({
      id,
      type: FD_TYPE.FIFO,
      fifo: { id, pipe_id: pipeId, regf_id: regfId },
    }));
    if (files.firstTime(`fifo-data:${pipeId}`)) savePipeData(files, file, 'fifo-data', pipeId);
    return { id, type: FD_TYPE.FIFO };
  },
};
