import type { FdInfo } from '@criu-ts/bfd';
import {
  type Extra,
  type ExtraOf,
  type FdinfoEntry,
  FdTypes,
  type FileEntry,
  type ImageDir,
  type ImagePattern,
  type MessageOf,
} from '@criu-ts/images';
import { close, KCMP_FILE, kcmp, pidfdGetfd, pidfdOpen } from '@criu-ts/sys';
import { IdAllocator } from '../dump/ids.js';
import type { NetworkLockMethod } from '../net-lock/index.js';
import { type Fown, readOwner } from './fown.js';
import type { IrmapOptions } from './irmap.js';
import type { FdKind } from './kinds.js';
import type { MemfdInodes } from './memfd/dump.js';
import type { TtyDumpContext } from './tty/dump.js';

/** fd_types values (fdinfo.proto), as files.img's `type` holds them. */
export const FD_TYPE = FdTypes;

/** What dump knows of one open file description of a task, before a driver looks at it. */
export interface OpenFile {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/N: a path, or "pipe:[123]", "socket:[45]", "anon_inode:[eventfd]"... */
  link: string;
  /** fdinfo: pos, flags, mnt_id */
  pos: bigint;
  flags: number;
  mntId: number;
  /** stat() of /proc/PID/fd/N (the file itself, even when unlinked) */
  stat: import('node:fs').BigIntStats;
  /** All of /proc/PID/fdinfo/N, parsed (eventfd count, epoll targets, timerfd, locks...). */
  info: FdInfo;
}

/**
 * What a dump driver gets besides the file and the dump's FileTable: what it needs of the task being
 * dumped (its terminals are asked from inside it) and objects shared with other parts of the dump.
 */
export interface FdDumpContext {
  /** Terminals (files/tty/dump.ts). */
  tty: TtyDumpContext;
  /** The memfd inodes of the dump (memfd.img), shared with the memfd mappings (files/memfd/dump.ts). */
  memfds: MemfdInodes;
  /** Told the kind of each fd dumped (the dump's progress counts connections). */
  onFd?: (kind: FdKind) => void;
}

/**
 * An fd kind's dump side: `dump` writes the objects of a file of its kind (files.img entry, extra
 * images) and returns the file id and fd type for fdinfo. Which files are of its kind is not the
 * driver's to say: files/kinds.ts classifies every file once.
 */
export interface FdDumpDriver {
  /** What the driver dumps, for messages ("regular file", "unix socket"). */
  readonly kind: string;
  dump(file: OpenFile, files: FileTable, ctx: FdDumpContext): { id: number; type: number };
}

/**
 * The files.img being built: one entry per distinct file object, ids shared between fds,
 * tasks, cwd/root and mapped files that refer to the same object.
 */
export class FileTable {
  readonly entries: FileEntry[] = [];
  readonly ids = new IdAllocator<string>();
  /** Namespace ids by link ("net:[4026531840]"): ids-PID.img's and namespace files' (one numbering). */
  readonly nsIds = new IdAllocator<string>();
  /** remap-fpath entries (ghost files) and ghost contents to write. */
  readonly remaps: Array<{ orig_id: number; remap_id: number; remap_type: number }> = [];
  readonly ghosts: Array<{ id: number; write: (dir: import('@criu-ts/images').ImageDir) => void }> = [];

  private readonly byInode = new Map<string, Array<{ pid: number; fd: number; key: string }>>();
  /** Entries of the images shared by the whole tree (pipes-data, sk-queues...), by name pattern. */
  private readonly shared = new Map<
    string,
    { pattern: string; id: number | undefined; messages: object[]; extras: Array<Extra | undefined> }
  >();
  private readonly undos: Array<() => void> = [];
  private readonly keeps: Array<() => void> = [];
  private readonly checks: Array<() => void> = [];
  private readonly seen = new Set<string>();
  private readonly values = new Map<string, unknown>();
  private readonly stolen = new Map<string, number>();
  private readonly pidfds = new Map<number, number>();
  private readonly received: number[] = [];
  /** How a file criu-ts holds itself is dumped (set by dumpFds, which knows the drivers). */
  ownFdDumper: ((fd: number) => number) | undefined;

