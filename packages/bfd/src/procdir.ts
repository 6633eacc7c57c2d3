// A /proc/PID (or /proc/self) directory opened once and used through openat() for every file
// under it, as CRIU caches its /proc/self fd. Holding the directory fd also pins the process
// identity: if the pid dies and is reused, reads through the old fd fail instead of reading
// another process.

import {
  AT_FDCWD,
  close,
  getdents64,
  O_CLOEXEC,
  O_DIRECTORY,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  openat,
  readlinkat,
  SysError,
  write,
} from '@criu-ts/sys';
import { type BfdBuffer, sharedBuffer } from './buffer.js';
import { type CgroupLine, parseCgroup } from './cgroup.js';
import { type FdInfo, parseFdInfo } from './fdinfo.js';
import {
  type MapsEntry,
  parseMaps,
  parseSmaps,
  parseSmapsRollup,
  type SmapsEntry,
  type SmapsRollup,
} from './maps.js';
import { type MountInfo, parseMountInfo } from './mountinfo.js';
import { Pagemap } from './pagemap.js';
import { type ProcStat, parseStat } from './stat.js';
import { type ProcStatus, parseStatus } from './status.js';
import { numericNames, parseChildren } from './task.js';

const DIR_FLAGS = O_PATH | O_DIRECTORY | O_CLOEXEC;
const LIST_FLAGS = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
const FILE_FLAGS = O_RDONLY | O_CLOEXEC;

export interface ProcDirOptions {
  /** the read buffer (default: one buffer shared by every ProcDir) */
  buffer?: BfdBuffer;
  /** the /proc mount (default "/proc") */
  procRoot?: string;
}

/** A parser over the bytes [0, len) of a file, for ProcDir.parse(). */
type Parser<T> = (buf: Buffer, len: number) => T;

export class ProcDir {
  /** pid this directory belongs to, or "self" */
  readonly pid: number | 'self';
  /** "task/TID/" for a thread view, "" otherwise */
  readonly prefix: string;
  readonly buffer: BfdBuffer;
  /** the directory's path, for messages ("/proc/1234") */
  readonly path: string;
  private dirFd: number;
  private readonly owner: ProcDir | undefined;
  /** cached O_RDONLY|O_DIRECTORY fds of subdirectories that are listed (task/, fd/, map_files/) */
  private readonly listFds = new Map<string, number>();
  private pagemapObj: Pagemap | undefined;

  private constructor(
    pid: number | 'self',
    path: string,
    fd: number,
    prefix: string,
    buffer: BfdBuffer,
    owner?: ProcDir,
  ) {
    this.pid = pid;
    this.path = path;
    this.dirFd = fd;
    this.prefix = prefix;
    this.buffer = buffer;
    this.owner = owner;
  }

  /** Open /proc/PID. Throws SysError ENOENT if there is no such process. */
  static open(pid: number, opts: ProcDirOptions = {}): ProcDir {
    const root = opts.procRoot ?? '/proc';
    const path = `${root}/${pid}`;
    const fd = openat(AT_FDCWD, path, DIR_FLAGS);
    return new ProcDir(pid, path, fd, '', opts.buffer ?? sharedBuffer);
  }

  private static selfDir: ProcDir | undefined;

  /** The process's own /proc/self, opened once and cached (CRIU's proc_self fd). */
  static self(): ProcDir {
    if (ProcDir.selfDir === undefined || ProcDir.selfDir.dirFd < 0) {
      const fd = openat(AT_FDCWD, '/proc/self', DIR_FLAGS);
      ProcDir.selfDir = new ProcDir('self', '/proc/self', fd, '', sharedBuffer);
    }
    return ProcDir.selfDir;
  }

  /** The directory fd (O_PATH), for openat() of files this class does not cover. */
  get fd(): number {
    if (this.owner !== undefined) return this.owner.fd;
    if (this.dirFd < 0) throw new Error(`ProcDir ${this.pid}: closed`);
    return this.dirFd;
  }

  get closed(): boolean {
    return this.owner !== undefined ? this.owner.closed : this.dirFd < 0;
  }

  /** A view of /proc/PID/task/TID sharing this directory's fd (close the parent, not the view). */
  task(tid: number): ProcDir {
    const root = this.owner ?? this;
    return new ProcDir(this.pid, root.path, -1, `task/${tid}/`, this.buffer, root);
  }

  /** Close every fd this directory holds. Views made by task() become unusable. */
  close(): void {
    if (this.owner !== undefined) return;
    for (const fd of this.listFds.values()) close(fd);
    this.listFds.clear();
    if (this.pagemapObj !== undefined) {
      close(this.pagemapObj.fd);
      this.pagemapObj = undefined;
    }
    if (this.dirFd >= 0) {
      close(this.dirFd);
      this.dirFd = -1;
    }
    if (ProcDir.selfDir === this) ProcDir.selfDir = undefined;
  }

  /** Human readable path of `name` under this directory (for messages). */
  pathOf(name: string): string {
    return `${this.path}/${this.prefix}${name}`;
  }

