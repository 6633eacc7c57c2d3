import type { ProcDir, ProcStatus } from '@criu-ts/bfd';
import type { FsEntry } from '@criu-ts/images';
import { pathEntry } from '../files/regular/dump.js';
import type { FileTable } from '../files/table.js';

/** cwd, root and umask of a task (fs-PID.img). */
export function dumpFs(pid: number, proc: ProcDir, status: ProcStatus, files: FileTable): FsEntry {
  return {
    cwd_id: pathEntry(files, proc.readlink('cwd'), `/proc/${pid}/cwd`),
    root_id: pathEntry(files, proc.readlink('root'), `/proc/${pid}/root`),
    umask: status.umask ?? 0o022,
  };
}