  /**
   * `pids`: the tasks of the dumped tree (a peer outside them is refused or treated as external);
   * `options`: the dump's options drivers follow.
   */
  constructor(
    readonly pids: ReadonlySet<number> = new Set(),
    readonly options: {
      tcpEstablished?: boolean;
      /** --tcp-close: connections are recorded without repair (restore makes them closed). */
      tcpClose?: boolean;
      networkLock?: NetworkLockMethod;
      /** The dump's run id (inventory.img's dump_criu_run_id): it names the nftables lock table. */
      runId?: string;
      extUnixSk?: boolean;
      /** The inode of the RPC server's end of a client's connection (a client that dumps itself). */
      rpcSocketIno?: number;
      skipInFlight?: boolean;
      /** --force-irmap, --irmap-scan-path: paths of watched inodes (files/irmap.ts). */
      irmap?: IrmapOptions;
      /** --file-locks: file locks are dumped; without it a task holding one is refused, as in CRIU. */
      fileLocks?: boolean;
      /** The dump's log (-o), for what a driver lets go with a word (events dropped, as CRIU drops them). */
      log?: (msg: string) => void;
      /** --ghost-limit: the most disk space (st_blocks * 512) an unlinked file kept in the images may take. */
      ghostLimit?: bigint;
      /** --ghost-fiemap (default) / --no-ghost-fiemap: find the data of ghost files with FIEMAP or SEEK_DATA. */
      ghostFiemap?: boolean;
      /** --link-remap: files with no name left but with other hard links are linked back (link_remap.N). */
      linkRemap?: boolean;
      /** -s: the tree stays stopped after a successful dump (link remaps are kept for its restore). */
      leaveStopped?: boolean;
    } = {},
  ) {}

  /**
   * What to undo if the tree goes on running after all (a failed dump, -R, -s): a socket put in repair
   * mode, a network lock. Not run when the dump kills the tree: then the state must stay.
   */
  onUndo(fn: () => void): void {
    this.undos.push(fn);
  }

  /**
   * What to do once the dump has killed the tree, before criu-ts's copies of its fds close: a socket
   * goes back into repair mode (so that it vanishes without a FIN or an RST), the network lock is kept
   * for the restore.
   */
  onKeep(fn: () => void): void {
    this.keeps.push(fn);
  }

  /** Undo, newest first; every step is tried. */
  undo(): void {
    this.keeps.length = 0;
    runNewestFirst(this.undos);
  }

  /** The tree was killed: keep, newest first; every step is tried. */
  keep(): void {
    this.undos.length = 0;
    runNewestFirst(this.keeps);
  }

  /**
   * criu-ts's own duplicate of fd `fd` of task `pid` (pidfd_getfd: same open file description), to
   * inspect from here: sock_diag, peeking at queues, fstat. Cached; closed by close().
   */
  steal(pid: number, fd: number): number {
    const key = `${pid}:${fd}`;
    const have = this.stolen.get(key);
    if (have !== undefined) return have;
    const mine = pidfdGetfd(this.pidfdOf(pid), fd);
    this.stolen.set(key, mine);
    return mine;
  }

  /** A pidfd of task `pid`, opened once (closed by close()). */
  private pidfdOf(pid: number): number {
    let pidfd = this.pidfds.get(pid);
    if (pidfd === undefined) {
      pidfd = pidfdOpen(pid);
      this.pidfds.set(pid, pidfd);
    }
    return pidfd;
  }

  /**
   * The owner and signal for SIGIO of the description behind `file` (fown_entry), read on criu-ts's
   * copy of it: one a driver took already, else one taken for this and closed at once (a task may hold
   * thousands of files nobody else looks at); a file of criu-ts itself (in flight) directly.
   */
  owner(file: OpenFile): Fown {
    if (file.pid === process.pid) return readOwner(file.fd, file.flags);
    const stolen = this.stolen.get(`${file.pid}:${file.fd}`);
    if (stolen !== undefined) return readOwner(stolen, file.flags);
    const copy = pidfdGetfd(this.pidfdOf(file.pid), file.fd);
    try {
      return readOwner(copy, file.flags);
    } finally {
      close(copy);
    }
  }

