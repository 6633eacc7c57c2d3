// cgroups at restore, as CRIU makes them (--manage-cgroups):
//
//   before any task exists, each hierarchy of cgroup.img is opened (a detached mount of its root, or
//   --cgroup-yard DIR/NAME) and the dumped directory trees are made again per mode:
//     none    every directory must exist; nothing is created or changed
//     props   every directory must exist; their properties are set
//     soft    (default) missing directories are created with their permissions and properties;
//             existing ones get their permissions only
//     full    missing ones are created; existing ones get permissions and properties too
//     strict  missing ones are created; an existing one fails the restore
//     ignore  nothing: every task stays in criu-ts's own cgroups
//   properties that only take before a task enters (cpuset.cpus/mems, devices.list, memory.swappiness
//   ...) are set as a directory is created; --cgroup-root [controller:]/path moves the dumped
//   cgroups under another path first;
//   each task is moved into its set's cgroups right after it is created (unless it inherits them from
//   its parent), before it forks its children; a thread whose set differs from its task's is moved
//   in the hierarchies that place threads one by one (v1, and threaded cgroup2);
//   once every task is in place, the other properties are written.

import { ProcDir } from '@criu-ts/bfd';
import type {
  CgControllerEntry,
  CgroupDirEntry,
  CgroupEntry,
  CgroupPropEntry,
  CgSetEntry,
  ImageDir,
} from '@criu-ts/images';
import { SysError } from '@criu-ts/sys';
import { RestoreError } from '../restore/errors.js';
import type { CgroupMode, CgroupRoot } from './dump.js';
import { Hierarchy, namesMatch } from './hierarchy.js';

export type { CgroupMode, CgroupRoot } from './dump.js';

export interface CgroupRestoreOptions {
  mode?: CgroupMode;
  /** --cgroup-root [controller:]/path: where the dumped cgroups go. */
  roots?: CgroupRoot[];
  /** --cgroup-yard DIR: the hierarchies are (or get) mounted in DIR/NAME. */
  yard?: string;
}

/** Properties that only take while a cgroup is new: set as the directory is created. */
const SPECIAL = new Set([
  'cpuset.cpus',
  'cpuset.mems',
  'devices.list',
  'memory.kmem.limit_in_bytes',
  'memory.swappiness',
  'memory.oom_control',
  'memory.use_hierarchy',
  'cgroup.type',
]);

const join = (base: string, name: string) => `${base}/${name}`.replace(/\/+/g, '/');

export class CgroupPlacer {
  private readonly sets = new Map<number, CgSetEntry>();
  private readonly controllers: CgControllerEntry[] = [];
  private readonly mode: CgroupMode;
  private readonly rootSet: number | undefined;
  /** The set each created task is in now (inherited from its parent until moved). */
  private readonly at = new Map<number, number | undefined>();
  /** Open hierarchies, by controller entry. */
  private readonly open = new Map<CgControllerEntry, Hierarchy>();
  /** Directories that existed in soft and none modes: their properties are left as they are. */
  private readonly keep = new Set<CgroupDirEntry>();
  private prepared = false;

  constructor(
    dir: ImageDir,
    modeOrOpts: CgroupMode | CgroupRestoreOptions,
    private readonly log: (msg: string) => void,
  ) {
    const opts = typeof modeOrOpts === 'string' ? { mode: modeOrOpts } : modeOrOpts;
    this.opts = opts;
    this.mode = opts.mode ?? 'soft';
    this.rootSet = dir.has('inventory') ? dir.inventory().root_cg_set : undefined;
    if (this.mode === 'ignore' || !dir.has('cgroup')) return;
    const img = dir.one<CgroupEntry>('cgroup');
    for (const s of img.sets ?? []) this.sets.set(s.id, s);
    this.controllers.push(...(img.controllers ?? []));
    this.rewriteRoots(opts.roots ?? []);
  }

  private readonly opts: CgroupRestoreOptions;

  /** Check before anything is created that every set a task uses is in cgroup.img. */
  check(pid: number, setId: number | undefined): void {
    if (setId === undefined || this.sets.size === 0 || setId === this.rootSet) return;
    if (!this.sets.has(setId))
      throw new RestoreError(`core-${pid}.img: cgroup set ${setId} is not in cgroup.img`);
  }

  /** Move task `pid` into the cgroups of set `setId`, unless it inherits them from its parent. */
  place(pid: number, setId: number | undefined, parentPid?: number): void {
    const current = parentPid === undefined ? this.rootSet : this.at.get(parentPid);
    if (setId === undefined || this.sets.size === 0) {
      this.at.set(pid, current);
      return;
    }
    this.at.set(pid, setId);
    if (setId === current) {
      this.log(`cgroups ${setId} of ${pid} inherited from its parent`);
      return;
    }
    this.prepare();
    const set = this.sets.get(setId);
    const members = set?.ctls ?? (setId === this.rootSet ? this.own() : undefined);
    if (!members) throw new RestoreError(`pid ${pid}: no cgroup set ${setId} found`);
    this.log(`moving ${pid} into cgroup set ${setId}`);
    for (const m of members) this.move(pid, m.name, m.path, 'cgroup.procs');
  }

