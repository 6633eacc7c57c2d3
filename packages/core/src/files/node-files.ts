// Files, opened once by criu-ts itself and pulled into the tasks with pidfd_getfd(2).
//
// Each files.img entry is one open file description: it is opened here once (path, flags, position),
// and every task that had it gets a duplicate of this very description (pidfd_getfd(criu-ts, fd)), so
// fds that shared a description before the dump (dup, fork) share one again, with one position.
// Mapped files, the exe, cwd and root are opened the same way. Files whose name was gone at the dump
// (unlinked: ghost files; linked back: link remaps) are opened through files/regular/remap-restore.ts.

import { constants, fstatSync } from 'node:fs';
import type { FileEntry, ImageDir } from '@criu-ts/images';
import { close, isTerminal, O_CLOEXEC, O_DIRECTORY, O_PATH, O_RDWR, open } from '@criu-ts/sys';
import { type Connection, type ImagesLock, liftImagesLock } from '../net-lock/index.js';
import { RestoreError } from '../restore/errors.js';
import type { RestorePlan } from '../restore/plan.js';
import { restoreDriverFor } from './drivers.js';
import { hasOwner, ownerOfEntry, setOwner } from './fown.js';
import { RemappedFiles } from './regular/remap-restore.js';
import type { FdRestoreContext, LateOpen } from './restore-driver.js';

export type Purpose = 'fd' | 'read' | 'write' | 'dir';

/** The fds criu-ts holds for the restore, by file id and purpose. */
export class NodeFiles {
  private readonly open = new Map<string, number>();
  private readonly remapped: RemappedFiles;
  private readonly sharedObjects = new Map<string, unknown>();
  private readonly extraFds: number[] = [];
  private readonly afterRestoreSteps: Array<() => void> = [];
  /** Steps for a failed restore; dropped once the tree runs (afterRestore). */
  private readonly ifFailedSteps: Array<() => void> = [];
  /** The connections the dump locked, restored in repair mode. */
  private readonly lockedConnections: Connection[] = [];
  private readonly networkLock: ImagesLock;
  private readonly driverCtx: FdRestoreContext;
  /** How a helper process is made for a 'dying' file (the restorer's, once its stub runs). */
  private helperMaker: (<T>(use: (pid: number) => T) => T) | undefined;

  private readonly dir: ImageDir;
  private readonly files: Map<number, FileEntry>;
  /** TTY file ids that get criu-ts's own terminal (see plan.ts). */
  private readonly inheritTty: Set<number>;

