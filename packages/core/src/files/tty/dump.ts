import { copyFd } from '@criu-ts/compel';
import type { TermiosEntry, TtyInfoEntry } from '@criu-ts/images';
import { close, ioctl, isSysError, TCGETS, TIOCGLCKTRMIOS, TIOCGPTN, TIOCGWINSZ } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { regularFileEntry } from '../regular/dump.js';
import { FD_TYPE, type FdDumpContext, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

// tty_type values (tty.proto) and the index CRIU gives terminals that are not ptys.
const TTY = { PTY: 1, CONSOLE: 2, VT: 3, CTTY: 4, SERIAL: 6 } as const;
const INDEX = { CONSOLE: 1002, VT: 1004, CTTY: 1006, SERIAL: 1010 } as const;
const MAX_PTY_INDEX = 1000;

// ioctl requests (asm-generic/ioctls.h).
/** struct termios as TCGETS writes it: four u32 flags, c_line, c_cc[19]. */
const TERMIOS_SIZE = 36;
const TERMIOS_NCC = 19;

interface TtyKind {
  type: number;
  master: boolean;
  index: number;
}

/**
 * Which terminal driver a device number belongs to, as CRIU tells them apart. `localFd` is only called
 * for a pty master (its index needs an ioctl); without one the index is left -1.
 */
function ttyKind(file: OpenFile, localFd?: () => number): TtyKind | undefined {
  const rdev = file.stat.rdev;
  const major = Number((rdev >> 8n) & 0xfffn);
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & 0xfff00n));
  if (major === 5 && minor === 0) return { type: TTY.CTTY, master: false, index: INDEX.CTTY };
  if (major === 5 && minor === 1) return { type: TTY.CONSOLE, master: false, index: INDEX.CONSOLE };
  if ((major === 5 && minor === 2) || (major >= 128 && major <= 135)) {
    if (!localFd) return { type: TTY.PTY, master: true, index: -1 };
    const b = Buffer.alloc(4);
    ioctl(localFd(), TIOCGPTN, b);
    return { type: TTY.PTY, master: true, index: b.readUInt32LE(0) };
  }
  if (major >= 136 && major <= 143) {
    const index = Number(file.link.slice(file.link.lastIndexOf('/') + 1));
    return { type: TTY.PTY, master: false, index };
  }
  if (major === 4 && minor >= 1 && minor <= 63) return { type: TTY.VT, master: false, index: INDEX.VT };
  if (major === 188 || major === 204) return { type: TTY.SERIAL, master: false, index: INDEX.SERIAL };
  return undefined;
}

function termios(raw: Buffer): TermiosEntry {
  return {
    c_iflag: raw.readUInt32LE(0),
    c_oflag: raw.readUInt32LE(4),
    c_cflag: raw.readUInt32LE(8),
    c_lflag: raw.readUInt32LE(12),
    c_line: raw.readUInt8(16),
    c_ispeed: 0,
    c_ospeed: 0,
    c_cc: [...raw.subarray(17, 17 + TERMIOS_NCC)],
  };
}

/** The session and foreground group of a terminal, as the task that holds it sees them. */
export type TtySessionReader = (pid: number, fd: number) => { sid: number; pgrp: number };

/** What the terminal driver needs of the task being dumped (FdDumpContext.tty). */
export interface TtyDumpContext {
  /** --shell-job: a pty slave whose master is outside the tree is the caller's terminal. */
  shellJob: boolean;
  session: TtySessionReader;
  /** tty-info.img being built for the whole dump. */
  infos: TtyInfoEntry[];
  /** The tty-info ids added while dumping this task's fds. */
  seenInfo: Set<number>;
}

/** Whether a file is a terminal (files/kinds.ts): a character device of a terminal driver. */
export function isTerminal(file: OpenFile): boolean {
  return (file.stat.mode & 0o170000n) === 0o020000n && ttyKind(file) !== undefined;
}

/**
 * Terminals: the tty file (files.img, type TTY, pointing at a regular file entry for its
 * path) and, once per terminal, tty-info.img with its settings (termios, locked termios,
 * window size, session and foreground group). A pty slave whose master is not in the tree
 * is the shell's terminal: allowed only with --shell-job, as CRIU does.
 */
