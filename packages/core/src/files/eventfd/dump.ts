import { DumpError } from '../../dump/errors.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

/**
 * EFD_SEMAPHORE, kept in bit 0 of the entry's flags. CRIU's eventfd entry has no field for it (CRIU
 * loses the mode); bit 0 is O_WRONLY, which an eventfd never has (it is always O_RDWR), and CRIU's
 * restore passes the flags to F_SETFL, which ignores the access mode: so the images stay CRIU's.
 */
export const EFD_SEMAPHORE_FLAG = 1;

/** eventfd: its counter (eventfd-count, never read) and semaphore mode, both from fdinfo. */
export const eventfdDriver: FdDumpDriver = {
  kind: 'eventfd',
  dump(file: OpenFile, files: FileTable) {
    const efd = file.info.eventfd;
    if (!efd) throw new DumpError(`pid ${file.pid} fd ${file.fd}: eventfd without eventfd-count in fdinfo`);
    if (efd.semaphore === undefined)
      throw new DumpError(
        `pid ${file.pid} fd ${file.fd}: this kernel does not tell whether the eventfd is a semaphore (no eventfd-semaphore in fdinfo)`,
      );
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.EVENTFD,
      efd: {
        id,
        flags: file.flags | (efd.semaphore ? EFD_SEMAPHORE_FLAG : 0),
        fown: files.owner(file),
        counter: efd.count,
      },
    }));
    return { id, type: FD_TYPE.EVENTFD };
  },
};
