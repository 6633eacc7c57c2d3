// inotify: every watch (its wd, mask and the watched inode's file handle), with the watched path
// resolved now and kept in the handle entry, so restore can watch it again. Events queued and not yet
// read are not kept (CRIU drops them too): the program sees only events that happen after restore.
import type { InotifyWatch } from '@criu-ts/bfd';
import type { FhEntry, InotifyWdEntry } from '@criu-ts/images';
import { DumpError } from '../../dump/errors.js';
import { devName, handleEntryNow } from '../fhandle.js';
import type { IrmapOptions } from '../irmap.js';
import { FD_TYPE, type FdDumpDriver, type OpenFile } from '../table.js';

/** The handle entry of a watch, with the path of its inode now. */
function handleEntry(w: InotifyWatch, where: string, irmap: IrmapOptions | undefined): FhEntry {
  if (!w.fhandle || w.fhandleType === undefined)
    throw new DumpError(`${where}: fdinfo shows no file handle for inode ${w.ino}`);
  try {
    return handleEntryNow(w.sdev, w.fhandleType, w.fhandle, w.ino, irmap);
  } catch (e) {
    throw new DumpError(`${where}: inode ${w.ino} on device ${devName(w.sdev)}: ${(e as Error).message}`);
  }
}

function watches(file: OpenFile, id: number, irmap: IrmapOptions | undefined): InotifyWdEntry[] {
  return (file.info.inotify ?? []).map((w) => {
    const where = `pid ${file.pid} fd ${file.fd}: inotify watch ${w.wd}`;
    return {
      id,
      i_ino: w.ino,
      mask: w.mask,
      ignored_mask: w.ignoredMask,
      s_dev: w.sdev,
      wd: w.wd,
      f_handle: handleEntry(w, where, irmap),
    };
  });
}

export const inotifyDriver: FdDumpDriver = {
  kind: 'inotify',
  dump(file, files) {
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.INOTIFY,
      ify: { id, flags: file.flags, fown: files.owner(file), wd: watches(file, id, files.options.irmap) },
    }));
    return { id, type: FD_TYPE.INOTIFY };
  },
};
