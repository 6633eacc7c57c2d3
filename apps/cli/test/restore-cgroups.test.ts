// cgroups at dump and restore, as CRIU keeps them: a task in a cgroup v1 named hierarchy that is
// mounted nowhere by restore time, in cgroup2 and in the v1 pids hierarchy goes back to its cgroups;
// empty sub-cgroups, directory permissions and properties come back per --manage-cgroups mode;
// a thread in a cgroup of its own goes back there; --cgroup-root moves the cgroups. Checked from
// outside through /proc and the cgroup file systems.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  critDecodeAll,
  dumpAndKill,
  entries,
  haveCrit,
  type Obj,
  procState,
  runCli,
  startPythonCounter,
  startWorkload,
  waitFor,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

const NAME = `criutstest${process.pid}`;
const V2 = '/sys/fs/cgroup/unified';
const PIDS = '/sys/fs/cgroup/pids';
const haveCgroups = fs.existsSync(`${V2}/cgroup.procs`) && fs.existsSync(`${PIDS}/cgroup.procs`);

/** Where this test mounts its named hierarchy; cgroup dirs it made, deepest last. */
let named = '';
const made: string[] = [];

function mountNamed(): void {
  fs.mkdirSync(named, { recursive: true });
  execFileSync('mount', ['-t', 'cgroup', '-o', `none,name=${NAME}`, 'none', named]);
}

function umountNamed(): void {
  try {
    execFileSync('umount', [named]);
  } catch {
    // not mounted
  }
}

function mkcg(dir: string, mode = 0o755): string {
  fs.mkdirSync(dir);
  fs.chmodSync(dir, mode);
  made.push(dir);
  return dir;
}

/** Remove every cgroup dir below `root` (deepest first), then `root` itself. */
function rmTree(root: string): void {
  if (!fs.existsSync(root)) return;
  for (const e of fs.readdirSync(root, { withFileTypes: true }))
    if (e.isDirectory()) rmTree(path.join(root, e.name));
  fs.rmdirSync(root);
}

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => {
  try {
    cleanup(); // the tasks first: a cgroup with a task in it cannot go
  } finally {
    cleanupCgroups();
  }
});

/** Where the named hierarchy is mounted: a directory of our own, not a tempDir (removed before we unmount). */
function mountPoint(): string {
  return path.join(fs.mkdtempSync('/tmp/criu-ts-cgroup-mnt-'), 'named');
}

function cleanupCgroups(): void {
  let mounted = false;
  try {
    if (named && !fs.existsSync(`${named}/cgroup.procs`)) {
      mountNamed();
      mounted = true;
    }
  } catch {
    // the hierarchy may be gone already
  }
  const errors: unknown[] = [];
  const roots = [`${V2}/${NAME}`, `${PIDS}/${NAME}`, `${PIDS}/moved-${NAME}`];
  if (named) roots.push(`${named}/grp`, `${named}/moved`);
  for (const root of roots) {
    try {
      rmTree(root);
    } catch (e) {
      errors.push(e);
    }
  }
  if (mounted || (named && fs.existsSync(`${named}/cgroup.procs`))) umountNamed();
  if (named) fs.rmSync(path.dirname(named), { recursive: true, force: true });
  made.length = 0;
  named = '';
  if (errors.length) throw errors[0];
}

/** name:path lines of /proc/PID[/task/TID]/cgroup for the hierarchies this test uses (ids left out). */
function cgroupsOf(pid: number, tid = pid): string[] {
  return fs
    .readFileSync(`/proc/${pid}/task/${tid}/cgroup`, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.slice(l.indexOf(':') + 1))
    .filter((l) => l.startsWith(`name=${NAME}:`) || l.startsWith(':/') || l.startsWith('pids:'))
    .sort();
}

async function restore(dir: string, extra: string[] = []): Promise<{ code: number; stderr: string }> {
  const r = await runCli(['restore', '-D', dir, '-d', ...extra]);
  return { code: r.code, stderr: r.stderr };
}

/** A counter in a named v1 cgroup with two empty sub-cgroups, a cgroup2 one and a pids one. */
async function counterInCgroups() {
  named = mountPoint();
  mountNamed();
  const grp = mkcg(`${named}/grp`);
  mkcg(`${grp}/empty.0`, 0o750);
  mkcg(`${grp}/empty.1`);
  fs.writeFileSync(`${grp}/notify_on_release`, '1');
  const v2 = mkcg(`${V2}/${NAME}`);
  mkcg(`${v2}/empty`);
  fs.writeFileSync(`${v2}/cgroup.max.descendants`, '5');
  const pids = mkcg(`${PIDS}/${NAME}`);
  fs.writeFileSync(`${pids}/pids.max`, '77');
  const w = startWorkload('counter', ['5']);
  for (const d of [grp, v2, pids]) fs.writeFileSync(`${d}/cgroup.procs`, String(w.pid));
  await waitForLine(w.report, /^5$/, { pid: w.pid });
  return { w, grp, v2, pids, before: cgroupsOf(w.pid) };
}

