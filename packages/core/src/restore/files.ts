// Files, opened once by criu-ts itself and pulled into the tasks with pidfd_getfd(2).
//
// Each files.img entry is one open file description: it is opened here once (path, flags, position),
// and every task that had it gets a duplicate of this very description (pidfd_getfd(criu-ts, fd)), so
// fds that shared a description before the dump (dup, fork) share one again, with one position.
// Mapped files, the exe, cwd and root are opened the same way. Unlinked files come back from their
// ghost-file image: recreated under their old name (or next to it), opened, unlinked again.
import { constants, fstatSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isatty } from 'node:tty';
import type { FileEntry, GhostFileEntry, ImageDir } from '@criu-ts/images';
import {
  close,
  ftruncate,
  lseek,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_RDWR,
  open,
  SysError,
  unlinkat,
  writeAll,
} from '@criu-ts/sys';
import type { FdRestoreContext, LateOpen } from '../files/restore-driver.js';
import { restoreDriverFor } from '../files/restore-fds.js';
import { RestoreError } from './errors.js';
import type { RestorePlan } from './plan.js';

const O_DIRECTORY = 0o200000;
const O_PATH = 0o10000000;
const O_NOFOLLOW = 0o400000;
/** Flags that only matter when a file is created, or that we set ourselves. */
const OPEN_ONLY = O_CREAT | O_EXCL | 0o1000 /* O_TRUNC */ | 0o400 /* O_NOCTTY */ | O_CLOEXEC;

export type Purpose = 'fd' | 'read' | 'write' | 'dir';

/** The fds criu-ts holds for the restore, by file id and purpose. */
export class NodeFiles {
  private readonly open = new Map<string, number>();
  private readonly ghostPaths = new Map<number, string>();
  private readonly sharedObjects = new Map<string, unknown>();
  private readonly extraFds: number[] = [];
  private readonly afterRestoreSteps: Array<() => void> = [];
  private readonly driverCtx: FdRestoreContext;
  /** How a helper process is made for a 'dying' file (the restorer's, once its stub runs). */
  private helperMaker: (<T>(use: (pid: number) => T) => T) | undefined;

  private readonly dir: ImageDir;
  private readonly files: Map<number, FileEntry>;
  private readonly ghosts: Map<number, number>;
  /** TTY file ids that get criu-ts's own terminal (see plan.ts). */
  private readonly inheritTty: Set<number>;

  constructor(
    plan: Pick<RestorePlan, 'dir' | 'files' | 'ghosts' | 'inheritTty' | 'networkLock' | 'tcpClose'>,
    private readonly log: (msg: string) => void = () => {},
  ) {
    this.dir = plan.dir;
    this.files = plan.files;
    this.ghosts = plan.ghosts;
    this.inheritTty = plan.inheritTty;
    this.driverCtx = {
      dir: plan.dir,
      files: plan.files,
      networkLock: plan.networkLock,
      tcpClose: plan.tcpClose === true,
      fd: (id) => this.fd(id, 'fd'),
      shared: <T>(key: string, make: () => T): T => {
        if (!this.sharedObjects.has(key)) this.sharedObjects.set(key, make());
        return this.sharedObjects.get(key) as T;
      },
      closeLater: (fd) => {
        this.extraFds.push(fd);
      },
      afterRestore: (fn) => {
        this.afterRestoreSteps.push(fn);
      },
      whileHelperLives: (use) => {
        if (!this.helperMaker) throw new RestoreError('a helper process is asked for before the stub runs');
        return this.helperMaker(use);
      },
      log,
    };
  }

  /** Where the helper processes of 'dying' files come from (see FdRestoreContext.whileHelperLives). */
  makeHelpersWith(maker: <T>(use: (pid: number) => T) => T): void {
    this.helperMaker = maker;
  }

  /** Whether file `id` waits to be opened, as its driver says (see FdRestoreDriver.openLate). */
  lateOpen(id: number, treeIds: ReadonlySet<number>): LateOpen | undefined {
    const f = this.files.get(id);
    if (!f || f.reg) return undefined;
    return restoreDriverFor(f.type)?.openLate?.(f, treeIds);
  }

