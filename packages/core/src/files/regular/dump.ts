import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import type { FileEntry, ImageDir } from '@criu-ts/images';
import {
  close,
  isSysError,
  lseek,
  O_CLOEXEC,
  O_RDONLY,
  open,
  pread as preadSys,
  SEEK_DATA,
  SEEK_HOLE,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { isMemfdLink } from '../memfd/dump.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, noOwner, type OpenFile } from '../table.js';
import { procPidOf } from './proc-path.js';

const DELETED = ' (deleted)';
// Access mode and status flags, as fdinfo shows them (and CRIU keeps them), O_PATH and __O_TMPFILE too:
// restore opens an O_PATH fd as one, and an unnamed temporary file by its ghost's name.
const O_ACCMODE_AND_STATUS = 0o37777777;
const REMAP_GHOST = 1;
const REMAP_PROCFS = 2;
/** Unlinked files up to this size are copied into ghost-file images (CRIU's default limit). */
const GHOST_LIMIT = 1024 * 1024;

/**
 * A regular file or device node reached by path: the path, position, flags, mode and size,
 * so that restore reopens it and checks it is still the same file. An unlinked file that is
 * still open becomes a ghost file: its contents go into ghost-file-ID.img.
 */
export function regularFileEntry(
  files: FileTable,
  path: string,
  st: import('node:fs').BigIntStats,
  opts: { flags?: number; pos?: bigint; mntId?: number; procPath?: string; key?: string } = {},
): number {
  const key = opts.key ?? `path:${st.dev}:${st.ino}:${path}`;
  return files.add(key, (id) => {
    const unlinked = path.endsWith(DELETED);
    const deleted = unlinked && st.nlink === 0n;
    const name = unlinked ? path.slice(0, -DELETED.length) : path;
    if (deleted) addGhost(files, id, name, st, opts.procPath);
    else if (opts.procPath) checkReachable(name, unlinked, st, opts.procPath);
    const entry: FileEntry = {
      id,
      type: FD_TYPE.REG,
      reg: {
        id,
        flags: (opts.flags ?? 0) & O_ACCMODE_AND_STATUS,
        pos: opts.pos ?? 0n,
        fown: noOwner(),
        name,
        size: st.size,
        mode: Number(st.mode),
        ...(opts.mntId !== undefined ? { mnt_id: opts.mntId } : {}),
      },
    };
    return entry;
  });
}

/** "pid 12 fd 3", "pid 12 cwd", "pid 12 mapping 7f..-7f..": who holds the file, from its /proc path. */
function holderOf(procPath: string): string {
  const m = /^\/proc\/(\d+)\/(?:(fd)\/(\d+)|map_files\/(\S+)|(\w+))$/.exec(procPath);
  if (!m) return procPath;
  const what = m[2] ? `fd ${m[3]}` : m[4] ? `mapping ${m[4]}` : m[5];
  return `pid ${m[1]} ${what}`;
}

/**
 * Restore opens a file again by its name, so the name must still lead to this very file. A file that
 * still has links but not this name (unlinked while another hard link lives on, or its name taken
 * by another file since) is refused, in CRIU's words (criu-ts has no link remaps yet). /proc and
 * devpts name what the kernel makes; those have their own rules.
 */
function checkReachable(
  name: string,
  unlinked: boolean,
  st: import('node:fs').BigIntStats,
  procPath: string,
): void {
  if (/^\/(proc|dev\/pts)(\/|$)/.test(name)) return;
  const linkRemap = () =>
    new DumpError(`${holderOf(procPath)}: Can't create link remap for ${name}. Use --link-remap option.`);
  // Unlinked but linked elsewhere: only a link made at dump (CRIU's --link-remap) could reach it.
  if (unlinked) throw linkRemap();
  let now: import('node:fs').BigIntStats;
  try {
    now = statSync(name, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw linkRemap();
    throw e;
  }
  if (now.ino !== st.ino || now.dev !== st.dev)
    throw new DumpError(
      `${holderOf(procPath)}: Unaccessible path opened ${now.dev}:${now.ino}, need ${st.dev}:${st.ino} (${name})`,
    );
}

const S_IFMT = 0o170000n;
const S_IFREG = 0o100000n;
const S_IFDIR = 0o040000n;
const S_IFCHR = 0o020000n;
const S_IFBLK = 0o060000n;

/**
 * The ghost of an unlinked file: one per inode (two names or two opens of one unlinked file come back
 * as one file), its contents read now while the task still holds it. A regular file brings its
 * contents; a directory and a device node come back empty, as CRIU makes them (mkdir, mknod).
 */
function addGhost(
  files: FileTable,
  origId: number,
  name: string,
  st: import('node:fs').BigIntStats,
  procPath?: string,
) {
  if (!procPath) throw new DumpError(`unlinked file ${name} has no /proc path to copy it from`);
  const type = st.mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFDIR && type !== S_IFCHR && type !== S_IFBLK)
    throw new DumpError(
      `unlinked file ${name} (mode 0${st.mode.toString(8)}) is of a kind criu-ts cannot make again`,
    );
  // What the file really holds (holes do not count), as CRIU weighs it.
  if (st.blocks * 512n > BigInt(GHOST_LIMIT))
    throw new DumpError(`Can't dump ghost file ${name} of ${st.blocks * 512n} size, increase limit`);
  const inode = `ghost:${st.dev}:${st.ino}`;
  const fresh = files.firstTime(inode);
  const remapId = files.cached(inode, () => files.ids.unique());
  files.remaps.push({ orig_id: origId, remap_id: remapId, remap_type: REMAP_GHOST });
  if (!fresh) return;
  // Read the contents now, while the task still holds the file open. From 3 pages on, as CRIU does,
  // only the data is kept, chunk by chunk, so holes come back as holes.
  const chunked = type === S_IFREG && st.size >= GHOST_CHUNKS_THRESH;
  const chunks = type !== S_IFREG ? [] : chunked ? readChunks(procPath) : [];
  const data = type === S_IFREG && !chunked ? readWhole(procPath, Number(st.size)) : undefined;
  files.ghosts.push({
    id: remapId,
    write: (dir: ImageDir) => {
      const w = dir.writer('ghost-file-%x', remapId);
      try {
        w.write(
          {
            uid: Number(st.uid),
            gid: Number(st.gid),
            mode: Number(st.mode),
            dev: Number(st.dev),
            ino: st.ino,
            ...(type === S_IFCHR || type === S_IFBLK ? { rdev: Number(st.rdev) } : {}),
            atim: timeval(st.atimeNs),
            mtim: timeval(st.mtimeNs),
            ...(chunked ? { chunks: true } : {}),
            ...(type === S_IFREG ? { size: st.size } : {}),
          },
          data,
        );
        for (const c of chunks) w.write({ len: BigInt(c.data.length), off: c.off }, c.data);
      } finally {
        w.close();
      }
    },
  });
}

/** Files from this size on keep their holes: their ghost holds data chunks (CRIU's threshold). */
const GHOST_CHUNKS_THRESH = 3n * 4096n;

/** The data of a sparse file, chunk by chunk (SEEK_DATA / SEEK_HOLE), read through its /proc path. */
function readChunks(path: string): Array<{ off: bigint; data: Buffer }> {
  const out: Array<{ off: bigint; data: Buffer }> = [];
  const fd = open(path, O_RDONLY | O_CLOEXEC);
  try {
    let at = 0n;
    for (;;) {
      let start: bigint;
      try {
        start = lseek(fd, at, SEEK_DATA);
      } catch (e) {
        if (isSysError(e, 'ENXIO')) break; // no data after `at`
        throw e;
      }
      const end = lseek(fd, start, SEEK_HOLE);
      const data = Buffer.alloc(Number(end - start));
      let done = 0;
      while (done < data.length) {
        const n = preadSys(fd, data, data.length - done, start + BigInt(done), done);
        if (n === 0) break;
        done += n;
      }
      out.push({ off: start, data: data.subarray(0, done) });
      at = end;
    }
  } finally {
    close(fd);
  }
  return out;
}

const timeval = (ns: bigint) => ({ tv_sec: ns / 1_000_000_000n, tv_usec: (ns % 1_000_000_000n) / 1000n });

function readWhole(path: string, size: number): Buffer {
  const buf = Buffer.alloc(size);
  const fd = openSync(path, 'r');
  try {
    let done = 0;
    while (done < size) {
      const n = readSync(fd, buf, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } finally {
    closeSync(fd);
  }
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
      mntId: file.mntId,
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
