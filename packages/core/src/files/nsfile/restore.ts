// Namespace files: opened once the tree exists, as /proc/PID/ns/KIND of a task that is in the
// namespace (ids-PID.img names it by the same id), with the fd's flags.
import { procPath } from '@criu-ts/bfd';
import type { FileEntry, TaskKobjIdsEntry } from '@criu-ts/images';
import { O_CLOEXEC, O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, open } from '@criu-ts/sys';
import { RestoreError } from '../../restore/errors.js';
import type { FdCheckContext, FdRestoreDriver } from '../restore-driver.js';
import { FD_TYPE } from '../table.js';
import { NS_KINDS } from './dump.js';

/** Flags only open(2) of a new file uses, or that criu-ts sets itself. */
const OPEN_ONLY = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC;

/** ids-PID.img field of each kind of namespace. */
const ID_FIELD: Record<string, keyof TaskKobjIdsEntry> = {
  net: 'net_ns_id',
  ipc: 'ipc_ns_id',
  uts: 'uts_ns_id',
  mnt: 'mnt_ns_id',
  pid: 'pid_ns_id',
  user: 'user_ns_id',
  cgroup: 'cgroup_ns_id',
  time: 'time_ns_id',
};

/** The kind and a task (pid) of the tree in the namespace of NS entry `entry`. */
function taskIn(entry: FileEntry, ctx: FdCheckContext): { kind: string; pid: number } {
  const nsf = entry.nsf;
  if (!nsf) throw new RestoreError(`files.img: entry ${entry.id} of type NS has no nsf`);
  const kind = NS_KINDS.find((k) => k.flag === nsf.ns_cflag)?.name;
  if (!kind)
    throw new RestoreError(
      `files.img: namespace file ${entry.id} of unknown kind 0x${nsf.ns_cflag.toString(16)}`,
    );
  for (const t of ctx.dir.pstree()) {
    if (!ctx.dir.has('ids-%u', t.pid)) continue;
    if (ctx.dir.ids(t.pid)[ID_FIELD[kind]!] === nsf.ns_id) return { kind, pid: t.pid };
  }
  throw new RestoreError(
    `files.img: namespace file ${entry.id} (${kind} ${nsf.ns_id}) is of no task of the tree`,
  );
}

export const nsFileRestoreDriver: FdRestoreDriver = {
  type: FD_TYPE.NS,
  kind: 'namespace file',
  check(entry, ctx) {
    taskIn(entry, ctx);
  },
  openLate: () => 'tree',
  open(entry, ctx) {
    const { kind, pid } = ctx.shared(`nsfile:${entry.id}`, () => taskIn(entry, ctx));
    try {
      return open(procPath(pid, 'ns', kind), (entry.nsf!.flags & ~OPEN_ONLY) | O_CLOEXEC);
    } catch (e) {
      throw new RestoreError(`namespace file ${entry.id}: /proc/${pid}/ns/${kind}: ${(e as Error).message}`);
    }
  },
};