  /** A thread whose set is not its task's: moved where each thread has its own cgroup. */
  placeThread(pid: number, tid: number, setId: number | undefined): void {
    if (setId === undefined || this.sets.size === 0 || setId === this.at.get(pid)) return;
    const set = this.sets.get(setId);
    if (!set) throw new RestoreError(`thread ${tid}: no cgroup set ${setId} found`);
    this.prepare();
    for (const m of set.ctls ?? []) {
      const ctrl = this.controllerOf(m.name, m.path);
      if (!ctrl.is_threaded) continue;
      const v2 = ctrl.cnames?.length === 1 && ctrl.cnames[0] === '';
      this.move(tid, m.name, m.path, v2 ? 'cgroup.threads' : 'tasks');
    }
  }

  /** The properties that are set once the tasks are in (all but the special ones). */
  restoreProperties(): void {
    if (!this.prepared) return;
    for (const c of this.controllers) {
      const h = this.open.get(c)!;
      const walk = (dirs: CgroupDirEntry[], base: string) => {
        for (const e of dirs) {
          const path = e.dir_name === '' ? base : join(base, e.dir_name);
          if (e.dir_name !== '' && !this.keep.has(e)) {
            for (const p of e.properties ?? []) {
              if (SPECIAL.has(p.name)) continue;
              if (p.name === 'freezer.state') {
                this.log(`${h.show(path)}: freezer.state ${p.value} is not set again by criu-ts`);
                continue;
              }
              if (p.name === 'net_prio.ifpriomap') this.restoreIfpriomap(h, path, p);
              else this.restoreProp(h, path, p);
            }
          }
          walk(e.children ?? [], path);
        }
      };
      walk(c.dirs ?? [], '');
    }
  }

  /** Close the hierarchies (detached mounts go with their last fd). */
  close(): void {
    for (const h of this.open.values()) h.close();
    this.open.clear();
  }

  // ---- the directories ------------------------------------------------------------------------------

  /** Open every hierarchy and make its directories, once, before the first task moves. */
  prepare(): void {
    if (this.prepared || this.sets.size === 0) return;
    this.prepared = true;
    this.log(`preparing cgroups (mode ${this.mode})`);
    for (const c of this.controllers) {
      if (!c.cnames?.length) throw new RestoreError('cgroup.img: a controller entry has no name');
      let h: Hierarchy;
      try {
        h = Hierarchy.open(c.cnames, this.opts.yard, true);
      } catch (e) {
        throw new RestoreError(
          `cannot open cgroup hierarchy "${c.cnames.join(',')}": ${(e as Error).message}`,
        );
      }
      this.open.set(c, h);
      this.makeDirs(h, c.dirs ?? [], '');
    }
  }

  private makeDirs(h: Hierarchy, dirs: CgroupDirEntry[], base: string): void {
    for (const e of dirs) {
      const path = join(base, e.dir_name);
      try {
        if (!h.exists(path)) {
          if (this.mode === 'none' || this.mode === 'props')
            throw new RestoreError(
              `cgroup dir ${h.show(path)} doesn't exist (--manage-cgroups=${this.mode})`,
            );
          h.mkdirs(path);
          this.log(`created cgroup dir ${h.show(path)}`);
          if (e.dir_perms) h.chperm(path, e.dir_perms);
          for (const p of e.properties ?? []) if (SPECIAL.has(p.name)) this.restoreSpecial(h, path, p);
        } else {
          if (this.mode === 'strict')
            throw new RestoreError(
              `cgroup dir ${h.show(path)} already exists (--manage-cgroups=strict: abort restore of existing cgroups)`,
            );
          if (this.mode === 'soft' || this.mode === 'none') this.keep.add(e);
          if (this.mode !== 'none' && e.dir_perms) h.chperm(path, e.dir_perms);
        }
      } catch (err) {
        if (err instanceof RestoreError) throw err;
        throw new RestoreError(`cgroup dir ${h.show(path)}: ${(err as Error).message}`);
      }
      this.makeDirs(h, e.children ?? [], path);
    }
  }

  // ---- properties -----------------------------------------------------------------------------------

  private restoreSpecial(h: Hierarchy, path: string, p: CgroupPropEntry): void {
    if (p.name === 'memory.swappiness' && p.value === '60') return;
    if (p.name === 'memory.oom_control' && p.value === '0') return;
    if (p.name === 'devices.list') {
      // Only the list can be read: deny everything, then allow each line again (one per write).
      const perms = p.perms ? { ...p.perms, mode: 0o200 } : undefined;
      this.restoreProp(h, path, { name: 'devices.deny', value: 'a', ...(perms ? { perms } : {}) });
      if (p.value === '') return;
      this.restoreProp(h, path, { name: 'devices.allow', value: p.value, ...(perms ? { perms } : {}) }, true);
      return;
    }
    this.restoreProp(h, path, p);
  }

