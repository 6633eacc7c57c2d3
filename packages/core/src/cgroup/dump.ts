import { readFileSync } from 'node:fs';
import type { CgroupEntry, CgSetEntry } from '@criu-ts/images';

/** A task's cgroup membership: "hierarchy-id:controllers:path" lines of /proc/PID/cgroup. */
function membership(pid: number | 'self'): Array<{ name: string; path: string }> {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const first = line.indexOf(':');
      const second = line.indexOf(':', first + 1);
      return { name: line.slice(first + 1, second), path: line.slice(second + 1) };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const keyOf = (m: Array<{ name: string; path: string }>) => m.map((c) => `${c.name}:${c.path}`).join('\n');

/**
 * cgroup.img: the sets of cgroups the dumped tasks are in. As CRIU does, nothing is written
 * when every task is in criu-ts's own cgroups (restore puts them there anyway). Sets are
 * numbered from 1, criu-ts's own set included; threads and the inventory refer to them.
 */
export class CgroupSets {
  private readonly sets = new Map<string, CgSetEntry>();
  private readonly own: string;

  constructor() {
    this.own = keyOf(membership('self'));
    this.idOf(membership('self'));
  }

  /** The set id of a thread (pid or tid). */
  of(tid: number): number {
    return this.idOf(membership(tid));
  }

  private idOf(m: Array<{ name: string; path: string }>): number {
    const key = keyOf(m);
    let set = this.sets.get(key);
    if (!set) {
      set = { id: this.sets.size + 1, ctls: m.map((c) => ({ name: c.name, path: c.path })) };
      this.sets.set(key, set);
    }
    return set.id;
  }

  /** The image, or undefined when every task shares criu-ts's cgroups. */
  entry(): CgroupEntry | undefined {
    if (this.sets.size === 1 && this.sets.has(this.own)) return undefined;
    const controllers = new Map<string, Set<string>>();
    for (const set of this.sets.values()) {
      for (const c of set.ctls ?? []) {
        const dirs = controllers.get(c.name) ?? new Set<string>();
        dirs.add(c.path);
        controllers.set(c.name, dirs);
      }
    }
    return {
      sets: [...this.sets.values()],
      controllers: [...controllers.entries()].map(([name, dirs]) => ({
        cnames: [name],
        dirs: [...dirs].filter((d) => d !== '/').map((d) => ({ dir_name: d.replace(/^\//, '') })),
      })),
    };
  }
}
