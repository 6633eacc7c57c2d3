import { DumpError } from '../../dump/errors.js';
import { FD_TYPE, type FdDumpDriver, type FileTable, type OpenFile } from '../table.js';

/** fdinfo's Pid of a pidfd whose process has died (and been reaped). */
export const DEAD_PID = -1;

/**
 * The pid a pidfd names, from its fdinfo `Pid:` line: -1 once the process is gone. criu-ts's images
 * name every pid as criu-ts sees it (pstree.img too), which for a tree in criu-ts's pid namespace is
 * CRIU's nspid, the pid in the task's own namespace.
 */
function pidOf(file: OpenFile): number {
  const text = file.info.other?.Pid;
  const pid = Number(text);
  if (text === undefined || !Number.isInteger(pid) || pid < DEAD_PID)
    throw new DumpError(`pid ${file.pid} fd ${file.fd}: pidfd without a valid Pid line in fdinfo`);
  // 0: the process lives in a pid namespace above criu-ts's, where it has no pid to name it by.
  if (pid === 0)
    throw new DumpError(`pid ${file.pid} fd ${file.fd}: pidfd of a process outside criu-ts's pid namespace`);
  return pid;
}

/**
 * pidfd: which process it names (a task of the tree, one outside it, or a dead one) and its open flags
 * (PIDFD_NONBLOCK is O_NONBLOCK, PIDFD_THREAD is O_EXCL). The inode (pidfs: one per process) tells
 * whether two pidfds name the same process.
 */
export const pidfdDriver: FdDumpDriver = {
  kind: 'pidfd',
  dump(file: OpenFile, files: FileTable) {
    const nspid = pidOf(file);
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.PIDFD,
      pidfd: {
        id,
        ino: Number(BigInt.asUintN(32, file.stat.ino)),
        flags: file.flags,
        nspid,
        fown: files.owner(file),
      },
    }));
    return { id, type: FD_TYPE.PIDFD };
  },
};
