// cgroup membership (cgroup.img, written by dump only when the tasks were in other cgroups than the
// dumper): each task is moved into its cgroups right after it is created, before it forks its children
// and threads, which then start there too. Missing cgroup directories are created (CRIU's default
// "soft" mode; "none" wants them to exist, "ignore" moves no task); controllers where the task is where criu-ts is are left alone.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupEntry, CgSetEntry, ImageDir } from '@criu-ts/images';
import { RestoreError } from './errors.js';

interface Hierarchy {
  /** The names /proc/PID/cgroup gives it ("cpu,cpuacct", "name=systemd", "" for cgroup2). */
  names: Set<string>;
  v2: boolean;
  /** The hierarchy path mounted there, and where. */
  root: string;
  mountpoint: string;
}

function hierarchies(): Hierarchy[] {
  const out: Hierarchy[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fstype, , options = ''] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const names = new Set(options.split(',').filter((o) => o !== 'rw' && o !== 'ro'));
    out.push({
      names,
      v2: fstype === 'cgroup2',
      root: left[3] ?? '/',
      mountpoint: unescapeOctal(left[4] ?? ''),
    });
  }
  return out;
}

const unescapeOctal = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** name -> path of a task's cgroups, as /proc/PID/cgroup lists them. */
function membership(pid: number | 'self'): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    m.set(line.slice(a + 1, b), line.slice(b + 1));
  }
  return m;
}

/** --manage-cgroups: the modes of CRIU's that need no cgroup properties. */
export type CgroupMode = 'soft' | 'none' | 'ignore';

export class CgroupPlacer {
  private readonly sets = new Map<number, CgSetEntry>();
  private readonly mine = membership('self');
  private mounts: Hierarchy[] | undefined;

  constructor(
    dir: ImageDir,
    private readonly mode: CgroupMode,
    private readonly log: (msg: string) => void,
  ) {
    if (mode === 'ignore' || !dir.has('cgroup')) return;
    for (const s of dir.one<CgroupEntry>('cgroup').sets ?? []) this.sets.set(s.id, s);
  }

  /** Check before anything is created that every set a task uses is in cgroup.img. */
  check(pid: number, setId: number | undefined): void {
    if (setId === undefined || this.sets.size === 0) return;
    if (!this.sets.has(setId))
      throw new RestoreError(`core-${pid}.img: cgroup set ${setId} is not in cgroup.img`);
  }

  /** Move task `pid` into the cgroups of set `setId`. */
  place(pid: number, setId: number | undefined): void {
    const set = setId === undefined ? undefined : this.sets.get(setId);
    if (!set) return;
    for (const c of set.ctls ?? []) {
      if (this.mine.get(c.name) === c.path) continue;
      this.mounts ??= hierarchies();
      const names = c.name === '' ? [] : c.name.split(',');
      const h = this.mounts.find((x) => (c.name === '' ? x.v2 : !x.v2 && names.every((n) => x.names.has(n))));
      if (!h) throw new RestoreError(`pid ${pid}: cgroup hierarchy "${c.name}" is not mounted here`);
      if (!(c.path === h.root || c.path.startsWith(h.root === '/' ? '/' : `${h.root}/`)))
        throw new RestoreError(
          `pid ${pid}: cgroup ${c.name}:${c.path} is outside what is mounted here (${h.root})`,
        );
      const dir = join(h.mountpoint, c.path.slice(h.root === '/' ? 0 : h.root.length));
      if (this.mode === 'none' && !existsSync(dir))
        throw new RestoreError(
          `pid ${pid}: cgroup ${dir} does not exist (--manage-cgroups=none creates none)`,
        );
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      } catch (e) {
        throw new RestoreError(`pid ${pid}: cannot move it into cgroup ${dir}: ${(e as Error).message}`);
      }
      this.log(`pid ${pid} moved into ${dir}`);
    }
  }
}
