// File locks held by the tree. flock() and OFD locks belong to an open file description, POSIX
// (fcntl) locks to a process. /proc/PID/fdinfo/N shows the locks taken through that fd's description
// ("lock:" lines, the /proc/locks format): flock and OFD locks in every task holding the description,
// POSIX ones only in their owner. The number a "lock:" line starts with is only the line's rank in
// that one fdinfo file (1, 2, ... again for every fd), so a lock is known by what makes it itself:
// its kind, its owner (the process for POSIX, the open file description for flock and OFD), its file
// (device and inode), its range and type. Each lock is written once to filelocks.img with the task and
// fd it is taken again through: for POSIX its owner, for flock and OFD a task holding the description,
// the one that took the lock when it is in the tree.
import type { FdLock } from '@criu-ts/bfd';
import type { FileLockEntry } from '@criu-ts/images';
import { F_RDLCK, F_WRLCK } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import type { FileTable, OpenFile } from '../files/table.js';

/** file_lock_entry.flag: the kind of lock (CRIU's FL_* values). */
export const FL_POSIX = 1;
export const FL_FLOCK = 2;
export const FL_OFD = 4;

/** CRIU's refusal when a task holds a lock and --file-locks was not given. */
export const NEED_FILE_LOCKS =
  'Some file locks are hold by dumping tasks! You can try --file-locks to dump them.';

const lenOf = (l: FdLock) => (l.end === undefined ? 0n : l.end - l.start + 1n); // 0: to the end of file

/** What makes a lock itself, apart from its owner: its file, range and type. */
const lockPart = (l: FdLock) => `${l.major}:${l.minor}:${l.ino}:${l.start}-${l.end ?? 'EOF'}:${l.access}`;

function entryOf(
  file: OpenFile,
  l: FdLock,
  files: FileTable,
): { key: string; entry: FileLockEntry } | undefined {
  const where = `pid ${file.pid} fd ${file.fd} (${file.link})`;
  if (l.mode !== 'ADVISORY') throw new DumpError(`${where}: a ${l.mode.toLowerCase()} lock cannot be dumped`);
  if (l.access !== 'READ' && l.access !== 'WRITE')
    throw new DumpError(`${where}: a ${l.type} lock of type ${l.access} cannot be dumped`);
  // F_RDLCK / F_WRLCK for every kind, flock too: CRIU's images hold /proc's READ / WRITE that way.
  const type = l.access === 'WRITE' ? F_WRLCK : F_RDLCK;
  const base = { pid: file.pid, fd: file.fd, type, start: l.start, len: lenOf(l) };
  switch (l.type) {
    case 'FLOCK':
      // One flock per description and file: owned by the description, shown in every task holding it.
      return {
        key: `flock:${files.descriptionKey(file)}:${lockPart(l)}`,
        entry: { ...base, flag: FL_FLOCK, start: 0n, len: 0n },
      };
    case 'OFDLCK':
      return { key: `ofd:${files.descriptionKey(file)}:${lockPart(l)}`, entry: { ...base, flag: FL_OFD } };
    case 'POSIX':
      // Owned by a process (its fd table): taken again by that process, through this fd.
      if (l.pid !== file.pid) {
        if (files.pids.has(l.pid)) return undefined; // recorded from the owner's own fdinfo
        throw new DumpError(
          `${where}: a POSIX lock of pid ${l.pid}, which shares this fd table but is not dumped, cannot be dumped`,
        );
      }
      return { key: `posix:${l.pid}:${lockPart(l)}`, entry: { ...base, flag: FL_POSIX } };
    default:
      throw new DumpError(`${where}: a ${l.type} lock (lease or delegation) cannot be dumped`);
  }
}

/**
 * Record the locks held through `file`, each once for the whole tree. Without `--file-locks` a lock
 * stops the dump with CRIU's message, as CRIU does, while the tree can still run on.
 */
export function dumpFileLocks(file: OpenFile, files: FileTable): void {
  for (const l of file.info.locks ?? []) {
    if (l.blocked) continue; // a waiter, not a lock held (fdinfo does not show them; /proc/locks does)
    if (!files.options.fileLocks)
      throw new DumpError(
        `${NEED_FILE_LOCKS} (pid ${file.pid} fd ${file.fd} (${file.link}) holds a ${l.type} lock)`,
      );
    const found = entryOf(file, l, files);
    if (!found) continue;
    const seen = files.cached('file-locks', () => new Map<string, FileLockEntry>());
    const had = seen.get(found.key);
    if (!had) {
      seen.set(found.key, found.entry);
      files.addImageEntry('filelocks', found.entry);
    } else if (had.pid !== l.pid && file.pid === l.pid) {
      // A flock inherited across fork: taken again by the task that took it (the pid fdinfo shows).
      had.pid = file.pid;
      had.fd = file.fd;
    }
  }
}
