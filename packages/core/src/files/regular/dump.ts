import { type BigIntStats, lstatSync, statSync } from 'node:fs';
import { PROC_ROOT, procExists, procPath } from '@criu-ts/bfd';
import { type FileEntry, RemapType } from '@criu-ts/images';
import { O_ACCMODE, O_APPEND, O_WRONLY, S_IFCHR, S_IFLNK, S_IFMT, S_IFREG } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { type Fown, noOwner } from '../fown.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';
import { addGhost } from './ghost-dump.js';
import { addLinkRemap } from './link-remap-dump.js';
import { procPidOf } from './proc-path.js';

const DELETED = ' (deleted)';

export interface PathEntryOptions {
  /** The fd's flags (fdinfo, O_CLOEXEC left out) and position. */
  flags?: number;
  pos?: bigint;
  /** Where criu-ts reaches the file itself (/proc/PID/fd/N...): to copy or link it back if it has no name. */
  procPath?: string;
  /** The file's owner for SIGIO (CRIU keeps a FIFO's in its REG entry). */
  fown?: Fown;
  /** The FileTable key (default: one entry per path and inode). */
  key?: string;
  /** Who holds the file, for messages ("pid 5 fd 3"); default: taken from procPath. */
  owner?: string;
}

/**
 * A regular file or device node reached by path: the path, position, flags, mode and size,
 * so that restore reopens it and checks it is still the same file. A file whose name is gone is
 * remapped as CRIU does: kept in a ghost file when it has no name at all (ghost-dump.ts), linked back
 * under a new name when it still has another one (link-remap-dump.ts, --link-remap).
 *
 * As CRIU writes it: the size only for a regular file, and not for one opened O_WRONLY|O_APPEND
 * (a log may grow between dump and restore, and CRIU's restore refuses a file whose size differs
 * from the one written).
 */
export function regularFileEntry(
  files: FileTable,
  path: string,
  st: BigIntStats,
  opts: PathEntryOptions = {},
): number {
  const key = opts.key ?? `path:${st.dev}:${st.ino}:${path}`;
  return files.add(key, (id) => {
    const name = remapIfGone(files, id, path, st, opts.procPath, opts.owner ?? ownerOf(opts.procPath));
    const entry: FileEntry = {
      id,
      type: FD_TYPE.REG,
      reg: {
        id,
        flags: opts.flags ?? 0,
        pos: opts.pos ?? 0n,
        fown: opts.fown ?? noOwner(),
        name,
        ...(keepsSize(st, opts.flags ?? 0) ? { size: st.size } : {}),
        mode: Number(st.mode),
        // No mnt_id: CRIU writes it only for a tree with a mount namespace of its own (and then
        // reaches files and their remaps from that mount), which criu-ts does not dump.
      },
    };
    return entry;
  });
}

/** Whether the files.img entry carries the size restore checks (CRIU's should_check_size). */
function keepsSize(st: BigIntStats, flags: number): boolean {
  const regular = (Number(st.mode) & S_IFMT) === S_IFREG;
  const log = (flags & O_ACCMODE) === O_WRONLY && (flags & O_APPEND) !== 0;
  return regular && !log;
}

/** "pid 5 fd 3" (or "pid 5 exe"...) from /proc/5/fd/3, for messages. */
function ownerOf(procPath: string | undefined): string {
  const m = procPath ? /^\/proc\/(\d+)\/(.*)$/.exec(procPath) : null;
  if (!m) return 'criu-ts';
  return `pid ${m[1]} ${m[2]!.replace(/^fd\//, 'fd ').replace(/^map_files\//, 'mapping ')}`;
}

/**
 * The name files.img records for `path`, the name the task reaches the file by: the file must be there
 * under it (CRIU's check_path_remap). An unlinked file (no name left) becomes a ghost; one whose name is
 * gone but that has other names is linked back (--link-remap); a name that now leads to another file is
 * refused. /proc and /dev/pts names are the kernel's: they are taken as they are.
 */
