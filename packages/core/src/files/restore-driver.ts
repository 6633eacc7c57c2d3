// The restore side of an fd kind. Restore opens every file description once, in criu-ts itself, and
// each task that held it pulls a duplicate with pidfd_getfd(2) (files/node-files.ts): so a driver's main
// job is `open`, giving criu-ts's fd for one files.img entry. Objects shared between entries (the two
// ends of a pipe, a socketpair) are made once and kept in `ctx.shared`. What only the task can do
// (epoll_ctl with its own fd numbers, POSIX locks owned by the process) goes in `inTask`. A file that
// names a process (a pidfd) cannot be opened before that process exists: its driver says so in `openLate`.
import type { FdinfoEntry, FileEntry, ImageDir } from '@criu-ts/images';
import type { Connection } from '../net-lock/index.js';
import type { Arg, Call } from '../restore/inject.js';

/** What a driver may use while checking entries, before any task exists. */
export interface FdCheckContext {
  dir: ImageDir;
  files: ReadonlyMap<number, FileEntry>;
}

/** What a driver may use while opening files in criu-ts. */
export interface FdRestoreContext extends FdCheckContext {
  /** criu-ts's fd of another files.img entry, opened (once) as a task's fd: a peer, an epoll target. */
  fd(id: number): number;
  /**
   * A new fd (criu-ts's) of REG entry `id` opened by its name with `flags` (a FIFO's path): through the
   * file's remap when its name was gone at the dump (an unlinked FIFO comes back from its ghost).
   */
  openPath(id: number, flags: number): number;
  /**
   * An O_PATH fd (the caller closes it) on the file made again for the unlinked inode `ino` of device
   * `sdev` (the kernel's dev_t), or undefined when no unlinked file of the images is that inode: a
   * watch on an unlinked file is added on it.
   */
  ghostInode(sdev: number, ino: bigint): { fd: number; path: string } | undefined;
  /** A value made once per key and kept for the whole restore (a pipe by its pipe_id...). */
  shared<T>(key: string, make: () => T): T;
  /** A connection the dump locked (restored in repair mode): its lock is lifted once the tree runs. */
  locked(c: Connection): void;
  /** --tcp-close: TCP connections come back closed (CRIU's option). */
  tcpClose?: boolean;
  /** Run `fn` once the restored tree runs; not run if the restore fails. */
  afterRestore(fn: () => void): void;
  /** Run `fn` if the restore fails, once its tasks are killed and before criu-ts's fds close. */
  ifRestoreFails(fn: () => void): void;
  /** Close `fd` when the restore ends (an end of a pipe no task holds, a helper fd). */
  closeLater(fd: number): void;
  /**
   * Run `use` with the pid of a helper process made for it, killed and reaped as soon as `use`
   * returns: whatever `use` opened on it then names a process that has died. Only for 'dying' files.
   */
  whileHelperLives<T>(use: (pid: number) => T): T;
  log(msg: string): void;
}

/** A task whose fds are all in place, for syscalls it must run itself. */
export interface InTaskContext {
  pid: number;
  /** Copy bytes into the task's scratch area; their address there (valid for this batch). */
  put(bytes: Buffer): bigint;
  /** True the first time `key` is seen in this restore (a shared epoll is filled by one task). */
  firstTime(key: string): boolean;
  /**
   * Lend the task criu-ts's fd of files.img entry `id` for a few calls: `get` (pidfd_getfd) puts it at fd
   * number `fd`, a number the task does not use, and `put` closes it again. Both go in the same batch.
   */
  lend(id: number): { fd: number; get: Call; put: Call };
}

/**
 * When a file is opened, if not with the others before any task exists:
 *  - 'tree': once the restored tasks exist, as the fds are installed (a pidfd of a task of the tree);
 *  - 'dying': right after the stub starts, through a helper that then dies (a pidfd of a dead process).
 */
export type LateOpen = 'tree' | 'dying';

export interface FdRestoreDriver {
  /** fd_types value of the files.img entries this driver opens. */
  readonly type: number;
  readonly kind: string;
  /** Plan time: throw a RestoreError naming the image and field if the entry cannot be restored. */
  check?(entry: FileEntry, ctx: FdCheckContext): void;
  /** Whether `entry` waits to be opened (`treeIds`: every pid and tid the restore makes); see LateOpen. */
  openLate?(entry: FileEntry, treeIds: ReadonlySet<number>): LateOpen | undefined;
  /** criu-ts's fd for `entry`, with the flags and state the task's description had. */
  open(entry: FileEntry, ctx: FdRestoreContext): number;
  /** Syscalls the task runs once all its fds are installed (`fd` is its fdinfo entry). */
  inTask?(entry: FileEntry, fd: FdinfoEntry, task: InTaskContext): Call[];
  /**
   * Syscalls a task runs for an entry it may not hold itself (an epoll only in flight in a socket queue,
   * whose targets a task of the tree adds through a lent fd): asked of every task, for every entry.
   */
  inAnyTask?(entry: FileEntry, task: InTaskContext): Call[];
}

export type { Arg, Call };
