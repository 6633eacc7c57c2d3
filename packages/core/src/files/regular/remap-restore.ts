// Files whose name was gone at the dump, restore side (remap-fpath.img):
//  - GHOST: the file is made again from ghost-file-N.img, once per inode, next to its first name as
//    NAME.cr.N.ghost (a regular file with its holes, a FIFO, a symlink or a device node; a directory
//    under NAME itself, as it cannot be linked), with its owner, mode and times, and removed once every
//    task holds it;
//  - LINKED: the file is still on disk under the name the dump linked it to (link_remap.N); that name
//    is removed once the restore succeeded (a failed restore keeps it for another try).
// Either way a remapped file is opened by its own name, as the task had it: that name is linked to the
// remap for the open and removed again right after (NAME.cr_link if something else took NAME since),
// so /proc/PID/fd shows "NAME (deleted)" again and every fd and mapping reaches one inode.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  type FileEntry,
  type GhostFileEntry,
  type ImageDir,
  type RemapFilePathEntry,
  RemapType,
} from '@criu-ts/images';
import {
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  close,
  fchmodat,
  fchownat,
  ftruncate,
  linkat,
  mkdirat,
  mknodat,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_WRONLY,
  open,
  pwrite,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SysError,
  symlinkat,
  unlinkat,
  utimensat,
  writeAll,
} from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';

/** How a files.img entry whose name was gone is reached again. */
export type Remap = { kind: 'ghost'; ghostId: number } | { kind: 'linked'; fileId: number };

/** CRIU's images before remap_type marked ghosts by this bit of remap_id. */
const OLD_GHOST_BIT = 0x80000000;

/**
 * remap-fpath.img, checked: the remaps by file id, and the pids of /proc files of tasks that had died
 * (type PROCFS) that are not pids of the tree (`treeIds`).
 */
export function readRemaps(
  dir: ImageDir,
  files: ReadonlyMap<number, FileEntry>,
  treeIds: ReadonlySet<number>,
): { remaps: Map<number, Remap>; deadPids: Set<number> } {
  const remaps = new Map<number, Remap>();
  const deadPids = new Set<number>();
  if (!dir.has('remap-fpath')) return { remaps, deadPids };
  for (const r of dir.messages<RemapFilePathEntry>('remap-fpath')) {
    let type = r.remap_type;
    let remapId = r.remap_id;
    if (type === undefined) {
      type = remapId & OLD_GHOST_BIT ? RemapType.GHOST : RemapType.LINKED;
      remapId = (remapId & ~OLD_GHOST_BIT) >>> 0;
    }
    if (type === RemapType.PROCFS) {
      if (!treeIds.has(remapId)) deadPids.add(remapId); // a pid of the tree comes back anyway
      continue;
    }
    if (!files.get(r.orig_id)?.reg)
      throw new RestoreError(
        `remap-fpath.img: remap for file ${r.orig_id}, which is not a file of files.img`,
      );
    if (type === RemapType.GHOST) {
      if (!dir.has('ghost-file-%x', remapId))
        throw new RestoreError(`missing image ${dir.fileName('ghost-file-%x', remapId)}`);
      remaps.set(r.orig_id, { kind: 'ghost', ghostId: remapId });
    } else if (type === RemapType.LINKED) {
      const target = files.get(remapId)?.reg;
      if (!target)
        throw new RestoreError(
          `remap-fpath.img: file ${r.orig_id} is linked to file ${remapId}, not in files.img`,
        );
      if (!existsSync(target.name))
        throw new RestoreError(
          `link remap ${target.name} of ${files.get(r.orig_id)!.reg!.name} (file ${r.orig_id}) is missing`,
        );
      remaps.set(r.orig_id, { kind: 'linked', fileId: remapId });
    } else {
      throw new RestoreError(`remap-fpath.img: remap type ${type} of file ${r.orig_id} is not supported`);
    }
  }
  return { remaps, deadPids };
}

/** The remapped files of one restore: ghosts made on first use, names linked while they are opened. */
export class RemappedFiles {
  /** Ghost id -> the path of the ghost made for it. */
  private readonly ghostPaths = new Map<number, string>();
  /** Link remap names to remove once the restore succeeded. */
  private readonly linked = new Set<string>();