  /** openat(dirfd, prefix + name). The caller closes the fd. */
  openFile(name: string, flags = FILE_FLAGS): number {
    try {
      return openat(this.fd, this.prefix + name, flags);
    } catch (e) {
      throw withPath(e, this.pathOf(name));
    }
  }

  /**
   * Read a whole file into the buffer; returns its length (the bytes are buffer.buf[0, len)).
   * `singleRecord`: see BfdBuffer.readFd (true for stat, status, fdinfo: saves one read()).
   */
  read(name: string, singleRecord = false): number {
    const fd = this.openFile(name);
    try {
      return this.buffer.readFd(fd, singleRecord);
    } catch (e) {
      throw withPath(e, this.pathOf(name));
    } finally {
      close(fd);
    }
  }

  /** Read a file and run a parser over its bytes. */
  parse<T>(name: string, parser: Parser<T>, singleRecord = false): T {
    const len = this.read(name, singleRecord);
    return parser(this.buffer.buf, len);
  }

  /** The file's bytes as a view of the shared buffer, valid until the next read. */
  readBytes(name: string): Buffer {
    const len = this.read(name);
    return this.buffer.buf.subarray(0, len);
  }

  readText(name: string): string {
    const len = this.read(name);
    return this.buffer.buf.toString('utf8', 0, len);
  }

  /** Write `text` to a file in one write() (the way /proc files that take a value want it). */
  writeText(name: string, text: string): void {
    const fd = this.openFile(name, O_WRONLY | O_CLOEXEC);
    try {
      write(fd, Buffer.from(text));
    } catch (e) {
      throw withPath(e, this.pathOf(name));
    } finally {
      close(fd);
    }
  }

  /** readlink of an entry ("exe", "cwd", "fd/3", "map_files/...") */
  readlink(name: string): string {
    return readlinkat(this.fd, this.prefix + name);
  }

  /** Names in a subdirectory ("task", "fd", "map_files", "ns" ...), from a cached directory fd. */
  list(dir: string): string[] {
    const root = this.owner ?? this;
    const key = this.prefix + dir;
    let fd = root.listFds.get(key);
    if (fd === undefined) {
      fd = openat(this.fd, key, LIST_FLAGS);
      root.listFds.set(key, fd);
    }
    try {
      return getdents64(fd);
    } catch (e) {
      throw withPath(e, this.pathOf(dir));
    }
  }

  stat(): ProcStat {
    return this.parse('stat', parseStat, true);
  }

  status(): ProcStatus {
    return this.parse('status', parseStatus, true);
  }

  maps(): MapsEntry[] {
    return this.parse('maps', parseMaps);
  }

  smaps(): SmapsEntry[] {
    return this.parse('smaps', parseSmaps);
  }

  smapsRollup(): SmapsRollup {
    return this.parse('smaps_rollup', parseSmapsRollup);
  }

  mountinfo(): MountInfo[] {
    return this.parse('mountinfo', parseMountInfo);
  }

  /** The cgroup file: one line per hierarchy (see parseCgroup). */
  cgroups(): CgroupLine[] {
    return parseCgroup(this.readText('cgroup'));
  }

  fdinfo(fd: number): FdInfo {
    return this.parse(`fdinfo/${fd}`, parseFdInfo, true);
  }

  /** Thread ids from task/, ascending. */
  tasks(): number[] {
    return numericNames(this.list('task'));
  }

  /** Children of thread `tid` (default: the main thread, or this task view's thread). */
  children(tid?: number): number[] {
    if (tid === undefined) {
      if (this.prefix !== '') return this.parse('children', parseChildren);
      tid = this.pid === 'self' ? process.pid : this.pid;
    }
    return this.parse(`task/${tid}/children`, parseChildren);
  }

  /** Children of every thread (a process's children may belong to any of its threads). */
  allChildren(): number[] {
    const out: number[] = [];
    for (const tid of this.tasks()) {
      try {
        out.push(...this.children(tid));
      } catch (e) {
        if (!isGone(e)) throw e;
      }
    }
    return out;
  }

  /** Open fd numbers from fd/, ascending. */
  fds(): number[] {
    return numericNames(this.list('fd'));
  }

  /** Names in map_files/ ("start-end" in hex, as in maps). */
  mapFiles(): string[] {
    return this.list('map_files');
  }

  /** The pagemap file of this process, opened on first use and kept until close(). */
  pagemap(): Pagemap {
    const root = this.owner ?? this;
    if (root.pagemapObj === undefined) root.pagemapObj = new Pagemap(openat(root.fd, 'pagemap', FILE_FLAGS));
    return root.pagemapObj;
  }
}

/** Add the /proc path to a SysError that only knows "fd N". */
function withPath(e: unknown, path: string): unknown {
  if (e instanceof SysError) return new SysError(e.call, e.errno, path);
  return e;
}

/** True for the errors a vanished process or thread gives (ENOENT, ESRCH). */
export function isGone(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  return code === 'ENOENT' || code === 'ESRCH';
}

/** Pids in /proc, ascending. */
export function listPids(procRoot = '/proc'): number[] {
  const fd = openat(AT_FDCWD, procRoot, LIST_FLAGS);
  try {
    return numericNames(getdents64(fd));
  } finally {
    close(fd);
  }
}
