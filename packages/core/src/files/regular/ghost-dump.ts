// Ghost files, dump side: a file that is still open (or mapped) but has no name left (st_nlink 0) is
// carried in the images: ghost-file-N.img holds its owner, mode, times and contents, and a remap-fpath
// entry (type GHOST) ties the files.img entry to it. One ghost per inode, however many fds, mappings
// and names reach it, so they come back as one file.
//
// The contents of a regular file keep their holes: from 3 pages on, the image holds only the runs of
// data (ghost_chunk_entry {len, off} + the bytes), found with FS_IOC_FIEMAP (--ghost-fiemap, the
// default) or lseek(SEEK_DATA/SEEK_HOLE); smaller files are one blob. The limit (--ghost-limit,
// default 1 MiB) is on the space the file takes on disk (st_blocks * 512), not on its length, so a
// sparse file of 1 GiB with 8 KiB of data passes.
import type { BigIntStats } from 'node:fs';
import { type GhostFileEntry, type ImageDir, type ImageWriter, RemapType } from '@criu-ts/images';
import {
  type DataRun,
  devMajor,
  devMinor,
  fiemapExtents,
  O_CLOEXEC,
  O_NOATIME,
  O_PATH,
  O_RDONLY,
  open,
  PAGE_SIZE,
  preadFull,
  readlinkatBuffer,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  SysError,
  seekDataRuns,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import type { FileTable } from '../table.js';

/** CRIU's default --ghost-limit. */
export const DEFAULT_GHOST_LIMIT = 1n << 20n;
/** Below this size a regular ghost file is one blob, without chunks (CRIU's threshold). */
const CHUNKS_FROM = 3n * BigInt(PAGE_SIZE);
const ST_UNIT = 512n;
const COPY_BUFFER = 1 << 20;

/** The ghosts of one dump, by inode, and their ids (ghost-file-ID.img counts from 1, as CRIU's). */
class Ghosts {
  private readonly byInode = new Map<string, number>();
  private next = 1;

  /** The ghost id of the inode of `st`, written once (see addGhost). */
  idFor(st: BigIntStats, make: (id: number) => void): number {
    const key = `${st.dev}:${st.ino}`;
    let id = this.byInode.get(key);
    if (id === undefined) {
      id = this.next++;
      make(id);
      this.byInode.set(key, id);
    }
    return id;
  }
}

const ghostsOf = (files: FileTable) => files.cached('regular:ghosts', () => new Ghosts());

/**
 * Keep the unlinked file `name` (files.img entry `origId`, stat `st`) as a ghost. `procPath` reaches
 * the file (/proc/PID/fd/N, /proc/PID/map_files/..., /proc/PID/exe): its contents are read from there
 * when the images are written, while the task still holds it. `owner` names the holder for messages.
 */
export function addGhost(
  files: FileTable,
  origId: number,
  name: string,
  st: BigIntStats,
  procPath: string | undefined,
  owner: string,
): void {
  const limit = files.options.ghostLimit ?? DEFAULT_GHOST_LIMIT;
  const type = Number(st.mode) & S_IFMT;
  if (![S_IFREG, S_IFIFO, S_IFLNK, S_IFDIR, S_IFCHR, S_IFBLK].includes(type)) {
    throw new DumpError(
      `${owner}: ${kindOf(type)} ${name} was unlinked: only regular files, FIFOs, symlinks, directories and device nodes are kept as ghost files`,
    );
  }
  const allocated = st.blocks * ST_UNIT;
  if (allocated > limit) {
    // CRIU's words.
    throw new DumpError(`${owner}: Can't dump ghost file ${name} of ${allocated} size, increase limit`);
  }
  if (!procPath) throw new DumpError(`${owner}: unlinked file ${name} has no /proc path to copy it from`);
  const ghostId = ghostsOf(files).idFor(st, (id) => {
    // Held open until the dump ends: the contents are copied when the images are written.
    let fd: number;
    try {
      // O_NOATIME: copying the file does not change its access time (the next dump's image keeps it).
      fd = open(procPath, (type === S_IFREG ? O_RDONLY | O_NOATIME : O_PATH) | O_CLOEXEC);
    } catch (e) {
      throw new DumpError(
        `${owner}: cannot open unlinked file ${name} (${procPath}): ${(e as Error).message}`,
      );
    }
    files.closeLater(fd);
    const head = ghostHead(st, type === S_IFLNK ? readlinkatBuffer(fd, '').toString('utf8') : undefined);
    const fiemap = files.options.ghostFiemap !== false;
    files.ghosts.push({
      id,
      write: (dir: ImageDir) => writeGhost(dir, id, head, fd, st.size, fiemap, name),
    });
  });
  files.remaps.push({ orig_id: origId, remap_id: ghostId, remap_type: RemapType.GHOST });
}

const kindOf = (type: number) =>
  type === S_IFDIR
    ? 'directory'
    : type === S_IFCHR
      ? 'character device'
      : type === S_IFBLK
        ? 'block device'
        : type === S_IFSOCK
          ? 'socket'
          : `file of type 0${type.toString(8)}`;

const kernelDev = (dev: bigint) => ((devMajor(dev) << 20) | devMinor(dev)) >>> 0;

const timeval = (ns: bigint) => ({ tv_sec: ns / 1_000_000_000n, tv_usec: (ns % 1_000_000_000n) / 1000n });

/** ghost_file_entry as CRIU writes it: size (and chunks) only for regular files from CHUNKS_FROM on. */
function ghostHead(st: BigIntStats, symlinkTarget: string | undefined): GhostFileEntry {
  const type = Number(st.mode) & S_IFMT;
  const head: GhostFileEntry = {
    uid: Number(st.uid),
    gid: Number(st.gid),
    mode: Number(st.mode),
    // The kernel's encoding (major << 20 | minor), as CRIU writes it and inotify marks carry it.
    dev: kernelDev(st.dev),
    ino: st.ino,
    atim: timeval(st.atimeNs),
    mtim: timeval(st.mtimeNs),
  };
  if (type === S_IFREG && st.size >= CHUNKS_FROM) {
    head.chunks = true;
    head.size = st.size;
  }
  // A device node is made again with its numbers (st_rdev as stat gives it, as CRIU writes it).
  if (type === S_IFCHR || type === S_IFBLK) head.rdev = Number(st.rdev);
  if (symlinkTarget !== undefined) head.symlnk_target = symlinkTarget;
  return head;
}

function writeGhost(
  dir: ImageDir,
  id: number,
  head: GhostFileEntry,
  fd: number,
  size: bigint,
  fiemap: boolean,
  name: string,
): void {
  const w = dir.writer('ghost-file-%x', id);
  try {
    w.write(head);
    if ((head.mode & S_IFMT) !== S_IFREG) return;
    if (!head.chunks) {
      copyRun(fd, w, { off: 0n, len: size }, name);
      return;
    }
    for (const run of dataRuns(fd, size, fiemap)) {
      w.write({ len: run.len, off: run.off });
      copyRun(fd, w, run, name);
    }
  } finally {
    w.close();
  }
}

/**
 * The runs of data of a file of `size` bytes: FIEMAP's extents (clipped to the size, as CRIU does) or,
 * without --ghost-fiemap or on a file system without FIEMAP, SEEK_DATA/SEEK_HOLE.
 */
function dataRuns(fd: number, size: bigint, fiemap: boolean): DataRun[] {
  if (fiemap) {
    try {
      const out: DataRun[] = [];
      for (const e of fiemapExtents(fd)) {
        if (e.off > size) continue;
        out.push({ off: e.off, len: e.off + e.len > size ? size - e.off : e.len });
      }
      return out;
    } catch (e) {
      if (!(e instanceof SysError && e.code === 'EOPNOTSUPP')) throw e;
    }
  }
  return seekDataRuns(fd, size);
}

const copyBuffer = (() => {
  let buf: Buffer | undefined;
  return () => {
    buf ??= Buffer.allocUnsafe(COPY_BUFFER);
    return buf;
  };
})();

/** Copy `run` of the file into the image, a buffer at a time. */
function copyRun(fd: number, w: ImageWriter, run: DataRun, name: string): void {
  const buf = copyBuffer();
  let done = 0n;
  while (done < run.len) {
    const want = Number(run.len - done < BigInt(buf.length) ? run.len - done : BigInt(buf.length));
    const n = preadFull(fd, buf, want, run.off + done);
    if (n < want)
      throw new DumpError(
        `unlinked file ${name}: ${run.len} bytes at ${run.off} announced, ${done + BigInt(n)} read`,
      );
    w.writeRaw(buf.subarray(0, n));
    done += BigInt(n);
  }
}
