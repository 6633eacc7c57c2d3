import type { ProcDir, ProcStatus } from '@criu-ts/bfd';
import { procPath } from '@criu-ts/bfd';
import type { FsEntry } from '@criu-ts/images';
import { pathEntry } from '../files/regular/dump.js';
import type { FileTable } from '../files/table.js';

/** cwd, root and umask of a task (fs-PID.img). */
export function dumpFs(pid: number, proc: ProcDir, status: ProcStatus, files: FileTable): FsEntry {
  return {
    cwd_id: pathEntry(files, proc.readlink('cwd'), procPath(pid, 'cwd')),
    root_id: pathEntry(files, proc.readlink('root'), procPath(pid, 'root')),
    umask: status.umask ?? 0o022,
  };
}
