import { readlinkSync } from 'node:fs';
import type { TaskKobjIdsEntry } from '@criu-ts/images';
import { KCMP_FILES, KCMP_FS, KCMP_SIGHAND, KCMP_VM, kcmp } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import { IdAllocator } from '../dump/ids.js';

const NAMESPACES = [
  ['pid', 'pid_ns_id'],
  ['net', 'net_ns_id'],
  ['ipc', 'ipc_ns_id'],
  ['uts', 'uts_ns_id'],
  ['mnt', 'mnt_ns_id'],
  ['user', 'user_ns_id'],
  ['cgroup', 'cgroup_ns_id'],
  ['time', 'time_ns_id'],
] as const;

/**
 * A task in another network namespace than criu-ts's: CRIU dumps that namespace (its devices,
 * addresses, routes, rules) and locks all of its traffic until restore; criu-ts does neither yet, and a
 * restore would put the task in criu-ts's namespace, with other addresses and peers. Refused.
 */
function otherNetns(pid: number, link: string, own: string): DumpError {
  return new DumpError(
    `pid ${pid} is in network namespace ${link}, not criu-ts's (${own}): network namespaces are not dumped by criu-ts yet (run criu-ts in the task's namespace)`,
  );
}

/**
 * ids-PID.img: which mm, fd table, fs and signal handlers a task shares with others of the
 * tree (CLONE_VM, CLONE_FILES, ...), found with kcmp(2), and which namespaces it is in.
 */
export class KobjIds {
  private readonly seen: number[] = [];
  private readonly shared = {
    vm: new IdAllocator<number>(),
    files: new IdAllocator<number>(),
    fs: new IdAllocator<number>(),
    sighand: new IdAllocator<number>(),
  };
  private readonly ns = new IdAllocator<string>();
  private readonly ownNet = readlinkSync('/proc/self/ns/net');

  of(pid: number): TaskKobjIdsEntry {
    const id = (kind: keyof typeof this.shared, type: number) => {
      // The first earlier task sharing the object names it; otherwise this task does.
      const same = this.seen.find((other) => kcmp(pid, other, type) === 0);
      return this.shared[kind].get(same ?? pid).id;
    };
    const entry: TaskKobjIdsEntry = {
      vm_id: id('vm', KCMP_VM),
      files_id: id('files', KCMP_FILES),
      fs_id: id('fs', KCMP_FS),
      sighand_id: id('sighand', KCMP_SIGHAND),
    };
    for (const [ns, field] of NAMESPACES) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/ns/${ns}`);
      } catch {
        continue; // a namespace kind this kernel does not have
      }
      if (ns === 'net' && link !== this.ownNet) throw otherNetns(pid, link, this.ownNet);
      entry[field] = this.ns.get(link).id;
    }
    this.seen.push(pid);
    return entry;
  }
}
