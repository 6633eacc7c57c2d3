// cgroup.img, as CRIU writes it: the sets of cgroups the dumped threads are in (criu-ts's own set is
// set 1, as CRIU numbers its own first; inventory.img's root_cg_set names it) and, per hierarchy, the
// directory trees under the tasks' cgroups with their files' values and permissions, so that restore
// can make empty sub-cgroups and limits again. Nothing is written when every task is in criu-ts's own
// cgroups.

import { readFileSync } from 'node:fs';
import { ProcDir } from '@criu-ts/bfd';
import type {
  CgControllerEntry,
  CgroupDirEntry,
  CgroupEntry,
  CgroupPropEntry,
  CgSetEntry,
} from '@criu-ts/images';
import type { Stat } from '@criu-ts/sys';
import { DumpError } from '../dump/errors.js';
import { Hierarchy, namesMatch, splitNames } from './hierarchy.js';
import { CgroupProps, type CgroupPropsOptions, GLOBAL_V1, GLOBAL_V2 } from './props.js';

/** --manage-cgroups, CRIU's modes. At dump, ignore walks no directories; the others all do. */
export type CgroupMode = 'none' | 'props' | 'soft' | 'full' | 'strict' | 'ignore';

/** --cgroup-root [controller:]/path. */
export interface CgroupRoot {
  /** The hierarchy's name as /proc/PID/cgroup gives it ("cpu,cpuacct", "name=zdtmtst"); all when absent. */
  controller?: string;
  path: string;
}

export interface CgroupDumpOptions extends CgroupPropsOptions {
  mode?: CgroupMode;
  /** --cgroup-root at dump: walk the hierarchy from this path instead of the task's cgroup. */
  roots?: CgroupRoot[];
  /** --cgroup-yard: a directory where the hierarchies are mounted (DIR/cpu, DIR/zdtmtst, DIR/unified). */
  yard?: string;
  log?: (msg: string) => void;
}

interface Member {
  name: string;
  path: string;
}

interface DirNode {
  path: string;
  st: Stat;
  children: DirNode[];
  props: CgroupPropEntry[];
}

interface Controller {
  cnames: string[];
  heads: DirNode[];
  threaded: boolean;
}

/** CRIU's strtoll(value) == LLONG_MAX test: "unlimited" values are kept as -1. */
const LLONG_MAX = (1n << 63n) - 1n;
function saturates(text: string): boolean {
  const m = /^\s*([+-]?\d+)/.exec(text);
  return m !== null && BigInt(m[1]!) >= LLONG_MAX;
}

/** `path` is `sub` or below it (CRIU's issubpath: "/" is below nothing but itself). */
const isSubpath = (path: string, sub: string) =>
  path.startsWith(sub) && (path.length === sub.length || path[sub.length] === '/');

export class CgroupSets {
  private readonly sets = new Map<string, CgSetEntry>();
  private readonly used = new Set<number>();
  private readonly controllers: Controller[] = [];
  private readonly props: CgroupProps;
  private readonly mode: CgroupMode;
  private readonly log: (msg: string) => void;
  /** Set 1: criu-ts's own cgroups. */
  readonly ownId = 1;

  constructor(private readonly opts: CgroupDumpOptions = {}) {
    this.mode = opts.mode ?? 'soft';
    this.log = opts.log ?? (() => {});
    this.props = new CgroupProps(opts, (p) => {
      try {
        return readFileSync(p, 'utf8');
      } catch (e) {
        throw new DumpError(`cannot read --cgroup-props-file ${p}: ${(e as Error).message}`);
      }
    });
    const own = this.membership(ProcDir.self());
    // The hierarchies with controllers are those criu-ts is in; named ones join as tasks use them.
    for (const m of own) if (!m.name.startsWith('name=')) this.controllers.push(this.controller(m.name));
    this.idOf(own, false);
  }

  private controller(name: string): Controller {
    return { cnames: splitNames(name), heads: [], threaded: false };
  }

  /** The set id of a thread, from its /proc/PID/task/TID (or /proc/PID) directory. */
  of(proc: ProcDir): number {
    const id = this.idOf(this.membership(proc), true);
    this.used.add(id);
    return id;
  }

  private membership(proc: ProcDir): Member[] {
    const out: Member[] = [];
    for (const { name, path } of proc.cgroups()) {
      if (this.props.skips(name)) continue;
      out.push({ name, path });
    }
    return out.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  }