  constructor(
    plan: Pick<RestorePlan, 'dir' | 'files' | 'remaps' | 'inheritTty' | 'networkLock' | 'tcpClose'>,
    private readonly log: (msg: string) => void = () => {},
  ) {
    this.dir = plan.dir;
    this.files = plan.files;
    this.remapped = new RemappedFiles(plan.dir, plan.files, plan.remaps, log);
    this.inheritTty = plan.inheritTty;
    this.networkLock = plan.networkLock;
    this.driverCtx = {
      dir: plan.dir,
      files: plan.files,
      locked: (c) => {
        this.lockedConnections.push(c);
      },
      tcpClose: plan.tcpClose === true,
      fd: (id) => this.fd(id, 'fd'),
      openPath: (id, flags) => this.openPath(id, flags),
      ghostInode: (sdev, ino) => this.remapped.ghostInode(sdev, ino),
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
      ifRestoreFails: (fn) => {
        this.ifFailedSteps.push(fn);
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
    // As a task's fd: by the driver of its kind (files/drivers.ts); regular files are checked below.
    const driver = f && purpose === 'fd' ? restoreDriverFor(f.type) : undefined;
    if (f && driver) {
      const fd = driver.open(f, this.driverCtx);
      this.open.set(key, fd);
      if (f.reg && !this.remapped.has(id)) this.check(fd, f);
      return fd;
    }
    if (!f?.reg || purpose === 'fd')
      throw new RestoreError(`file id ${id} is not a regular file of files.img`);
    let flags: number;
    switch (purpose) {
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
    const fd = this.openPath(id, flags);
    this.open.set(key, fd);
    if (purpose !== 'dir' && !this.remapped.has(id)) this.check(fd, f);
    return fd;
  }

  /** A new fd (criu-ts's) of REG entry `id`, opened by its name with `flags`, through its remap if it has one. */
  openPath(id: number, flags: number): number {
    const reg = this.files.get(id)?.reg;
    if (!reg) throw new RestoreError(`file id ${id} is not a regular file of files.img`);
    const openIt = (path: string) => {
      try {
        return open(path, flags | O_CLOEXEC);
      } catch (e) {
        throw new RestoreError(`cannot open ${reg.name} (file id ${id}): ${(e as Error).message}`);
      }
    };
    return this.remapped.has(id) ? this.remapped.withName(id, openIt) : openIt(reg.name);
  }

  /** criu-ts's read-only fd of an image file (pages-N.img), opened once. */
  rawFd(path: string): number {
    const key = `raw:${path}`;
    const have = this.open.get(key);
    if (have !== undefined) return have;
    let fd: number;
    try {
      // An image: no symlink followed, no wait on a FIFO, a regular file only.
      fd = open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | O_CLOEXEC);
    } catch (e) {
      throw new RestoreError(`cannot open ${path}: ${(e as Error).message}`);
    }
    if (!fstatSync(fd).isFile()) {
      close(fd);
      throw new RestoreError(`${path} is not a regular file: not read`);
    }
    this.open.set(key, fd);
    return fd;
  }

  /** criu-ts's read-only fd of /dev/null, opened once (AIO rings are moved on with reads of it). */
  devNull(): number {
    const have = this.open.get('dev-null');
    if (have !== undefined) return have;
    let fd: number;
    try {
      fd = open('/dev/null', constants.O_RDONLY | O_CLOEXEC);
    } catch (e) {
      throw new RestoreError(`cannot open /dev/null: ${(e as Error).message}`);
    }
    this.open.set('dev-null', fd);
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

  /** Remove the ghost files made (once every task that needs one holds it open). */
  unlinkGhosts(): void {
    this.remapped.unlinkGhosts();
  }

  /**
   * The owner and signal for SIGIO of every file opened as a task's fd (fown: F_SETOWN_EX, F_SETSIG), set
   * on criu-ts's copy of the description, which the tasks share: once every task and thread exists, since
   * the owner is one of them (or a process outside the tree).
   */
  restoreOwners(): void {
    for (const [key, fd] of this.open) {
      const [idText, purpose] = key.split(':');
      if (purpose !== 'fd') continue;
      const f = this.files.get(Number(idText));
      const own = f && ownerOfEntry(f, this.files);
      if (!hasOwner(own)) continue;
      let note: string | undefined;
      try {
        note = setOwner(fd, own);
      } catch (e) {
        throw new RestoreError(`file id ${idText}: cannot set its owner for SIGIO: ${(e as Error).message}`);
      }
      if (note) this.log(`file id ${idText}: ${note}: it has no owner now`);
    }
  }

  /**
   * Once the restored tree runs: the steps drivers left, then the network lock of the images' dump is
   * lifted (whichever tool made it; see net-lock/); link remaps go.
   */
  afterRestore(): void {
    this.ifFailedSteps.length = 0;
    for (const fn of this.afterRestoreSteps.splice(0)) fn();
    const trouble = liftImagesLock(this.networkLock, this.lockedConnections.splice(0));
    if (trouble) this.log(`network lock not lifted: ${trouble}`);
    this.remapped.dropLinkRemaps();
  }

  closeAll(): void {
    for (const fn of this.ifFailedSteps.splice(0)) {
      try {
        fn();
      } catch (e) {
        this.log(`cleanup of a failed restore: ${(e as Error).message}`);
      }
    }
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
  if (!isTerminal(0))
    throw new RestoreError(
      '--shell-job: the tasks had a terminal, but criu-ts has none (its stdin is not a terminal)',
    );
  return 0;
}
