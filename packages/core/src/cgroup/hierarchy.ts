// A cgroup hierarchy reached through one directory fd, the way CRIU reaches them through its yard:
// either a detached mount of the hierarchy's root made for us (fsopen/fsmount: nothing appears in the
// mount table, named v1 hierarchies that are mounted nowhere are reachable too), or a directory of a
// yard the user mounted them in (--cgroup-yard DIR: DIR/cpu, DIR/zdtmtst for name=zdtmtst, DIR/unified
// for cgroup2).

import {
  AT_FDCWD,
  close,
  DT_DIR,
  fchmodat,
  fchownat,
  fsconfigCreate,
  fsconfigSet,
  fsmount,
  fsopen,
  fstat,
  getdents64Entries,
  mkdirat,
  moveMountFd,
  O_CLOEXEC,
  O_DIRECTORY,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  openat,
  read,
  type Stat,
  SysError,
  write,
} from '@criu-ts/sys';

/** A hierarchy's name in /proc/PID/cgroup ("cpu,cpuacct", "name=zdtmtst", "" for cgroup2) split at ','. */
export type CNames = readonly string[];

export const splitNames = (name: string): string[] => (name === '' ? [''] : name.split(','));

/** Whether every one of `cnames` is a name of `name` (CRIU's cgroup_contains). */
export function namesMatch(cnames: CNames, name: string): boolean {
  if (cnames.length === 1 && cnames[0] === '') return name === '';
  const have = new Set(name.split(','));
  return cnames.length > 0 && cnames.every((c) => have.has(c));
}

/** The directory a yard keeps a hierarchy in: names without "name=", "unified" for cgroup2. */
export const yardDir = (cnames: CNames): string =>
  cnames.map((n) => (n.startsWith('name=') ? n.slice(5) : n === '' ? 'unified' : n)).join(',');

/** "/a/b" -> "a/b", "/" -> "." (paths inside a hierarchy, relative to its root). */
export const rel = (path: string): string => path.replace(/^\/+/, '') || '.';

export class Hierarchy {
  private constructor(
    readonly cnames: CNames,
    /** A directory fd of the hierarchy's root. */
    private fd: number,
    readonly where: string,
  ) {}

  get v2(): boolean {
    return this.cnames.length === 1 && this.cnames[0] === '';
  }

  /**
   * The hierarchy of `cnames`: from `yard` when given (mounted there first when `mountInYard` and
   * it is missing, as CRIU does at restore), else a detached mount of our own.
   */
  static open(cnames: CNames, yard?: string, mountInYard = false): Hierarchy {
    if (yard !== undefined) {
      const dir = `${yard}/${yardDir(cnames)}`;
      try {
        return new Hierarchy(cnames, openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dir);
      } catch (e) {
        if (!mountInYard || !(e instanceof SysError) || e.code !== 'ENOENT') throw e;
      }
      mkdirat(AT_FDCWD, dir, 0o700);
      const m = Hierarchy.mount(cnames);
      try {
        moveMountFd(m, AT_FDCWD, dir);
      } finally {
        close(m);
      }
      return new Hierarchy(cnames, openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dir);
    }
    const m = Hierarchy.mount(cnames);
    try {
      const fd = openat(m, '.', O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      return new Hierarchy(cnames, fd, `cgroup ${cnames.join(',') || '(v2)'}`);
    } finally {
      close(m); // the directory fd keeps the detached mount alive
    }
  }

  /** A detached mount of the hierarchy's root (fsmount fd). */
  private static mount(cnames: CNames): number {
    const v2 = cnames.length === 1 && cnames[0] === '';
    const fsfd = fsopen(v2 ? 'cgroup2' : 'cgroup');
    try {
      if (!v2) {
        // A named hierarchy without controllers: "none", or the kernel makes no new one (EINVAL).
        if (cnames.every((n) => n.startsWith('name='))) fsconfigSet(fsfd, 'none');
        for (const n of cnames) {
          if (n.startsWith('name=')) fsconfigSet(fsfd, 'name', n.slice(5));
          else fsconfigSet(fsfd, n);
        }
      }
      fsconfigCreate(fsfd);
      return fsmount(fsfd);
    } finally {
      close(fsfd);
    }
  }

  close(): void {
    if (this.fd >= 0) close(this.fd);
    this.fd = -1;
  }

  /** "cgroup name=zdtmtst:/a/b" or "DIR/zdtmtst/a/b", for messages. */
  show(path: string): string {
    return `${this.where}${path.startsWith('/') ? '' : '/'}${path}`;
  }

  exists(path: string): boolean {
    try {
      close(openat(this.fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      return true;
    } catch (e) {
      if (e instanceof SysError && e.code === 'ENOENT') return false;
      throw e;
    }
  }

  /** stat of a directory or file under the root. */
  stat(path: string): Stat {
    const fd = openat(this.fd, rel(path), O_RDONLY | O_CLOEXEC);
    try {
      return fstat(fd);
    } finally {
      close(fd);
    }
  }

  /** The subdirectories of `path`, in the kernel's order. */
  subdirs(path: string): string[] {
    const fd = openat(this.fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    try {
      return getdents64Entries(fd)
        .filter((e) => e.type === DT_DIR)
        .map((e) => e.name);
    } finally {
      close(fd);
    }
  }

  /** A file's text (as CRIU reads one: up to 1023 bytes) and its stat, or undefined when it is absent. */
  readFile(path: string): { text: string; st: Stat } | undefined {
    let fd: number;
    try {
      fd = openat(this.fd, rel(path), O_RDONLY | O_CLOEXEC);
    } catch (e) {
      if (e instanceof SysError && e.code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const st = fstat(fd);
      const buf = Buffer.alloc(1023);
      const n = read(fd, buf);
      return { text: buf.toString('utf8', 0, n), st };
    } finally {
      close(fd);
    }
  }

  /**
   * One write() of `text` (the kernel parses one value, or one line, per write). A function gets the
   * file's current text first (read from the same open file) and returns what to write.
   */
  writeFile(path: string, text: string | ((before: string) => string)): void {
    const fd = openat(this.fd, rel(path), (typeof text === 'string' ? O_WRONLY : O_RDWR) | O_CLOEXEC);
    try {
      let value: string;
      if (typeof text === 'string') value = text;
      else {
        const buf = Buffer.alloc(1023);
        value = text(buf.toString('utf8', 0, read(fd, buf)));
      }
      const b = Buffer.from(value);
      const n = write(fd, b);
      if (n !== b.length) throw new SysError('write', 5 /* EIO */, `short write to ${this.show(path)}`);
    } finally {
      close(fd);
    }
  }

  /** mkdir -p of `path` (0755), as CRIU's mkdirpat. */
  mkdirs(path: string): void {
    let at = '';
    for (const part of rel(path).split('/')) {
      if (part === '' || part === '.') continue;
      at = at ? `${at}/${part}` : part;
      try {
        mkdirat(this.fd, at, 0o755);
      } catch (e) {
        if (!(e instanceof SysError && e.code === 'EEXIST')) throw e;
      }
    }
  }

  /** chown then chmod, as CRIU's cr_fchperm. */
  chperm(path: string, perms: { mode: number; uid: number; gid: number }): void {
    fchownat(this.fd, rel(path), perms.uid, perms.gid);
    fchmodat(this.fd, rel(path), perms.mode & 0o7777);
  }
}