  /**
   * criu-ts's fd for file `id`: 'fd' opens it as the task had it (flags and position), 'read' / 'write'
   * for a mapping or the exe, 'dir' for cwd and root.
   */
  fd(id: number, purpose: Purpose): number {
    const key = `${id}:${purpose}`;
    const have = this.open.get(key);
    if (have !== undefined) return have;
    if (this.inheritTty.has(id)) return ownTerminal();
    const f = this.files.get(id);
    const driver = f && purpose === 'fd' && !f.reg ? restoreDriverFor(f.type) : undefined;
    if (f && driver) {
      const fd = driver.open(f, this.driverCtx);
      this.open.set(key, fd);
      return fd;
    }
    if (!f?.reg) throw new RestoreError(`file id ${id} is not a regular file of files.img`);
    const reg = f.reg;
    const path = this.ghosts.has(id) ? this.ghostPath(id) : reg.name;
    let flags: number;
    switch (purpose) {
      case 'fd':
        flags = reg.flags & ~OPEN_ONLY;
        break;
      case 'read':
        flags = constants.O_RDONLY;
        break;
      case 'write':
        flags = O_RDWR;
        break;
      case 'dir':
        flags = constants.O_RDONLY | O_DIRECTORY;
        break;
    }
    let fd: number;
    try {
      fd = open(path, flags | O_CLOEXEC);
    } catch (e) {
      throw new RestoreError(`cannot open ${reg.name} (file id ${id}): ${(e as Error).message}`);
    }
    this.open.set(key, fd);
    if (purpose === 'fd' && reg.pos !== 0n && (reg.flags & O_PATH) === 0) {
      try {
        lseek(fd, reg.pos, 0);
      } catch (e) {
        throw new RestoreError(`cannot seek ${reg.name} to ${reg.pos}: ${(e as Error).message}`);
      }
    }
    if (purpose !== 'dir' && !this.ghosts.has(id)) this.check(fd, f);
    return fd;
  }

  /** criu-ts's read-only fd of an image file (pages-N.img), opened once. */
  rawFd(path: string): number {
    const key = `raw:${path}`;
    const have = this.open.get(key);
    if (have !== undefined) return have;
    let fd: number;
    try {
      fd = open(path, constants.O_RDONLY | O_CLOEXEC);
    } catch (e) {
      throw new RestoreError(`cannot open ${path}: ${(e as Error).message}`);
    }
    this.open.set(key, fd);
    return fd;
  }

  /** Same inode type as dumped (a path may have been replaced by something else since). */
  private check(fd: number, f: FileEntry): void {
    const reg = f.reg!;
    if (reg.mode === undefined || (reg.flags & O_PATH) !== 0) return;
    const st = fstatSync(fd);
    if ((st.mode & 0o170000) !== (reg.mode & 0o170000))
      throw new RestoreError(`${reg.name} is not the kind of file it was at the dump`);
  }

  /** Recreate an unlinked file from its ghost image; it is unlinked again by unlinkGhosts(). */
  private ghostPath(id: number): string {
    const have = this.ghostPaths.get(id);
    if (have !== undefined) return have;
    const remapId = this.ghosts.get(id)!;
    const name = this.files.get(id)!.reg!.name;
    const entries = this.dir.read('ghost-file-%x', remapId);
    const head = entries[0]?.message as unknown as GhostFileEntry | undefined;
    if (!head) throw new RestoreError(`ghost-file-${remapId.toString(16)}.img is empty`);
    if ((head.mode & 0o170000) !== 0o100000)
      throw new RestoreError(
        `ghost file ${name}: only regular files can be recreated (mode 0${head.mode.toString(8)})`,
      );
    // The old name if it is free (so /proc/PID/fd shows it again), else a name next to it.
    let path = name;
    let fd = -1;
    for (let i = 0; fd < 0; i++) {
      try {
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, head.mode & 0o7777);
      } catch (e) {
        if (!(e instanceof SysError) || e.code !== 'EEXIST' || i > 100)
          throw new RestoreError(`cannot recreate ghost file ${name}: ${(e as Error).message}`);
        path = join(dirname(name), `.criu-ts-ghost.${remapId.toString(16)}.${process.pid}.${i}`);
      }
    }
    try {
      if (head.chunks) {
        for (const e of entries.slice(1)) {
          const c = e.message as { len: bigint; off: bigint };
          const data = e.extra as Buffer;
          writeAt(fd, data, Number(c.off), Number(c.len));
        }
      } else if (entries[0]?.extra) {
        writeAll(fd, entries[0].extra as Buffer);
      }
      if (head.size !== undefined) ftruncate(fd, head.size);
    } finally {
      close(fd);
    }
    this.ghostPaths.set(id, path);
    this.log(`ghost file ${name} recreated as ${path}`);
    return path;
  }

  /** Remove the recreated ghost files (once every task that needs one holds it open). */
  unlinkGhosts(): void {
    for (const p of this.ghostPaths.values()) {
      try {
        unlinkat(-100, p);
      } catch {
        // gone already
      }
    }
    this.ghostPaths.clear();
  }

  /** The steps drivers left for when the restored tree runs (network unlock). */
  afterRestore(): void {
    for (const fn of this.afterRestoreSteps.splice(0)) fn();
  }

  closeAll(): void {
    for (const fd of [...this.open.values(), ...this.extraFds.splice(0)]) {
      try {
        close(fd);
      } catch {
        // best effort
      }
    }
    this.open.clear();
    this.unlinkGhosts();
  }
}

/** criu-ts's terminal: its stdin, when that is one. */
function ownTerminal(): number {
  if (!isatty(0))
    throw new RestoreError(
      '--shell-job: the tasks had a terminal, but criu-ts has none (its stdin is not a terminal)',
    );
  return 0;
}

function writeAt(fd: number, data: Buffer, off: number, len: number): void {
  lseek(fd, off, 0);
  writeAll(fd, data, Math.min(len, data.length));
}
