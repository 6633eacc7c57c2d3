// fanotify groups: files.img entries of type FANOTIFY (ffy) with their init flags and their marks.
//
// Inode marks keep the inode by super block + file handle (as inotify watches do), mount marks the
// mount id and where that mount is. Events queued and not yet read are dropped, as CRIU drops them
// (they cannot be queued again), and the log says so. Super block marks have no place in CRIU's image
// format.
import type { FanotifyMark } from '@criu-ts/bfd';
import type { FanotifyFileEntry, FanotifyMarkEntry, FhEntry } from '@criu-ts/images';
import { FIONREAD, ioctlGetInt } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { devName, handleEntryNow, mountById } from '../fhandle.js';
import type { IrmapOptions } from '../irmap.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

/** mark_type (fsnotify.proto). */
export const MARK = { INODE: 1, MOUNT: 2 } as const;

const DELETED = ' (deleted)';

export const fanotifyDriver: FdDumpDriver = {
  kind: 'fanotify',
  dump(file, files) {
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.FANOTIFY,
      ffy: fanotifyEntry(id, file, files),
    }));
    return { id, type: FD_TYPE.FANOTIFY };
  },
};

function fanotifyEntry(id: number, file: OpenFile, files: FileTable): FanotifyFileEntry {
  const what = `pid ${file.pid} fd ${file.fd} (fanotify)`;
  const queued = ioctlGetInt(files.steal(file.pid, file.fd), FIONREAD);
  // Unread events cannot be queued again (each carries an open file of the process that caused it): they
  // are dropped, as CRIU drops them, with a word in the log. Refusing instead is no way out: a mount mark
  // on the file system the images are written to (or criu-ts's own files are read from) sees the dump's
  // own opens and closes, so such a group always has events by the time it is dumped.
  if (queued > 0) files.options.log?.(`${what}: ${queued} bytes of unread events are dropped, as CRIU does`);
  const fan = file.info.fanotify;
  return {
    id,
    flags: file.flags,
    fown: files.owner(file),
    faflags: (fan?.flags ?? 0) >>> 0,
    evflags: (fan?.eventFlags ?? 0) >>> 0,
    mark: (fan?.marks ?? []).map((m) => markEntry(id, m, what, files.options.irmap)),
  };
}

function markEntry(
  id: number,
  m: FanotifyMark,
  what: string,
  irmap: IrmapOptions | undefined,
): FanotifyMarkEntry {
  const common = { id, mflags: m.mflags >>> 0, mask: m.mask >>> 0, ignored_mask: m.ignoredMask >>> 0 };
  if (m.kind === 'mount') return { ...common, ...mountMark(m, what) };
  if (m.kind === 'inode') return { ...common, ...inodeMark(m, what, irmap) };
  throw new DumpError(`${what}: a file system (super block) mark cannot be dumped in CRIU's format`);
}

function mountMark(m: FanotifyMark, what: string): Pick<FanotifyMarkEntry, 'type' | 's_dev' | 'me'> {
  const mntId = m.mntId ?? -1;
  const mnt = mountById(mntId);
  if (!mnt) throw new DumpError(`${what}: mark on mount ${mntId}, which is not in criu-ts's mount namespace`);
  return { type: MARK.MOUNT, s_dev: mnt.sdev, me: { mnt_id: mntId, path: mnt.mountpoint } };
}

function inodeMark(
  m: FanotifyMark,
  what: string,
  irmap: IrmapOptions | undefined,
): Pick<FanotifyMarkEntry, 'type' | 's_dev' | 'ie'> {
  const sdev = m.sdev ?? 0;
  const inode = `${what}: mark on inode ${m.ino} of device ${devName(sdev)}`;
  if (m.ino === undefined || !m.fhandle || m.fhandleType === undefined)
    throw new DumpError(`${inode} has no file handle: its file system cannot export inodes`);
  let handle: FhEntry;
  try {
    handle = handleEntryNow(sdev, m.fhandleType, m.fhandle, m.ino, irmap);
  } catch (e) {
    throw new DumpError(`${inode}: ${(e as Error).message}`);
  }
  if (handle.path?.endsWith(DELETED)) throw new DumpError(`${inode} is on deleted file ${handle.path}`);
  return { type: MARK.INODE, s_dev: sdev >>> 0, ie: { i_ino: m.ino, f_handle: handle } };
}