  /** A value made once per dump (a sock_diag table of every socket...). */
  cached<T>(key: string, make: () => T): T {
    if (!this.values.has(key)) this.values.set(key, make());
    return this.values.get(key) as T;
  }

  /** True the first time `key` is seen in this dump (one pipe's data, one socket's queue...). */
  firstTime(key: string): boolean {
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    return true;
  }

  /**
   * Add an entry to an image written at the end: tree-wide ("pipes-data", "sk-queues"...) or, with
   * `id`, one per object ("tcp-stream-%x" of a socket).
   */
  addImageEntry<K extends ImagePattern>(
    pattern: K,
    message: MessageOf<K>,
    extra?: ExtraOf<K>,
    id?: number,
  ): void {
    const key = id === undefined ? pattern : `${pattern}\0${id}`;
    let img = this.shared.get(key);
    if (!img) {
      img = { pattern, id, messages: [], extras: [] };
      this.shared.set(key, img);
    }
    img.messages.push(message);
    img.extras.push(extra);
  }

  /**
   * A check that can only run once every task is dumped (a socket's peer must be in the tree, a
   * pipe's other end...): it runs before the tree images are written; throwing fails the dump.
   */
  later(check: () => void): void {
    this.checks.push(check);
  }

  /** Whether writeImages() has finished: the dump is done, only its end (kill, resume, stop) is left. */
  imagesWritten = false;

  /** Run the deferred checks and write files.img and the tree-wide images. */
  writeImages(dir: ImageDir): void {
    for (const check of this.checks) check();
    dir.write('files', undefined, this.entries);
    if (this.remaps.length) dir.write('remap-fpath', undefined, this.remaps);
    for (const g of this.ghosts) g.write(dir);
    for (const img of this.shared.values()) {
      // Patterns of several kinds in one map: addImageEntry() checked each message against its kind.
      dir.untyped.write(img.pattern, img.id, img.messages, img.extras as Extra[]);
    }
    this.imagesWritten = true;
  }

  /** An fd criu-ts opened for the dump (a file to copy when the images are written): closed by close(). */
  closeLater(fd: number): void {
    this.received.push(fd);
  }

  /**
   * A file criu-ts received itself, in flight in a socket queue (SCM_RIGHTS, peeked): dumped like an
   * fd of a task, sharing its entry with a task's fd on the same open file. Its files.img id; the fd
   * stays open until close().
   */
  inFlight(fd: number): number {
    this.received.push(fd);
    if (!this.ownFdDumper) throw new Error('FileTable.inFlight before any fd table was dumped');
    return this.ownFdDumper(fd);
  }

  /** Close every stolen and received fd and every pidfd (after the dump, failed or not). */
  close(): void {
    for (const fd of [...this.stolen.values(), ...this.pidfds.values(), ...this.received.splice(0)]) {
      try {
        close(fd);
      } catch {
        // already closed
      }
    }
    this.stolen.clear();
    this.pidfds.clear();
  }

  /**
   * A key naming the open file description behind an fd: dup()ed fds and fds inherited
   * across fork share one description (and one position), so they share one files.img
   * entry; two separate open() calls of one file do not. kcmp(KCMP_FILE) tells them apart.
   */
  descriptionKey(file: OpenFile): string {
    const inode = `${file.stat.dev}:${file.stat.ino}`;
    const seen = this.byInode.get(inode) ?? [];
    for (const other of seen) {
      if (kcmp(file.pid, other.pid, KCMP_FILE, file.fd, other.fd) === 0) return other.key;
    }
    const key = `file:${inode}:${file.pid}:${file.fd}`;
    seen.push({ pid: file.pid, fd: file.fd, key });
    this.byInode.set(inode, seen);
    return key;
  }

  /** The id for `key`; `make` builds the files.img entry the first time the key is seen. */
  add(key: string, make: (id: number) => FileEntry): number {
    const { id, fresh } = this.ids.get(key);
    if (fresh) this.entries.push(make(id));
    return id;
  }
}

export type FdinfoList = FdinfoEntry[];

function runNewestFirst(steps: Array<() => void>): void {
  for (const fn of steps.splice(0).reverse()) {
    try {
      fn();
    } catch {
      // best effort: every step is tried
    }
  }
}
