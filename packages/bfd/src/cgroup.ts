// /proc/PID/cgroup (cgroups(7)): which cgroup of each hierarchy a task is in.

/** One line of /proc/PID/cgroup: "ID:CONTROLLERS:PATH" (cgroup v2: "0::/path"). */
export interface CgroupLine {
  /** the hierarchy id (0 for cgroup v2) */
  id: number;
  /** the controllers as the line names them ("cpu,cpuacct", "name=systemd", "" for v2) */
  name: string;
  /** the cgroup's path inside the hierarchy */
  path: string;
}

/** Parse /proc/PID/cgroup. The path may contain ':' (only the first two separate fields). */
export function parseCgroup(text: string): CgroupLine[] {
  const out: CgroupLine[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    out.push({ id: Number(line.slice(0, a)), name: line.slice(a + 1, b), path: line.slice(b + 1) });
  }
  return out;
}
