import { O_DIRECT } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';
import { notePipeEnd, pipeIdOf } from './data.js';

const PIPE_LINK = /^pipe:\[\d+\]$/;

const noOwner = () => ({ uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 });

/**
 * Pipes: one files.img entry (type PIPE) per open file description, naming its pipe by inode number
 * and keeping the description's flags (which end, O_NONBLOCK). The bytes in flight go once per pipe
 * into pipes-data.img (see data.ts). A pipe whose other end is only held outside the tree is dumped
 * all the same, as CRIU does: it comes back with the ends the tree had.
 */
export const pipeDriver: FdDumpDriver = {
  kind: 'pipe',
  claims(file: OpenFile) {
    return PIPE_LINK.test(file.link);
  },
  dump(file: OpenFile, files: FileTable) {
    if (file.flags & O_DIRECT) {
      throw new DumpError(
        `pid ${file.pid} fd ${file.fd} (${file.link}) is a packet-mode (O_DIRECT) pipe: criu-ts cannot dump it yet`,
      );
    }
    const id = files.add(files.descriptionKey(file), (id) => {
      notePipeEnd(files, 'pipes-data', file);
      return {
        id,
        type: FD_TYPE.PIPE,
        pipe: { id, pipe_id: pipeIdOf(file), flags: file.flags, fown: noOwner() },
      };
    });
    return { id, type: FD_TYPE.PIPE };
  },
};