describe.skipIf(!haveCgroups)('criu-ts dump and restore of cgroups', () => {
  it('a named v1 hierarchy mounted nowhere, cgroup2 and pids: cgroups, empty sub-cgroups, perms and properties come back (soft)', async () => {
    const { w, grp, v2, pids, before } = await counterInCgroups();
    expect(before).toEqual([`:/${NAME}`, `name=${NAME}:/grp`, `pids:/${NAME}`].sort());
    const dir = await dumpAndKill(w.pid);
    if (haveCrit) {
      const { decoded, failures } = critDecodeAll(dir, ['cgroup.img']);
      expect(failures).toEqual([]);
      const controllers = entries(decoded.get('cgroup.img'))[0]!.controllers as Obj[];
      const c = controllers.find((x) => (x.cnames as string[])[0] === `name=${NAME}`)!;
      const grpDir = (c.dirs as Obj[]).map((d) => d.dir_name);
      expect(grpDir).toEqual(['grp']);
      const kids = ((c.dirs as Obj[])[0]!.children as Obj[]).map((d) => d.dir_name).sort();
      expect(kids).toEqual(['empty.0', 'empty.1']);
    }
    // Everything goes: the named hierarchy is mounted nowhere and has no cgroups left.
    for (const d of [...made].reverse()) fs.rmdirSync(d);
    umountNamed();
    const r = await restore(dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(cgroupsOf(w.pid)).toEqual(before);
    await waitForMoreLines(w.report, 3, w.pid);
    mountNamed();
    expect(fs.statSync(`${grp}/empty.0`).mode & 0o7777).toBe(0o750);
    expect(fs.statSync(`${grp}/empty.1`).isDirectory()).toBe(true);
    expect(fs.readFileSync(`${grp}/notify_on_release`, 'utf8')).toBe('1\n');
    expect(fs.statSync(`${v2}/empty`).isDirectory()).toBe(true);
    expect(fs.readFileSync(`${v2}/cgroup.max.descendants`, 'utf8')).toBe('5\n');
    expect(fs.readFileSync(`${pids}/pids.max`, 'utf8')).toBe('77\n');
  });

  it('modes: soft leaves an existing cgroup as it is, full sets its properties, none and strict refuse', async () => {
    const { w, pids, grp } = await counterInCgroups();
    const dir = await dumpAndKill(w.pid);
    fs.writeFileSync(`${pids}/pids.max`, '88');
    // none: the dumped directories must all exist.
    fs.rmdirSync(`${grp}/empty.1`);
    let r = await restore(dir, ['--manage-cgroups=none']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/empty\.1 doesn't exist \(--manage-cgroups=none\)/);
    expect(procState(w.pid)).toBe('gone');
    // strict: an existing one fails the restore.
    r = await restore(dir, ['--manage-cgroups=strict']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/already exists \(--manage-cgroups=strict/);
    expect(procState(w.pid)).toBe('gone');
    // soft: pids.max stays what it is now; the missing empty.1 is made again.
    r = await restore(dir);
    expect(r.stderr).toBe('');
    expect(fs.readFileSync(`${pids}/pids.max`, 'utf8')).toBe('88\n');
    expect(fs.statSync(`${grp}/empty.1`).isDirectory()).toBe(true);
    killAndReap(w.pid);
    // full: pids.max is the dumped one again.
    r = await restore(dir, ['--manage-cgroups=full']);
    expect(r.stderr).toBe('');
    expect(fs.readFileSync(`${pids}/pids.max`, 'utf8')).toBe('77\n');
    await waitForMoreLines(w.report, 3, w.pid);
  });

  it('--cgroup-root moves the cgroups and their sub-cgroups under a new path', async () => {
    const { w, grp } = await counterInCgroups();
    const dir = await dumpAndKill(w.pid);
    const r = await restore(dir, [
      '--cgroup-root',
      `name=${NAME}:/moved`,
      '--cgroup-root',
      `pids:/moved-${NAME}`,
    ]);
    expect(r.stderr).toBe('');
    expect(cgroupsOf(w.pid)).toEqual([`:/${NAME}`, `name=${NAME}:/moved`, `pids:/moved-${NAME}`].sort());
    expect(fs.statSync(`${named}/moved/empty.0`).mode & 0o7777).toBe(0o750);
    expect(fs.readFileSync(`${PIDS}/moved-${NAME}/pids.max`, 'utf8')).toBe('77\n');
    expect(fs.existsSync(grp)).toBe(true);
    await waitForMoreLines(w.report, 3, w.pid);
  });

  it('a thread in a cgroup of its own goes back there, its task in its own', async () => {
    named = mountPoint();
    mountNamed();
    const grp = mkcg(`${named}/grp`);
    mkcg(`${grp}/th`);
    const w = await startPythonCounter(
      [
        'import threading',
        'tid = []',
        'threading.Thread(target=lambda: (tid.append(threading.get_native_id()), time.sleep(1e9)), daemon=True).start()',
        'while not tid: time.sleep(0.001)',
        `open(sys.argv[1] + '.tid', 'w').write(str(tid[0]))`,
      ].join('\n'),
    );
    await waitFor(
      () => fs.existsSync(`${w.report}.tid`) && fs.readFileSync(`${w.report}.tid`, 'utf8') !== '',
      'tid',
    );
    const tid = Number(fs.readFileSync(`${w.report}.tid`, 'utf8'));
    fs.writeFileSync(`${grp}/cgroup.procs`, String(w.pid));
    fs.writeFileSync(`${grp}/th/tasks`, String(tid));
    expect(cgroupsOf(w.pid, tid)).toContain(`name=${NAME}:/grp/th`);
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    const dir = await dumpAndKill(w.pid);
    rmTree(grp);
    const r = await restore(dir);
    expect(r.stderr).toBe('');
    expect(cgroupsOf(w.pid)).toContain(`name=${NAME}:/grp`);
    expect(cgroupsOf(w.pid, tid)).toContain(`name=${NAME}:/grp/th`);
    await waitForMoreLines(w.report, 3, w.pid);
  });
});
