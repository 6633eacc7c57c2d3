import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import type { FileEntry, ImageDir } from '@criu-ts/images';
import { isSysError, lseek, SEEK_DATA, SEEK_HOLE } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { type Fown, noOwner } from '../fown.js';
import { isMemfdLink } from '../memfd/dump.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';
import { procPidOf } from './proc-path.js';

const DELETED = ' (deleted)';
const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_APPEND = 0o2000;
const O_ACCMODE_AND_STATUS = 0o7777777; // keep access mode and status flags, as fdinfo shows them
const REMAP_GHOST = 1;
const REMAP_PROCFS = 2;
/** Unlinked files up to this size are copied into ghost-file images (CRIU's default limit). */
const GHOST_LIMIT = 1024 * 1024;
/** From this size on, CRIU writes a ghost file as chunks of data (GHOST_CHUNKS_THRESH). */
const GHOST_CHUNKS_FROM = 3 * 4096;

/**
 * A regular file or device node reached by path: the path, position, flags, mode and size,
 * so that restore reopens it and checks it is still the same file. An unlinked file that is
 * still open becomes a ghost file: its contents go into ghost-file-ID.img.
 *
 * As CRIU writes it: the size only for a regular file, and not for one opened O_WRONLY|O_APPEND
 * (a log may grow between dump and restore, and CRIU's restore refuses a file whose size differs
 * from the one written); no mnt_id, which CRIU writes only with the mount namespace dumped
 * (mountpoints-N.img), and without that image its restore looks the id up and fails (ghost files).
 */
export function regularFileEntry(
  files: FileTable,
  path: string,
  st: import('node:fs').BigIntStats,
  opts: { flags?: number; pos?: bigint; procPath?: string; key?: string; fown?: Fown } = {},
): number {
  const key = opts.key ?? `path:${st.dev}:${st.ino}:${path}`;
  return files.add(key, (id) => {
    const deleted = path.endsWith(DELETED) && st.nlink === 0n;
    const name = deleted ? path.slice(0, -DELETED.length) : path;
    if (deleted) addGhost(files, id, name, st, opts.procPath);
    const entry: FileEntry = {
      id,
      type: FD_TYPE.REG,
      reg: {
        id,
        flags: (opts.flags ?? 0) & O_ACCMODE_AND_STATUS,
        pos: opts.pos ?? 0n,
        fown: opts.fown ?? noOwner(),
        name,
        ...(keepsSize(st, opts.flags ?? 0) ? { size: st.size } : {}),
        mode: Number(st.mode),
      },
    };
    return entry;
  });
}

/** Whether the files.img entry carries the size restore checks (CRIU's should_check_size). */
function keepsSize(st: import('node:fs').BigIntStats, flags: number): boolean {
  const regular = (st.mode & 0o170000n) === 0o100000n;
  const log = (flags & O_ACCMODE) === O_WRONLY && (flags & O_APPEND) !== 0;
  return regular && !log;
}

function addGhost(
  files: FileTable,
  origId: number,
  name: string,
  st: import('node:fs').BigIntStats,
  procPath?: string,
) {
  if (!procPath) throw new DumpError(`unlinked file ${name} has no /proc path to copy it from`);
  // What the file takes on disk counts, as in CRIU: a sparse file may be far larger.
  const used = st.blocks * 512n;
  if ((st.mode & 0o170000n) === 0o100000n && used > BigInt(GHOST_LIMIT)) {
    throw new DumpError(
      `unlinked file ${name} takes ${used} bytes on disk, over the ghost file limit of ${GHOST_LIMIT}`,
    );
  }
  // One ghost per inode: a file opened under two of its names (two links, both unlinked) comes back as
  // one file, as CRIU keeps it.
  const remapId = files.cached(`ghost:${st.dev}:${st.ino}`, () => {
    const remapId = files.ids.unique();
    saveGhost(files, remapId, st, procPath);
    return remapId;
  });
  files.remaps.push({ orig_id: origId, remap_id: remapId, remap_type: REMAP_GHOST });
}

