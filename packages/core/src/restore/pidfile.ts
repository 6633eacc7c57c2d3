// --pidfile: the file holds the root's pid once the tree runs, and never exists empty or half written,
// whatever kills criu-ts when. It is made as an unnamed file (O_TMPFILE) in the pidfile's directory,
// written, and only then given its name with linkat(), which, like CRIU, never replaces a file that is
// there. Where the file system has no O_TMPFILE: a hidden temporary name, linked, then unlinked.

import { linkSync, lstatSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { procPath } from '@criu-ts/bfd';
import {
  AT_FDCWD,
  AT_SYMLINK_FOLLOW,
  close,
  getRandomBytes,
  isSysError,
  linkat,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_TMPFILE,
  O_WRONLY,
  open,
  writeAll,
} from '@criu-ts/sys';
import { RestoreError } from './errors.js';

function refuse(path: string, code: string): never {
  throw new RestoreError(`cannot create pidfile ${path}: ${code}`);
}

/** Refuse a pidfile that exists, or whose directory takes no file, before anything is restored. */
export function checkPidfile(path: string): void {
  try {
    lstatSync(path);
    refuse(path, 'EEXIST');
  } catch (e) {
    if (e instanceof RestoreError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      refuse(path, (e as NodeJS.ErrnoException).code ?? String(e));
  }
  try {
    close(openUnnamed(path));
  } catch (e) {
    if (!isSysError(e, 'EOPNOTSUPP') && !isSysError(e, 'EISDIR')) refuse(path, errnoName(e));
  }
}

function openUnnamed(path: string): number {
  return open(dirname(path), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0o600);
}

function errnoName(e: unknown): string {
  return (e as { code?: string }).code ?? String(e);
}

/** Write `pid` to `path`, which appears whole or not at all (see the file comment). */
export function writePidfile(path: string, pid: number): void {
  const text = Buffer.from(String(pid));
  let fd: number;
  try {
    fd = openUnnamed(path);
  } catch (e) {
    if (!isSysError(e, 'EOPNOTSUPP') && !isSysError(e, 'EISDIR')) refuse(path, errnoName(e));
    writeNamed(path, text);
    return;
  }
  try {
    writeAll(fd, text);
    linkat(AT_FDCWD, procPath('self', 'fd', fd), AT_FDCWD, path, AT_SYMLINK_FOLLOW);
  } catch (e) {
    refuse(path, errnoName(e));
  } finally {
    close(fd);
  }
}

function writeNamed(path: string, text: Buffer): void {
  const tmp = join(dirname(path), `.${basename(path)}.${getRandomBytes(6).toString('hex')}`);
  const fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600);
  try {
    writeAll(fd, text);
    close(fd);
    linkSync(tmp, path);
  } catch (e) {
    refuse(path, errnoName(e));
  } finally {
    unlinkSync(tmp);
  }
}
