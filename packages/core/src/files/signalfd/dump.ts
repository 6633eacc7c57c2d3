import { DumpError } from '../../dump/errors.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

const NO_OWNER = { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 };

/**
 * signalfd: only its mask (fdinfo sigmask). The signals it reads are the pending signals of whichever
 * task reads it, which the task's own signal state carries.
 */
export const signalfdDriver: FdDumpDriver = {
  kind: 'signalfd',
  claims: (file: OpenFile) => file.link === 'anon_inode:[signalfd]',
  dump(file: OpenFile, files: FileTable) {
    const sigmask = file.info.sigmask;
    if (sigmask === undefined)
      throw new DumpError(`pid ${file.pid} fd ${file.fd}: signalfd without sigmask in fdinfo`);
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.SIGNALFD,
      sgfd: { id, flags: file.flags, fown: NO_OWNER, sigmask },
    }));
    return { id, type: FD_TYPE.SIGNALFD };
  },
};