export const ttyDumpDriver: FdDumpDriver = {
  kind: 'terminal',
  dump(file: OpenFile, files: FileTable, ctx: FdDumpContext) {
    const opts = ctx.tty;
    let local = -1;
    const localFd = () => {
      if (local < 0) local = copyFd(file.pid, file.fd);
      return local;
    };
    try {
      const kind = ttyKind(file, localFd);
      if (!kind) throw new DumpError(`pid ${file.pid} fd ${file.fd}: unknown terminal ${file.link}`);
      if (kind.type === TTY.PTY && kind.index > MAX_PTY_INDEX) {
        throw new DumpError(`pid ${file.pid} fd ${file.fd}: pty index ${kind.index} is too big`);
      }
      // A pty pair the tree holds (a tmux server and its panes, `script`) cannot be restored yet:
      // refused here, not after the tree is killed. A slave alone is the shell's terminal.
      if (kind.type === TTY.PTY && kind.master)
        throw new DumpError(
          `pid ${file.pid} fd ${file.fd}: the master of pty ${kind.index} (${file.link}): ptys other than the shell's terminal are not supported yet`,
        );
      if (kind.type !== TTY.PTY && kind.type !== TTY.CONSOLE)
        throw new DumpError(
          `pid ${file.pid} fd ${file.fd}: the terminal ${file.link}: only the shell's terminal (--shell-job) and /dev/console can be restored yet`,
        );
      if (kind.type === TTY.PTY && !opts.shellJob) {
        throw new DumpError(
          `pid ${file.pid} fd ${file.fd} is the terminal ${file.link}: a shell's terminal needs --shell-job (a pty whose master the tree holds is not supported yet)`,
        );
      }
      const infoId = (kind.index << 1) + (kind.master ? 1 : 0);
      if (!opts.seenInfo.has(infoId)) {
        opts.seenInfo.add(infoId);
        opts.infos.push(ttyInfo(file, kind, infoId, localFd, opts.session));
      }
      const key = files.descriptionKey(file);
      return {
        id: files.add(key, (id) => {
          const fown = files.owner(file);
          const regfId = regularFileEntry(files, file.link, file.stat, {
            key: `${key}:path`,
            flags: file.flags,
            fown,
          });
          return {
            id,
            type: FD_TYPE.TTY,
            tty: {
              id,
              tty_info_id: infoId,
              flags: file.flags,
              fown,
              regf_id: regfId,
            },
          };
        }),
        type: FD_TYPE.TTY,
      };
    } finally {
      if (local >= 0) close(local);
    }
  },
};

function ttyInfo(
  file: OpenFile,
  kind: TtyKind,
  id: number,
  localFd: () => number,
  session: TtySessionReader,
): TtyInfoEntry {
  const { sid, pgrp } = session(file.pid, file.fd);
  const info: TtyInfoEntry = {
    id,
    type: kind.type,
    locked: false,
    exclusive: false,
    packet_mode: false,
    sid,
    pgrp,
    rdev: Number(file.stat.rdev),
    dev: Number(file.stat.dev),
    uid: Number(file.stat.uid),
    gid: Number(file.stat.gid),
  };
  if (kind.type === TTY.PTY) info.pty = { index: kind.index };
  try {
    const t = Buffer.alloc(TERMIOS_SIZE);
    ioctl(localFd(), TCGETS, t);
    info.termios = termios(t);
    const l = Buffer.alloc(TERMIOS_SIZE);
    ioctl(localFd(), TIOCGLCKTRMIOS, l);
    info.termios_locked = termios(l);
    const w = Buffer.alloc(8);
    ioctl(localFd(), TIOCGWINSZ, w);
    info.winsize = {
      ws_row: w.readUInt16LE(0),
      ws_col: w.readUInt16LE(2),
      ws_xpixel: w.readUInt16LE(4),
      ws_ypixel: w.readUInt16LE(6),
    };
  } catch (err) {
    // A hung-up terminal answers EIO: only the minimum is kept, as CRIU does.
    if (!isSysError(err, 'EIO')) throw err;
  }
  return info;
}
