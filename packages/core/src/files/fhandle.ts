import { ProcDir, procPath } from '@criu-ts/bfd';
import type { FhEntry } from '@criu-ts/images';
import {
  close,
  fstat,
  isSysError,
  makeDev,
  O_CLOEXEC,
  O_DIRECTORY,
  O_PATH,
  open,
  openByHandleAt,
  readlink,
  stat,
} from '@criu-ts/sys';
import { type IrmapOptions, irmapLookup } from './irmap.js';

/** CRIU's fh_entry carries at least this many u64 words of handle (zero padded). */
const FH_MIN_WORDS = 16;
/** MAX_HANDLE_SZ */
const MAX_HANDLE_BYTES = 128;

/** An inode found again: an O_PATH fd on it (the caller closes it) and the path the kernel gives it. */
export interface FoundInode {
  fd: number;
  path: string;
}

const kernelDev = (major: number, minor: number) => ((major << 20) | minor) >>> 0;

/** "major:minor" of a kernel dev_t, for messages. */
export const devName = (sdev: number) => `${sdev >>> 20}:${sdev & 0xfffff}`;

/** The path of /proc/self/fd/N, for a watch syscall to follow to the inode of fd N. */
export const procFdPath = (fd: number) => procPath('self', 'fd', fd);

/** A handle as fh_entry keeps it: its bytes as little-endian u64 words, at least 16 of them. */
function fhEntry(type: number, handle: Buffer, path?: string): FhEntry {
  const words = Math.max(FH_MIN_WORDS, Math.ceil(handle.length / 8));
  const padded = Buffer.alloc(words * 8);
  handle.copy(padded);
  const out: FhEntry = {
    bytes: handle.length,
    type,
    handle: Array.from({ length: words }, (_, i) => padded.readBigUInt64LE(i * 8)),
  };
  if (path !== undefined) out.path = path;
  return out;
}

/** The handle bytes of an fh_entry, or undefined when its size is impossible. */
export function fhBytes(fh: FhEntry): Buffer | undefined {
  const words = fh.handle ?? [];
  if (fh.bytes <= 0 || fh.bytes > MAX_HANDLE_BYTES || words.length * 8 < fh.bytes) return undefined;
  const b = Buffer.alloc(words.length * 8);
  for (const [i, w] of words.entries()) b.writeBigUInt64LE(BigInt.asUintN(64, w), i * 8);
  return b.subarray(0, fh.bytes);
}

/** Mount points of file system `sdev` in our mount namespace, mounts of its whole tree first. */
export function mountsOf(sdev: number): string[] {
  return ProcDir.self()
    .mountinfo()
    .filter((m) => kernelDev(m.major, m.minor) === sdev >>> 0)
    .sort((a, b) => Number(b.root === '/') - Number(a.root === '/'))
    .map((m) => m.mountpoint);
}

/** Where mount `mntId` of our mount namespace is mounted, and its file system's dev_t. */
export function mountById(mntId: number): { mountpoint: string; sdev: number } | undefined {
  const m = ProcDir.self()
    .mountinfo()
    .find((x) => x.mntId === mntId);
  return m && { mountpoint: m.mountpoint, sdev: kernelDev(m.major, m.minor) };
}

/** The inode `handle` names on file system `sdev`. Throws an Error saying why it cannot be opened. */
function openHandle(sdev: number, type: number, handle: Buffer): FoundInode {
  const mounts = mountsOf(sdev);
  if (mounts.length === 0) throw new Error(`no mount of device ${devName(sdev)} here`);
  let last: unknown;
  for (const mp of mounts) {
    let mfd: number;
    try {
      // Not O_PATH: open_by_handle_at refuses one (EBADF).
      mfd = open(mp, O_DIRECTORY | O_CLOEXEC);
    } catch (e) {
      last = e;
      continue;
    }
    try {
      const fd = openByHandleAt(mfd, type, handle, O_PATH | O_CLOEXEC);
      return { fd, path: readlink(procFdPath(fd)) };
    } catch (e) {
      last = e;
      // ESTALE: the inode is gone. Anything else may work through another mount of the file system.
      if (isSysError(e, 'ESTALE')) break;
    } finally {
      close(mfd);
    }
  }
  throw new Error(
    `cannot open its file handle: ${(last as Error | undefined)?.message ?? 'no usable mount'}`,
  );
}

/**
 * Dump: the fh_entry of a handle, with the path its inode has now (opening it proves restore can).
 * With --force-irmap (CRIU's), a handle that cannot be opened, or whose name no longer leads to its
 * inode (that name was unlinked, a hard link lives on), gets a path found by scanning (files/irmap.ts).
 */
export function handleEntryNow(
  sdev: number,
  type: number,
  handle: Buffer,
  ino: bigint,
  irmap?: IrmapOptions,
): FhEntry {
  let found: FoundInode | undefined;
  let why = '';
  try {
    found = openHandle(sdev, type, handle);
    close(found.fd);
    if (!irmap?.force || leadsTo(found.path, sdev, ino)) return fhEntry(type, handle, found.path);
    why = `its name ${found.path} no longer leads to it`;
  } catch (e) {
    if (!irmap?.force) throw e;
    why = (e as Error).message;
  }
  const path = irmapLookup(makeDev(sdev >>> 20, sdev & 0xfffff), ino, irmap.scanPaths);
  if (!path) throw new Error(`${why}, and --force-irmap found no other path (add --irmap-scan-path DIR)`);
  return fhEntry(type, handle, path);
}

function leadsTo(path: string, sdev: number, ino: bigint): boolean {
  try {
    const st = stat(path);
    return st.ino === ino && kernelDev(st.devMajor, st.devMinor) === sdev >>> 0;
  } catch {
    return false;
  }
}

/**
 * Restore: the inode an fh_entry names - by its handle, or else by the path it had at the dump, if that
 * path still leads to the same inode number on the same file system. Throws an Error saying why neither
 * works.
 */
export function openWatchedInode(sdev: number, ino: bigint, fh: FhEntry): FoundInode {
  const handle = fhBytes(fh);
  let why = `malformed file handle (${fh.bytes} bytes)`;
  if (handle) {
    try {
      return openHandle(sdev, fh.type, handle);
    } catch (e) {
      why = (e as Error).message;
    }
  }
  if (!fh.path) throw new Error(why);
  return openSameInode(fh.path, sdev, ino, why);
}

function openSameInode(path: string, sdev: number, ino: bigint, why: string): FoundInode {
  let fd: number;
  try {
    fd = open(path, O_PATH | O_CLOEXEC);
  } catch (e) {
    throw new Error(`${why}; ${path}: ${(e as Error).message}`);
  }
  let same = false;
  try {
    const st = fstat(fd);
    same = st.ino === ino && kernelDev(st.devMajor, st.devMinor) === sdev >>> 0;
  } finally {
    if (!same) close(fd);
  }
  if (!same) throw new Error(`${why}; ${path} is another inode now`);
  return { fd, path };
}
