// The fd driver seam: what one kind of fd provides, both directions. See FdDriver.
import type { FdKind } from './kinds.js';
import type { FdRestoreDriver } from './restore-driver.js';
import type { FdDumpDriver } from './table.js';

/**
 * One kind of fd (a pipe, an eventfd, a unix socket...): how criu-ts dumps it and how it restores it.
 * Each kind has exactly one driver, in the table FD_DRIVERS (files/drivers.ts), and every open file is
 * classified into exactly one kind (files/kinds.ts), so drivers never compete for a file and their
 * order does not matter.
 *
 * To add a kind of fd:
 *  1. name it in `FdKind` (files/kinds.ts) and say in `fdKindOf` which open files are of it, from
 *     what /proc tells of the fd (its link, its inode type, a socket's family). The compiler then
 *     asks for step 3.
 *  2. write the folder files/NAME/: `dump.ts` exporting an `FdDumpDriver` (files.img entry of the
 *     fd type the kind uses, and any image of its own, through the FileTable; refuse with a DumpError
 *     naming pid, fd and object what restore could not bring back) and `restore.ts` exporting an
 *     `FdRestoreDriver` for that fd type (check at plan time, open in criu-ts; what only the task can
 *     do in `inTask`).
 *  3. add one line to FD_DRIVERS: `NAME: { dump: ..., restore: ... }`.
 * A kind's fd type must be its own: restore finds the kind from files.img's type.
 */
export interface FdDriver {
  readonly dump: FdDumpDriver;
  readonly restore: FdRestoreDriver;
}

export type {
  FdCheckContext,
  FdRestoreContext,
  FdRestoreDriver,
  InTaskContext,
  LateOpen,
} from './restore-driver.js';
export type { FdDumpContext, FdDumpDriver, FileTable, OpenFile } from './table.js';
export type { FdKind };
