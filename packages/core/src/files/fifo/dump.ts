import { DumpError } from '../../dump/errors.js';
import { notePipeEnd, pipeIdOf } from '../pipe/data.js';
import { regularFileEntry } from '../regular/dump.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

const S_IFMT = 0o170000n;
const S_IFIFO = 0o010000n;
const DELETED = ' (deleted)';

/**
 * Named pipes: a files.img entry of type FIFO per open file description, pointing at a REG entry that
 * carries the path, flags and position (as CRIU does); the bytes in flight go once per FIFO into
 * fifo-data.img. The FIFO itself is not recreated at restore: it must still exist at its path.
 */
export const fifoDriver: FdDumpDriver = {
  kind: 'FIFO',
  claims(file: OpenFile) {
    return (file.stat.mode & S_IFMT) === S_IFIFO && file.link.startsWith('/');
  },
  dump(file: OpenFile, files: FileTable) {
    if (file.link.endsWith(DELETED) && file.stat.nlink === 0n) {
      throw new DumpError(
        `pid ${file.pid} fd ${file.fd} is the unlinked FIFO ${file.link}: criu-ts cannot dump it yet`,
      );
    }
    const key = files.descriptionKey(file);
    const id = files.add(key, (id) => {
      const regfId = regularFileEntry(files, file.link, file.stat, {
        key: `${key}:path`,
        flags: file.flags,
        pos: file.pos,
        mntId: file.mntId,
      });
      notePipeEnd(files, 'fifo-data', file);
      return { id, type: FD_TYPE.FIFO, fifo: { id, pipe_id: pipeIdOf(file), regf_id: regfId } };
    });
    return { id, type: FD_TYPE.FIFO };
  },
};
