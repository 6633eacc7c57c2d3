import { readProcLink } from '@criu-ts/bfd';
import type { TaskKobjIdsEntry } from '@criu-ts/images';
import { KCMP_FILES, KCMP_FS, KCMP_SIGHAND, KCMP_VM, kcmp } from '@criu-ts/sys';
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
  /** `ns`: the namespace ids, shared with namespace files (FileTable.nsIds). */
  constructor(private readonly ns = new IdAllocator<string>()) {}

  /**
   * The ids of the dumper itself, for inventory.img's root_ids, as CRIU writes them: taken before any
   * task's (CRIU numbers itself first, so its vm/files/fs/sighand get 1 and the tree's start at 2); its
   * namespaces are numbered like a task's, so a tree in the dumper's namespaces shares their ids. CRIU's
   * restore compares the root task's ids with these to learn what the root must unshare: a root task
   * that seemed to share its fd table with the dumper is "Image corruption on kIDs data".
   */
  ofDumper(): TaskKobjIdsEntry {
    if (this.seen.length) throw new Error('the dumper must be numbered before any task');
    const entry: TaskKobjIdsEntry = {
      vm_id: this.shared.vm.unique(),
      files_id: this.shared.files.unique(),
      fs_id: this.shared.fs.unique(),
      sighand_id: this.shared.sighand.unique(),
    };
    this.nsIds(entry, 'self');
    return entry;
  }

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
    this.nsIds(entry, pid);
    this.seen.push(pid);
    return entry;
  }

  private nsIds(entry: TaskKobjIdsEntry, proc: number | 'self'): void {
    for (const [ns, field] of NAMESPACES) {
      try {
        const link = readProcLink(proc, `ns/${ns}`);
        if (link !== undefined) entry[field] = this.ns.get(link).id;
      } catch {
        // A namespace kind this kernel does not have.
      }
    }
  }
}