  constructor(
    private readonly dir: ImageDir,
    private readonly files: ReadonlyMap<number, FileEntry>,
    private readonly remaps: ReadonlyMap<number, Remap>,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  has(id: number): boolean {
    return this.remaps.has(id);
  }

  /**
   * Run `use` (an open) with the name of file `id` linked to its remap; the name is removed again
   * right after, and so are directories made for it.
   */
  withName<T>(id: number, use: (path: string) => T): T {
    const remap = this.remaps.get(id);
    const name = this.files.get(id)?.reg?.name;
    if (!remap || name === undefined) throw new RestoreError(`file id ${id} has no remap`);
    const source = this.sourceOf(remap, name);
    // A directory has no second name to link: its ghost is made under its own name (or next to it).
    if (remap.kind === 'ghost' && this.ghostDirs.has(remap.ghostId)) return use(source);
    const made = makeParents(name);
    try {
      let path = name;
      try {
        linkat(AT_FDCWD, source, AT_FDCWD, path, 0);
      } catch (e) {
        if (!(e instanceof SysError && e.code === 'EEXIST'))
          throw new RestoreError(`cannot link ${source} to ${name}: ${(e as Error).message}`);
        // Another file took the name since the dump: a name next to it will do (CRIU's .cr_link).
        path = `${name}.cr_link`;
        try {
          linkat(AT_FDCWD, source, AT_FDCWD, path, 0);
        } catch (e2) {
          throw new RestoreError(`cannot link ${source} to ${path}: ${(e2 as Error).message}`);
        }
      }
      try {
        return use(path);
      } finally {
        unlinkat(AT_FDCWD, path);
      }
    } finally {
      removeDirs(made);
    }
  }

  /**
   * An O_PATH fd (the caller's to close) on the ghost of inode `ino` of device `sdev` (the kernel's
   * dev_t, as inotify and fanotify marks hold it), made now if needed; undefined if no ghost is that
   * inode. A watch on an unlinked file is added again on its ghost, as CRIU does.
   */
  ghostInode(sdev: number, ino: bigint): { fd: number; path: string } | undefined {
    for (const [id, remap] of this.remaps) {
      if (remap.kind !== 'ghost') continue;
      const head = this.headOf(remap.ghostId);
      // Both in the kernel's encoding (major << 20 | minor), as CRIU compares them.
      if (head.ino !== ino || head.dev !== sdev) continue;
      const path = this.sourceOf(remap, this.files.get(id)!.reg!.name);
      try {
        return { fd: open(path, O_PATH | O_CLOEXEC), path };
      } catch (e) {
        throw new RestoreError(`cannot open ghost file ${path}: ${(e as Error).message}`);
      }
    }
    return undefined;
  }

  private readonly heads = new Map<number, GhostFileEntry>();

  private headOf(ghostId: number): GhostFileEntry {
    let head = this.heads.get(ghostId);
    if (!head) {
      const reader = this.dir.open('ghost-file-%x', ghostId);
      try {
        head = reader.next()?.message as unknown as GhostFileEntry | undefined;
      } finally {
        reader.close();
      }
      if (!head) throw new RestoreError(`ghost-file-${ghostId.toString(16)}.img is empty`);
      this.heads.set(ghostId, head);
    }
    return head;
  }

  /** Remove the ghosts made (once every task holds its files, or after a failure). */
  unlinkGhosts(): void {
    for (const [id, p] of this.ghostPaths) {
      try {
        unlinkat(AT_FDCWD, p, this.ghostDirs.has(id) ? AT_REMOVEDIR : 0);
      } catch {
        // gone already
      }
    }
    this.ghostPaths.clear();
    this.ghostDirs.clear();
  }

  /** Ghost ids of the directories among the ghosts made (removed with rmdir). */
  private readonly ghostDirs = new Set<number>();

  /** Remove the link remaps the dump made: only once the restore succeeded (they are its images' too). */
  dropLinkRemaps(): void {
    for (const p of this.linked) {
      try {
        unlinkat(AT_FDCWD, p);
        this.log(`link remap ${p} removed`);
      } catch {
        // gone already
      }
    }
    this.linked.clear();
  }

  private sourceOf(remap: Remap, name: string): string {
    if (remap.kind === 'linked') {
      const target = this.files.get(remap.fileId)!.reg!.name;
      this.linked.add(target);
      return target;
    }
    let path = this.ghostPaths.get(remap.ghostId);
    if (path === undefined) {
      path = this.makeGhost(remap.ghostId, name);
      this.ghostPaths.set(remap.ghostId, path);
    }
    return path;
  }

  /** Make ghost `ghostId` next to `name` (as NAME.cr.ID.ghost; one level up while a directory is missing). */
  private makeGhost(ghostId: number, name: string): string {
    const reader = this.dir.open('ghost-file-%x', ghostId);
    try {
      const first = reader.next();
      const head = first?.message as unknown as GhostFileEntry | undefined;
      if (!first || !head) throw new RestoreError(`ghost-file-${ghostId.toString(16)}.img is empty`);
      const isDir = (head.mode & S_IFMT) === S_IFDIR;
      const ghostName = `${name}.cr.${ghostId.toString(16)}.ghost`;
      // A directory under its own name when that is free (a cwd shows it again), as CRIU makes it.
      let path = isDir ? name : ghostName;
      for (;;) {
        try {
          createGhost(path, head, (first.extra as Buffer | undefined) ?? Buffer.alloc(0), reader);
          break;
        } catch (e) {
          if (e instanceof SysError && e.code === 'ENOENT' && dirname(path) !== '/') {
            path = join(dirname(dirname(path)), path.slice(dirname(path).length + 1));
            continue;
          }
          if (isDir && path === name && e instanceof SysError && e.code === 'EEXIST') {
            path = ghostName;
            continue;
          }
          throw new RestoreError(`cannot make ghost file ${path} for ${name}: ${(e as Error).message}`);
        }
      }
      if (isDir) this.ghostDirs.add(ghostId);
      try {
        applyMetadata(path, head);
      } catch (e) {
        unlinkat(AT_FDCWD, path);
        throw new RestoreError(`ghost file ${path}: ${(e as Error).message}`);
      }
      this.log(`ghost file ${ghostId} of ${name} made as ${path}`);
      return path;
    } finally {
      reader.close();
    }
  }
}

type Reader = ReturnType<ImageDir['open']>;

/** The ghost's inode with its contents; throws SysError (ENOENT: no such directory) or RestoreError. */
function createGhost(path: string, head: GhostFileEntry, blob: Buffer, reader: Reader): void {
  const type = head.mode & S_IFMT;
  if (type === S_IFIFO) {
    mknodat(AT_FDCWD, path, head.mode, 0);
    return;
  }
  if (type === S_IFLNK) {
    if (head.symlnk_target === undefined)
      throw new RestoreError(`ghost symlink ${path} has no target in its image (an image from an old CRIU?)`);
    symlinkat(head.symlnk_target, AT_FDCWD, path);
    return;
  }
  if (type === S_IFDIR) {
    mkdirat(AT_FDCWD, path, 0o700);
    return;
  }
  if (type === S_IFCHR || type === S_IFBLK) {
    if (head.rdev === undefined) throw new RestoreError(`ghost device ${path} has no rdev in its image`);
    mknodat(AT_FDCWD, path, head.mode, head.rdev);
    return;
  }
  if (type !== S_IFREG)
    throw new RestoreError(
      `ghost file ${path}: files of mode 0${head.mode.toString(8)} cannot be made again`,
    );
  const fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, head.mode & 0o7777);
  try {
    if (head.chunks) {
      if (head.size === undefined) throw new RestoreError(`ghost file ${path}: chunks without a size`);
      // The size first: what no chunk covers stays a hole.
      ftruncate(fd, head.size);
      for (let e = reader.next(); e; e = reader.next()) {
        const c = e.message as { len: bigint; off: bigint };
        const data = (e.extra as Buffer | undefined) ?? Buffer.alloc(0);
        for (let done = 0; done < data.length; ) {
          done += pwrite(fd, data, data.length - done, c.off + BigInt(done), done);
        }
      }
    } else {
      // Without chunks the contents follow the head as one blob.
      if (blob.length) writeAll(fd, blob);
      if (head.size !== undefined) ftruncate(fd, head.size);
    }
  } catch (e) {
    close(fd);
    unlinkat(AT_FDCWD, path);
    throw e;
  }
  close(fd);
}

