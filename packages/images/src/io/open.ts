// Opening image files safely. An images directory may hold things that only look like images: a
// symlink planted to make a dump write elsewhere (or a restore read elsewhere), a FIFO that would
// hang an open() forever, /dev/zero that never ends, a socket. Image files are opened without
// following a symlink in their last component, without blocking (O_NONBLOCK: a FIFO cannot hang the
// open), and must be regular files once open; new images are created exclusively, so nothing is
// ever written through a link that was already there.
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  type Stats,
  statfsSync,
  unlinkSync,
} from 'node:fs';
import { ImageError, ImageWriteError } from '../errors.js';

// libuv adds O_CLOEXEC to every open.
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
const READ_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;

/** What a file that is not a regular file is, in words ("a FIFO", "a character device", ...). */
export function fileKindOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** What lstat says the path is, for an error after a failed open (undefined when it cannot tell). */
function lstatKind(path: string): string | undefined {
  try {
    return fileKindOf(lstatSync(path));
  } catch {
    return undefined;
  }
}

const WHY: Record<string, string> = {
  EACCES: 'EACCES (permission denied)',
  EPERM: 'EPERM (operation not permitted)',
  EIO: 'EIO (input/output error)',
};

/**
 * Opens an image file for reading: no symlink followed, no wait on a FIFO, a regular file or an
 * ImageError that says what the path is instead. A file that exists but cannot be opened says so.
 */
export function openImageForRead(path: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    if (code === 'ENOENT') throw new ImageError(path, 0, 'missing image (no such file)');
    const kind = lstatKind(path);
    // ELOOP: the last component is a symlink. ENXIO: a unix socket (or a FIFO with no writer on write).
    if (kind && kind !== 'a regular file' && (code === 'ELOOP' || code === 'ENXIO' || code === 'EOPNOTSUPP'))
      throw new ImageError(path, 0, `is ${kind}, not an image file: not read`);
    throw new ImageError(path, 0, `exists but cannot be read: ${WHY[code] ?? code}`);
  }
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (err) {
    closeSync(fd);
    throw new ImageError(path, 0, `exists but cannot be read: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  if (!st.isFile()) {
    closeSync(fd);
    throw new ImageError(path, 0, `is ${fileKindOf(st)}, not an image file: not read`);
  }
  return { fd, size: st.size };
}

/**
 * Creates a new image file (mode 0600) for writing, exclusively: an old image of that name (a regular
 * file, as a dump into the same directory again leaves) is removed first, as CRIU replaces its images;
 * anything else of that name (a symlink, FIFO, device, socket, directory) is refused, never written
 * through.
 */
export function createImageFile(path: string, mode = 0o600): number {
  for (let attempt = 0; ; attempt++) {
    try {
      return openSync(path, CREATE_FLAGS, mode);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' || attempt > 0) throw writeError(path, err);
    }
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // gone meanwhile: create it
      throw writeError(path, err);
    }
    if (!st.isFile())
      throw new ImageWriteError(
        path,
        `it exists and is ${fileKindOf(st)}: not replaced, not written through`,
      );
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw writeError(path, err);
    }
  }
}

function writeError(path: string, err: unknown): ImageWriteError | unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (!code) return err;
  return new ImageWriteError(
    path,
    code === 'ENOSPC' ? 'ENOSPC (no space left on device)' : (WHY[code] ?? code),
  );
}

/** Filesystem types that are the kernel's windows, never a place for images (statfs f_type). */
const PSEUDO_FS: Record<number, string> = {
  40864: 'procfs',
  1650812274: 'sysfs',
  1684170528: 'debugfs',
  1953653091: 'tracefs',
  1935894131: 'securityfs',
  2613483: 'cgroupfs',
  1667723888: 'cgroup2fs',
  1853056627: 'nsfs',
  3405662737: 'bpffs',
  1112100429: 'binfmt_misc',
  1650812272: 'configfs',
  1634035564: 'pstorefs',
  3730735588: 'efivarfs',
};

/** The pseudo filesystem `path` is on (by statfs), or undefined for a real one or one it cannot tell. */
export function pseudoFsOf(path: string): string | undefined {
  try {
    return PSEUDO_FS[Number(statfsSync(path).type)];
  } catch {
    return undefined;
  }
}
