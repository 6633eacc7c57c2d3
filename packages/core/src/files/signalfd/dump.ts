import { DumpError } from '../../dump/errors.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

/**
 * signalfd: only its mask (fdinfo sigmask). The signals it reads are the pending signals of whichever
 * task reads it, which the task's own signal state carries.
 */
export const signalfdDriver: FdDumpDriver = {
  kind: 'signalfd',
  dump(file: OpenFile, files: FileTable) {
    const sigmask = file.info.sigmask;
    if (sigmask === undefined)
      throw new DumpError(`pid ${file.pid} fd ${file.fd}: signalfd without sigmask in fdinfo`);
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.SIGNALFD,
      sgfd: { id, flags: file.flags, fown: files.owner(file), sigmask },
    }));
    return { id, type: FD_TYPE.SIGNALFD };
  },
};
