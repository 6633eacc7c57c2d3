import { memfdRestoreDriver } from './memfd/restore.js';
import type { FdRestoreDriver } from './restore-driver.js';

/**
 * The restore drivers of the fd kinds other than regular files and terminals (restore/files.ts opens
 * those). A new kind of fd is one folder under files/ and one line here.
 */
export const FD_RESTORE_DRIVERS: FdRestoreDriver[] = [memfdRestoreDriver];

export function restoreDriverFor(type: number): FdRestoreDriver | undefined {
  return FD_RESTORE_DRIVERS.find((d) => d.type === type);
}