/** Owner, then mode (chown clears set-id bits), then times, as CRIU's ghost_apply_metadata. */
function applyMetadata(path: string, head: GhostFileEntry): void {
  fchownat(AT_FDCWD, path, head.uid, head.gid, AT_SYMLINK_NOFOLLOW);
  if ((head.mode & S_IFMT) !== S_IFLNK) fchmodat(AT_FDCWD, path, head.mode & 0o7777);
  if (head.atim && head.mtim) {
    const ns = (t: { tv_sec: bigint | number; tv_usec: bigint | number }) =>
      BigInt(t.tv_sec) * 1_000_000_000n + BigInt(t.tv_usec) * 1000n;
    utimensat(AT_FDCWD, path, ns(head.atim), ns(head.mtim), AT_SYMLINK_NOFOLLOW);
  }
}

/** Make the missing directories above `path`, top first (CRIU's make_parent_dirs_if_need); returns them. */
function makeParents(path: string): string[] {
  const missing: string[] = [];
  for (let d = dirname(path); d !== '/' && d !== '.' && !existsSync(d); d = dirname(d)) missing.push(d);
  const made: string[] = [];
  for (const d of missing.reverse()) {
    try {
      mkdirat(AT_FDCWD, d, 0o777);
    } catch (e) {
      removeDirs(made);
      throw new RestoreError(`cannot make directory ${d}: ${(e as Error).message}`);
    }
    made.push(d);
  }
  return made;
}

/** Remove the directories makeParents made, deepest first. */
function removeDirs(made: string[]): void {
  for (const d of [...made].reverse()) {
    try {
      unlinkat(AT_FDCWD, d, AT_REMOVEDIR);
    } catch {
      // not empty any more, or gone: leave it
    }
  }
}
