// Which cgroup files a dump keeps, per controller, as CRIU keeps them: a built-in table, changed by
// --cgroup-props (text) and --cgroup-props-file (a file) in CRIU's small YAML-like format:
//
//   "cpu":
//    - "strategy": "replace"
//    - "properties": ["cpu.shares", "cpu.cfs_period_us"]
//
// "replace" drops what the controller had, "merge" appends to it.

import { DumpError } from '../dump/errors.js';

/** Every cgroup v1 directory's own files. */
export const GLOBAL_V1 = ['cgroup.clone_children', 'notify_on_release', 'cgroup.procs', 'tasks'];
/** Every cgroup2 directory's own files. */
export const GLOBAL_V2 = [
  'cgroup.subtree_control',
  'cgroup.max.descendants',
  'cgroup.max.depth',
  'cgroup.freeze',
  'cgroup.type',
];

/** The controllers' files CRIU dumps by default (memory's limit before memsw's: they are set in order). */
const BUILTIN: ReadonlyArray<[string, string[]]> = [
  ['cpu', ['cpu.shares', 'cpu.cfs_period_us', 'cpu.cfs_quota_us', 'cpu.rt_period_us', 'cpu.rt_runtime_us']],
  [
    'memory',
    [
      'memory.limit_in_bytes',
      'memory.memsw.limit_in_bytes',
      'memory.swappiness',
      'memory.soft_limit_in_bytes',
      'memory.move_charge_at_immigrate',
      'memory.oom_control',
      'memory.use_hierarchy',
      'memory.kmem.limit_in_bytes',
      'memory.kmem.tcp.limit_in_bytes',
    ],
  ],
  [
    'cpuset',
    [
      'cpuset.cpus',
      'cpuset.mems',
      'cpuset.memory_migrate',
      'cpuset.cpu_exclusive',
      'cpuset.mem_exclusive',
      'cpuset.mem_hardwall',
      'cpuset.memory_spread_page',
      'cpuset.memory_spread_slab',
      'cpuset.sched_load_balance',
      'cpuset.sched_relax_domain_level',
    ],
  ],
  ['blkio', ['blkio.weight']],
  ['freezer', []],
  ['perf_event', []],
  ['net_cls', ['net_cls.classid']],
  ['net_prio', ['net_prio.ifpriomap']],
  ['pids', ['pids.max']],
  ['devices', ['devices.list']],
];

export interface CgroupPropsOptions {
  /** --cgroup-props: a description in the format above. */
  props?: string;
  /** --cgroup-props-file: a file with one. */
  propsFile?: string;
  /** --cgroup-dump-controller: only these hierarchies ("cpu,cpuacct", "name=systemd") are dumped. */
  dumpControllers?: string[];
}

/** The properties to dump per controller, and which hierarchies to dump at all. */
export class CgroupProps {
  private readonly table = new Map<string, string[]>(BUILTIN.map(([c, p]) => [c, [...p]]));
  private readonly only: Set<string> | undefined;

  constructor(opts: CgroupPropsOptions = {}, readFile: (path: string) => string = () => '') {
    if (opts.props) this.parse(opts.props, '--cgroup-props');
    if (opts.propsFile) this.parse(readFile(opts.propsFile), opts.propsFile);
    this.only = opts.dumpControllers?.length ? new Set(opts.dumpControllers) : undefined;
  }

  /** The files of controller `name` (one of "cpu", "memory" ...; none for names CRIU has no table for). */
  of(name: string): readonly string[] {
    return this.table.get(name) ?? [];
  }

  /** --cgroup-dump-controller: whether hierarchy `names` ("cpu,cpuacct") is left out. */
  skips(names: string): boolean {
    return this.only !== undefined && !this.only.has(names);
  }

  private parse(text: string, where: string): void {
    const fail = (what: string): never => {
      throw new DumpError(`cgroup properties (${where}): ${what}`);
    };
    // A tokenizer over the few symbols the format has: quoted strings, ':', '-', '[', ']', ','.
    const tokens: string[] = [];
    const re = /"([^"]*)"|([:\-[\],])|(\s+)|(.)/gy;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (m[1] !== undefined) tokens.push(`"${m[1]}`);
      else if (m[2] !== undefined) tokens.push(m[2]);
      else if (m[4] !== undefined) fail(`unexpected '${m[4]}'`);
    }
    let i = 0;
    const next = () => tokens[i++];
    const expect = (t: string, what: string) => {
      if (next() !== t) fail(`expected ${what}`);
    };
    const quoted = (what: string): string => {
      const t = next();
      if (t === undefined || !t.startsWith('"')) return fail(`expected ${what}`);
      return t.slice(1);
    };
    while (i < tokens.length) {
      const controller = quoted('a controller name');
      expect(':', `':' after "${controller}"`);
      expect('-', `'- "strategy"' for "${controller}"`);
      if (quoted(`"strategy" for "${controller}"`) !== 'strategy')
        fail(`expected "strategy" for "${controller}"`);
      expect(':', `':' after "strategy"`);
      const strategy = quoted(`a strategy for "${controller}"`);
      if (strategy !== 'merge' && strategy !== 'replace')
        fail(`unknown strategy "${strategy}" for "${controller}"`);
      expect('-', `'- "properties"' for "${controller}"`);
      if (quoted(`"properties" for "${controller}"`) !== 'properties')
        fail(`expected "properties" for "${controller}"`);
      expect(':', `':' after "properties"`);
      expect('[', `'[' in the properties of "${controller}"`);
      const props: string[] = [];
      for (;;) {
        if (tokens[i] === ']') {
          i++;
          break;
        }
        props.push(quoted(`a property name of "${controller}"`));
        const sep = next();
        if (sep === ']') break;
        if (sep !== ',') fail(`expected ']' in the properties of "${controller}"`);
      }
      const old = this.table.get(controller);
      this.table.set(controller, strategy === 'merge' && old ? [...old, ...props] : props);
    }
  }
}
