// Terminals at restore, for the kind that is simply opened again by its path: the system console
// (/dev/console, major 5 minor 1). It is one device shared with the whole system, so its settings
// (termios, window size) are not the task's to restore; reopening it with the task's flags is what CRIU
// does too. The shell's terminal (--shell-job) never gets here: files/node-files.ts hands out criu-ts's
// own terminal for it. Ptys, virtual consoles and serial lines are refused at plan time, by check().
import { type FileEntry, type ImageDir, type TtyInfoEntry, TtyType } from '@criu-ts/images';
import { O_CLOEXEC, O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, open } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import type { FdCheckContext, FdRestoreContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';

/** tty_type (tty.proto), as files/tty/dump.ts writes it. */
/** Flags that only matter when a file is created, or that criu-ts sets itself. */
const OPEN_ONLY = O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC;

function ttyInfo(dir: ImageDir, id: number): TtyInfoEntry | undefined {
  if (!dir.has('tty-info')) return undefined;
  return dir.messages<TtyInfoEntry>('tty-info').find((i) => i.id === id);
}

/** The path of a console's tty entry (its regf_id entry), or a RestoreError saying why it is not one. */
function consolePath(entry: FileEntry, ctx: FdCheckContext): string {
  const tty = entry.tty;
  if (!tty) throw new RestoreError(`files.img: file ${entry.id} of type TTY has no tty`);
  const name = tty.regf_id === undefined ? undefined : ctx.files.get(tty.regf_id)?.reg?.name;
  if (!name)
    throw new RestoreError(`files.img: tty ${entry.id} regf_id ${tty.regf_id} is not a regular file entry`);
  const info = ttyInfo(ctx.dir, tty.tty_info_id);
  if (!info)
    throw new RestoreError(`tty-info.img has no terminal ${tty.tty_info_id} (tty ${entry.id}, ${name})`);
  if (info.type !== TtyType.CONSOLE)
    throw new RestoreError(
      `files.img: tty ${entry.id} is the terminal ${name}: only a shell's terminal (--shell-job) or /dev/console can be restored yet`,
    );
  return name;
}

export const consoleRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.TTY,
  kind: 'console',
  check(entry: FileEntry, ctx: FdCheckContext) {
    consolePath(entry, ctx);
  },
  open(entry: FileEntry, ctx: FdRestoreContext) {
    const path = consolePath(entry, ctx);
    try {
      // O_NOCTTY: the console must never become criu-ts's controlling terminal on the way.
      return open(path, (entry.tty!.flags & ~OPEN_ONLY) | O_NOCTTY | O_CLOEXEC);
    } catch (e) {
      throw new RestoreError(`cannot open ${path} (tty ${entry.id}): ${(e as Error).message}`);
    }
  },
};
