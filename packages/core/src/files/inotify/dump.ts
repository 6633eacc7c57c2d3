// inotify: every watch (its wd, mask and the watched inode's file handle), with the watched path
// resolved now and kept in the handle entry, so restore can watch it again. Events queued and not yet
// read are not kept (CRIU drops them too): the program sees only events that happen after restore.
import type { InotifyWdEntry } from '@criu-ts/images';
import { DumpError } from '../../dump/errors.js';
import { isAnon } from '../fd-flags.js';
import { FD_TYPE, type FdDumpDriver, noOwner, type OpenFile } from '../table.js';
import { handleWords, pathOfHandle } from './handle.js';

function watches(file: OpenFile, id: number): InotifyWdEntry[] {
  return (file.info.inotify ?? []).map((w) => {
    const where = `pid ${file.pid} fd ${file.fd}: inotify watch ${w.wd}`;
    if (!w.fhandle || w.fhandleType === undefined)
      throw new DumpError(`${where}: fdinfo shows no file handle for inode ${w.ino}`);
    const path = pathOfHandle(w.sdev, w.fhandleType, w.fhandle);
    if (path === undefined) throw new DumpError(`${where}: the watched inode ${w.ino} has no path any more`);
    return {
      id,
      i_ino: w.ino,
      mask: w.mask,
      ignored_mask: w.ignoredMask,
      s_dev: w.sdev,
      wd: w.wd,
      f_handle: { bytes: w.fhandle.length, type: w.fhandleType, handle: handleWords(w.fhandle), path },
    };
  });
}

export const inotifyDriver: FdDumpDriver = {
  kind: 'inotify',
  claims: (file) => isAnon(file.link, 'inotify'),
  dump(file, files) {
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.INOTIFY,
      ify: { id, flags: file.flags, fown: noOwner(), wd: watches(file, id) },
    }));
    return { id, type: FD_TYPE.INOTIFY };
  },
};