  /** net_prio.ifpriomap: one interface a write; the default priority 0 is left out, failures too. */
  private restoreIfpriomap(h: Hierarchy, path: string, p: CgroupPropEntry): void {
    const lines = p.value.split('\n').filter((l) => {
      const sp = l.indexOf(' ');
      if (sp < 0) throw new RestoreError(`invalid value for ifpriomap: '${l}'`);
      return Number.parseInt(l.slice(sp + 1), 10) !== 0;
    });
    if (lines.length) this.restoreProp(h, path, { ...p, value: lines.join('\n') }, true, true);
  }

  private restoreProp(
    h: Hierarchy,
    dir: string,
    p: CgroupPropEntry,
    splitLines = false,
    skipFails = false,
  ): void {
    const file = join(dir, p.name);
    this.log(`restoring cgroup property value [${p.value}] to [${h.show(file)}]`);
    try {
      if (p.perms) h.chperm(file, p.perms);
      if (p.name === 'cgroup.procs' || p.name === 'tasks') return;
      if (p.name === 'cgroup.type' && p.value !== 'threaded') return;
      if (p.name === 'cgroup.subtree_control') {
        h.writeFile(file, (before) => {
          const off = before
            .trim()
            .split(/\s+/)
            .filter(Boolean)
            .map((c) => `-${c}`);
          const on = p.value
            .split(' ')
            .filter(Boolean)
            .map((c) => `+${c}`);
          return [...off, ...on].join(' ');
        });
        return;
      }
      for (const value of splitLines ? p.value.split('\n') : [p.value]) {
        try {
          h.writeFile(file, value);
        } catch (e) {
          // memory.kmem.limit_in_bytes is gone from cgroup v1 memory since Linux 6.1 (EOPNOTSUPP).
          if (e instanceof SysError && e.code === 'EOPNOTSUPP' && p.name === 'memory.kmem.limit_in_bytes')
            continue;
          if (!skipFails) throw e;
          this.log(`failed writing ${value} to ${h.show(file)}: ${(e as Error).message}`);
        }
      }
    } catch (e) {
      throw new RestoreError(`failed writing ${p.value} to ${h.show(file)}: ${(e as Error).message}`);
    }
  }

  // ---- tasks ----------------------------------------------------------------------------------------

  private controllerOf(name: string, path: string): CgControllerEntry {
    const c = this.controllers.find((x) => namesMatch(x.cnames ?? [], name));
    if (!c) throw new RestoreError(`no cg_controller_entry found for ${name}/${path}`);
    return c;
  }

  private move(id: number, name: string, path: string, file: string): void {
    const c = this.controllerOf(name, path);
    const h = this.open.get(c)!;
    const target = join(path, file);
    try {
      h.writeFile(target, String(id));
    } catch (e) {
      throw new RestoreError(`can't move ${id} into ${h.show(target)}: ${(e as Error).message}`);
    }
    this.log(`${id} moved into ${h.show(path)}`);
  }

  /** criu-ts's own cgroups (the set inventory.img's root_cg_set names, when cgroup.img has it not). */
  private own(): Array<{ name: string; path: string }> {
    const out: Array<{ name: string; path: string }> = [];
    for (const { name, path } of ProcDir.self().cgroups()) {
      if (this.controllers.some((c) => namesMatch(c.cnames ?? [], name))) out.push({ name, path });
    }
    return out;
  }

  // ---- --cgroup-root --------------------------------------------------------------------------------

  /**
   * --cgroup-root [controller:]/path (CRIU's rewrite_cgroup_roots): the first dumped directory of a
   * hierarchy that holds a task's cgroup is renamed to the new root, and the sets' paths below it follow.
   */
  private rewriteRoots(roots: CgroupRoot[]): void {
    const global = roots.find((r) => r.controller === undefined)?.path;
    for (const c of this.controllers) {
      const cnames = c.cnames ?? [];
      let newroot: string | undefined;
      for (const r of roots) {
        if (r.controller === undefined) continue;
        const names = new Set(r.controller.split(','));
        if (!cnames.some((n) => names.has(n))) continue;
        if (newroot !== undefined && newroot !== r.path)
          throw new RestoreError(`cgroup paths mismatch: ${newroot} ${r.path}`);
        newroot = r.path;
      }
      newroot ??= global;
      if (newroot === undefined) continue;
      for (const d of c.dirs ?? []) {
        const dir = d.dir_name;
        let matched = false;
        for (const s of this.sets.values()) {
          for (const m of s.ctls ?? []) {
            if (!namesMatch(cnames, m.name) || !m.path.slice(1).startsWith(dir)) continue;
            m.path = join(newroot, m.path.slice(dir.length + 1)).replace(/(.)\/$/, '$1');
            matched = true;
          }
        }
        if (matched) {
          this.log(`rewriting ${dir} to ${newroot}`);
          d.dir_name = newroot;
        }
      }
    }
  }
}
