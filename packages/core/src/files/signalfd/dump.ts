// signalfd: the set of signals it reads (fdinfo's sigmask).
import { DumpError } from '../../dump/errors.js';
import { isAnon } from '../fd-flags.js';
import { FD_TYPE, type FdDumpDriver, noOwner } from '../table.js';

export const signalfdDriver: FdDumpDriver = {
  kind: 'signalfd',
  claims: (file) => isAnon(file.link, 'signalfd'),
  dump(file, files) {
    const mask = file.info.sigmask;
    if (mask === undefined)
      throw new DumpError(`pid ${file.pid} fd ${file.fd}: signalfd without sigmask in fdinfo`);
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.SIGNALFD,
      sgfd: { id, flags: file.flags, fown: noOwner(), sigmask: mask },
    }));
    return { id, type: FD_TYPE.SIGNALFD };
  },
};