function remapIfGone(
  files: FileTable,
  id: number,
  path: string,
  st: BigIntStats,
  procPath: string | undefined,
  owner: string,
): string {
  if (!path.startsWith('/')) throw new DumpError(`${owner}: The path [${path}] is not supported`);
  const stripped = path.endsWith(DELETED) ? path.slice(0, -DELETED.length) : path;
  if (path === PROC_ROOT || path.startsWith(`${PROC_ROOT}/`)) {
    const pid = procPidOf(stripped);
    if (pid === undefined) return path;
    // /proc/PID of a task that has died reads "/proc/PID (deleted)".
    noteDeadPid(files, id, pid, path !== stripped);
    return stripped;
  }
  if (path.startsWith('/dev/pts/')) return stripped;
  if (st.nlink === 0n) {
    addGhost(files, id, stripped, st, procPath, owner);
    return stripped;
  }
  let there: BigIntStats;
  try {
    there =
      (Number(st.mode) & S_IFMT) === S_IFLNK
        ? lstatSync(path, { bigint: true })
        : statSync(path, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    addLinkRemap(files, id, stripped, procPath, owner);
    return stripped;
  }
  if (there.dev !== st.dev || there.ino !== st.ino) {
    // CRIU's words.
    throw new DumpError(
      `${owner}: ${path}: Unaccessible path opened ${there.dev}:${there.ino}, need ${st.dev}:${st.ino}`,
    );
  }
  return path;
}

/**
 * /proc/PID or /proc/PID/... of a task that has died since it was opened (the task is neither in the
 * tree nor alive): restore makes a helper with that PID while it opens the file (remap type PROCFS,
 * one remap entry per dead pid, as CRIU 1.4 writes it). Of a task of the tree the file comes back with
 * the task; of a live task outside the tree it is opened again like any file.
 */
function noteDeadPid(files: FileTable, id: number, pid: number, deleted: boolean): void {
  if (files.pids.has(pid) || (!deleted && procExists(pid)) || !files.firstTime(`dead-pid:${pid}`)) return;
  files.remaps.push({ orig_id: id, remap_id: pid, remap_type: RemapType.PROCFS });
}

/** Regular files, directories and device nodes opened by path. */
/**
 * Character devices whose open file is a thing of its own that opening the path again does not give
 * back (a new, empty one instead): the tun/tap interface it is attached to, a FUSE connection, a
 * vhost or uinput device it set up, a PPP unit. Refused, not restored as something else.
 */
const STATEFUL_DEVICES = new Map<string, string>([
  ['10:200', 'a tun/tap device (its interface)'],
  ['10:229', 'a FUSE connection'],
  ['10:238', 'a vhost-net device'],
  ['10:241', 'a vhost-vsock device'],
  ['10:223', 'a uinput device'],
  ['108:0', 'a PPP channel or unit'],
]);

function refuseStatefulDevice(file: OpenFile): void {
  if ((Number(file.stat.mode) & S_IFMT) !== S_IFCHR) return;
  const rdev = file.stat.rdev;
  // glibc's dev_t layout, as stat gives it
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  const what = STATEFUL_DEVICES.get(`${major}:${minor}`);
  if (what)
    throw new DumpError(
      `pid ${file.pid} fd ${file.fd}: ${file.link} is ${what}: opened again it would be a new one; not supported yet`,
    );
}

export const regularFileDriver: FdDumpDriver = {
  kind: 'regular file',
  dump(file: OpenFile, files: FileTable) {
    refuseStatefulDevice(file);
    const id = regularFileEntry(files, file.link, file.stat, {
      key: files.descriptionKey(file),
      flags: file.flags,
      pos: file.pos,
      fown: files.owner(file),
      procPath: procPath(file.pid, 'fd', file.fd),
    });
    return { id, type: FD_TYPE.REG };
  },
};

/** A path's REG entry for cwd, root and the mm's exe (no position, opened O_PATH-like). */
export function pathEntry(files: FileTable, path: string, procPath: string): number {
  return regularFileEntry(files, path, statSync(procPath, { bigint: true }), { procPath });
}

export type { FileEntry };