/** The contents and metadata of an unlinked file, for ghost-file-ID.img. */
function saveGhost(
  files: FileTable,
  remapId: number,
  st: import('node:fs').BigIntStats,
  procPath: string,
): void {
  const type = st.mode & 0o170000n;
  const regular = type === 0o100000n;
  // As CRIU writes it: a regular file from 3 pages on as chunks of its data (holes stay holes), with
  // its size; a smaller one as its whole contents; rdev only for a device.
  const chunked = regular && st.size >= BigInt(GHOST_CHUNKS_FROM);
  // Read the contents now, while the task still holds the file open.
  const regions = regular ? readRegions(procPath, Number(st.size), chunked) : [];
  const head = {
    uid: Number(st.uid),
    gid: Number(st.gid),
    mode: Number(st.mode),
    dev: Number(st.dev),
    ino: st.ino,
    ...(type === 0o020000n || type === 0o060000n ? { rdev: Number(st.rdev) } : {}),
    atim: timeval(st.atimeNs),
    mtim: timeval(st.mtimeNs),
    ...(chunked ? { chunks: true, size: st.size } : {}),
  };
  files.ghosts.push({
    id: remapId,
    write: (dir: ImageDir) => {
      const w = dir.writer('ghost-file-%x', remapId);
      try {
        if (!chunked) {
          w.write(head, regions[0]?.data ?? Buffer.alloc(0));
          return;
        }
        w.write(head);
        for (const r of regions) w.write({ len: BigInt(r.data.length), off: BigInt(r.off) }, r.data);
      } finally {
        w.close();
      }
    },
  });
}

const timeval = (ns: bigint) => ({ tv_sec: ns / 1_000_000_000n, tv_usec: (ns % 1_000_000_000n) / 1000n });

/**
 * The data of a file: the whole of it, or (`byRegion`) each run of data between holes (SEEK_DATA /
 * SEEK_HOLE; a file system without them gives one run).
 */
function readRegions(path: string, size: number, byRegion: boolean): Array<{ off: number; data: Buffer }> {
  const fd = openSync(path, 'r');
  try {
    if (!byRegion) return [{ off: 0, data: readAt(fd, 0, size) }];
    const out: Array<{ off: number; data: Buffer }> = [];
    for (let hole = 0; hole < size; ) {
      let data: number;
      try {
        data = Number(lseek(fd, hole, SEEK_DATA));
        hole = Number(lseek(fd, data, SEEK_HOLE));
      } catch (e) {
        if (isSysError(e, 'ENXIO')) break; // no data after `hole`
        if (hole !== 0 || !isSysError(e, 'EINVAL')) throw e;
        data = 0;
        hole = size;
      }
      out.push({ off: data, data: readAt(fd, data, Math.min(hole, size) - data) });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

function readAt(fd: number, off: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const n = readSync(fd, buf, done, len - done, off + done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

/**
 * /proc/PID or /proc/PID/... of a task that has died since it was opened (the task is neither in the
 * tree nor alive): restore makes a helper with that PID while it opens the file (remap type PROCFS,
 * one remap entry per dead pid, as CRIU 1.4 writes it). Of a task of the tree the file comes back with
 * the task; of a live task outside the tree it is opened again like any file.
 */
function noteDeadPid(file: OpenFile, files: FileTable, id: number): void {
  const pid = procPidOf(file.link);
  if (pid === undefined) return;
  if (files.pids.has(pid) || existsSync(`/proc/${pid}`) || !files.firstTime(`dead-pid:${pid}`)) return;
  files.remaps.push({ orig_id: id, remap_id: pid, remap_type: REMAP_PROCFS });
}

/** Regular files, directories and device nodes opened by path. */
export const regularFileDriver: FdDumpDriver = {
  kind: 'regular file',
  claims(file: OpenFile) {
    const type = file.stat.mode & 0o170000n;
    // memfds have a path-like link too, but are shared memory (files/memfd).
    const byPath = file.link.startsWith('/') && !isMemfdLink(file.link);
    return byPath && (type === 0o100000n || type === 0o040000n || type === 0o020000n || type === 0o060000n);
  },
  dump(file: OpenFile, files: FileTable) {
    const id = regularFileEntry(files, file.link, file.stat, {
      key: files.descriptionKey(file),
      flags: file.flags,
      pos: file.pos,
      fown: files.owner(file),
      procPath: `/proc/${file.pid}/fd/${file.fd}`,
    });
    noteDeadPid(file, files, id);
    return { id, type: FD_TYPE.REG };
  },
};

/** A path's REG entry for cwd, root and the mm's exe (no position, opened O_PATH-like). */
export function pathEntry(files: FileTable, path: string, procPath: string): number {
  return regularFileEntry(files, path, statSync(procPath, { bigint: true }), { procPath });
}

export type { FileEntry };
