// eventfd: its counter, read from fdinfo (reading the fd itself would consume it).
import { DumpError } from '../../dump/errors.js';
import { isAnon } from '../fd-flags.js';
import { FD_TYPE, type FdDumpDriver, noOwner } from '../table.js';

export const eventfdDriver: FdDumpDriver = {
  kind: 'eventfd',
  claims: (file) => isAnon(file.link, 'eventfd'),
  dump(file, files) {
    const info = file.info.eventfd;
    if (!info) throw new DumpError(`pid ${file.pid} fd ${file.fd}: eventfd without its counter in fdinfo`);
    // The image has no place for semaphore mode, and without it reads would return the whole count.
    if (info.semaphore)
      throw new DumpError(`pid ${file.pid} fd ${file.fd}: an eventfd in semaphore mode cannot be dumped yet`);
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.EVENTFD,
      efd: { id, flags: file.flags, fown: noOwner(), counter: info.count },
    }));
    return { id, type: FD_TYPE.EVENTFD };
  },
};