  private idOf(m: Member[], collect: boolean): number {
    const key = m.map((c) => `${c.name}:${c.path}`).join('\n');
    let set = this.sets.get(key);
    if (!set) {
      set = { id: this.sets.size + 1, ctls: m.map((c) => ({ name: c.name, path: c.path })) };
      this.log(`cgroup set ${set.id}: ${m.map((c) => `${c.name}:${c.path}`).join(' ')}`);
      if (collect) this.collect(m);
      this.sets.set(key, set);
    }
    return set.id;
  }

  /** Walk each hierarchy from the set's cgroup (or the --cgroup-root) down: every directory below. */
  private collect(set: Member[]): void {
    for (const m of set) {
      let c = this.controllers.find((x) => namesMatch(x.cnames, m.name));
      if (!c) {
        if (!m.name.startsWith('name='))
          throw new DumpError(`cgroup controller ${m.name} not found (criu-ts is not in that hierarchy)`);
        c = this.controller(m.name);
        this.controllers.push(c);
      }
      if (this.mode === 'ignore') continue;
      let root = m.path;
      const global = this.opts.roots?.find((r) => r.controller === undefined);
      if (global) root = global.path;
      const own = this.opts.roots?.find((r) => r.controller === m.name);
      if (own) root = own.path;
      let h: Hierarchy;
      try {
        h = Hierarchy.open(splitNames(m.name), this.opts.yard);
      } catch (e) {
        throw new DumpError(`cannot open cgroup hierarchy "${m.name}": ${(e as Error).message}`);
      }
      try {
        this.walk(h, c, root.replace(/\/+$/, '') || '/');
      } catch (e) {
        throw new DumpError(`failed walking ${h.show(root)} for empty cgroups: ${(e as Error).message}`);
      } finally {
        h.close();
      }
    }
  }

  private walk(h: Hierarchy, c: Controller, path: string): void {
    this.add(h, c, path);
    for (const sub of h.subdirs(path)) this.walk(h, c, path === '/' ? `/${sub}` : `${path}/${sub}`);
  }

  /** Put `path` into the controller's tree (CRIU's find_dir), unless a walk of another set had it. */
  private add(h: Hierarchy, c: Controller, path: string): void {
    let list = c.heads;
    for (;;) {
      if (list.some((d) => d.path === path)) return;
      const parent = list.find((d) => isSubpath(path, d.path));
      if (!parent) break;
      list = parent.children;
    }
    const node: DirNode = { path, st: h.stat(path), children: [], props: [] };
    const names = [...c.cnames.flatMap((n) => this.props.of(n)), ...(h.v2 ? GLOBAL_V2 : GLOBAL_V1)];
    for (const name of names) {
      const file = `${path}/${name}`;
      const got = h.readFile(file);
      if (!got) continue; // not on this kernel
      let value = '';
      if (name !== 'cgroup.procs' && name !== 'tasks') {
        value = saturates(got.text) ? '-1' : got.text.replace(/\n$/, '');
        if (name === 'memory.oom_control') {
          const m = /^oom_kill_disable (\d+)/.exec(value);
          if (!m) throw new DumpError(`couldn't scan oom state from ${value}`);
          value = m[1]!;
        }
      }
      if ((name === 'cgroup.type' && value === 'threaded') || name === 'tasks') c.threaded = true;
      node.props.push({ name, value, perms: { mode: got.st.mode, uid: got.st.uid, gid: got.st.gid } });
    }
    list.push(node);
  }

  /** The image, or undefined when every task is in criu-ts's own cgroups. */
  entry(): CgroupEntry | undefined {
    if (this.sets.size === 1) return undefined;
    const dirs = (list: DirNode[], poff: number): CgroupDirEntry[] =>
      list.map((d) => ({
        dir_name: d.path.slice(poff === 1 ? 1 : poff + 1),
        ...(d.children.length ? { children: dirs(d.children, d.path.length) } : {}),
        ...(d.props.length ? { properties: d.props } : {}),
        dir_perms: { mode: d.st.mode, uid: d.st.uid, gid: d.st.gid },
      }));
    const controllers: CgControllerEntry[] = this.controllers.map((c) => ({
      cnames: c.cnames,
      ...(c.heads.length ? { dirs: dirs(c.heads, 0) } : {}),
      is_threaded: c.threaded,
    }));
    return {
      // criu-ts's own set only when a task is in it (CRIU leaves it out and restores such a task wrongly)
      sets: [...this.sets.values()].filter((s) => s.id !== this.ownId || this.used.has(s.id)),
      controllers,
    };
  }
}
