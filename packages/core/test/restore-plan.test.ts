// planRestore on small image sets written here with @criu-ts/images: no process is made. Each set is a
// tree of tasks with the few images a task needs (core, mm, ids, fs, pagemap, fdinfo, files); the tests
// check the plan made of it (the order, the links, the states, the file kinds) and what it refuses.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type CoreEntry,
  type FdinfoEntry,
  type FileEntry,
  ImageDir,
  type PstreeEntry,
  type TaskKobjIdsEntry,
} from '@criu-ts/images';
import { UserRegs } from '@criu-ts/sys';
import { afterEach, describe, expect, it } from 'vitest';
import { fdKindOfEntry } from '../src/files/drivers.js';
import { noOwner } from '../src/files/fown.js';
import { FD_TYPE } from '../src/files/table.js';
import { fpregsToImage, gpregsToImage } from '../src/registers/x86.js';
import { RestoreError } from '../src/restore/errors.js';
import { planRestore, TASK_ALIVE, TASK_DEAD, TASK_STOPPED } from '../src/restore/plan.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** files.img ids every live task of these sets uses: its root, cwd and exe. */
const ROOT_ID = 1;
const CWD_ID = 2;
const EXE_ID = 3;

interface TaskSpec {
  pid: number;
  ppid?: number;
  pgid?: number;
  sid?: number;
  threads?: number[];
  state?: 'alive' | 'stopped' | 'zombie';
  exitCode?: number;
  /** ids-PID.img (defaults: one table, one address space per task). */
  ids?: Partial<TaskKobjIdsEntry>;
  fds?: FdinfoEntry[];
}

function core(tid: number, state: number, exitCode = 0, withThread = true): CoreEntry {
  return {
    mtype: 1,
    tc: { task_state: state, exit_code: exitCode, personality: 0, flags: 0, blk_sigset: 0n, comm: `t${tid}` },
    ...(withThread
      ? {
          thread_info: {
            clear_tid_addr: 0n,
            gpregs: gpregsToImage(new UserRegs(Buffer.alloc(27 * 8))),
            fpregs: fpregsToImage(Buffer.alloc(576)),
          },
          thread_core: { futex_rla: 0n, futex_rla_len: 0 },
        }
      : {}),
  };
}

const reg = (id: number, name: string): FileEntry => ({
  id,
  type: FD_TYPE.REG,
  reg: { id, flags: 0, pos: 0n, fown: noOwner(), name },
});

/** An image directory with the tasks of `tasks` (the first is the root) and `files` besides the defaults. */
function images(tasks: TaskSpec[], files: FileEntry[] = [], inventory: object = {}): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-plan-'));
  dirs.push(d);
  const dir = ImageDir.create(d);
  dir.write('inventory', undefined, [{ img_version: 2, ...inventory }]);
  const root = tasks[0]!.pid;
  const pstree: PstreeEntry[] = tasks.map((t) => ({
    pid: t.pid,
    ppid: t.ppid ?? 0,
    pgid: t.pgid ?? root,
    sid: t.sid ?? root,
    threads: t.threads ?? [t.pid],
  }));
  dir.write('pstree', undefined, pstree);
  dir.write('files', undefined, [
    reg(ROOT_ID, '/'),
    reg(CWD_ID, os.tmpdir()),
    reg(EXE_ID, process.execPath),
    ...files,
  ]);
  for (const t of tasks) {
    const state = t.state === 'zombie' ? TASK_DEAD : t.state === 'stopped' ? TASK_STOPPED : TASK_ALIVE;
    dir.write('core-%u', t.pid, [core(t.pid, state, t.exitCode, t.state !== 'zombie')]);
    if (t.state === 'zombie') continue;
    for (const tid of t.threads ?? []) if (tid !== t.pid) dir.write('core-%u', tid, [core(tid, TASK_ALIVE)]);
    const ids = { vm_id: t.pid, files_id: t.pid, fs_id: t.pid, sighand_id: t.pid, ...t.ids };
    dir.write('ids-%u', t.pid, [ids]);
    dir.write('mm-%u', t.pid, [
      {
        mm_start_code: 0n,
        mm_end_code: 0n,
        mm_start_data: 0n,
        mm_end_data: 0n,
        mm_start_stack: 0n,
        mm_start_brk: 0n,
        mm_brk: 0n,
        mm_arg_start: 0n,
        mm_arg_end: 0n,
        mm_env_start: 0n,
        mm_env_end: 0n,
        exe_file_id: EXE_ID,
      },
    ]);
    dir.write('fs-%u', t.pid, [{ cwd_id: CWD_ID, root_id: ROOT_ID, umask: 0o22 }]);
    if (!dir.has('fdinfo-%u', ids.files_id)) dir.write('fdinfo-%u', ids.files_id, t.fds ?? []);
    dir.pageMapWriter(t.pid, t.pid).close();
  }
  return d;
}

/** planRestore's RestoreError message for these images (fails the test if it plans them). */
function refusal(d: string, opts: Parameters<typeof planRestore>[1] = {}): string {
  try {
    planRestore(d, opts).shmem.close();
  } catch (e) {
    expect(e).toBeInstanceOf(RestoreError);
    return (e as Error).message;
  }
  throw new Error('planRestore accepted the images');
}

describe('planRestore: the tree', () => {
  it('orders tasks parents first (breadth first), links parents and children, reads states', () => {
    const d = images([
      { pid: 100, threads: [100, 103] },
      { pid: 101, ppid: 100 },
      { pid: 102, ppid: 100, state: 'stopped' },
      { pid: 104, ppid: 101, state: 'zombie', exitCode: 42 << 8 },
    ]);
    const plan = planRestore(d);
    try {
      expect(plan.tasks.map((t) => t.pid)).toEqual([100, 101, 102, 104]);
      expect(plan.root.pid).toBe(100);
      expect(plan.root.children.map((t) => t.pid)).toEqual([101, 102]);
      expect(plan.tasks[3]!.parent?.pid).toBe(101);
      expect(plan.tasks.map((t) => t.state)).toEqual(['alive', 'alive', 'stopped', 'zombie']);
      expect(plan.tasks[3]!.exitStatus).toBe(42 << 8);
      // Threads: the leader first; every pid and tid is one the restore takes.
      expect(plan.root.threads.map((t) => t.tid)).toEqual([100, 103]);
      expect(new Set(plan.ids)).toEqual(new Set([100, 101, 102, 103, 104]));
      // A zombie has nothing but its core: no memory, no files.
      expect(plan.tasks[3]!.mm).toBeUndefined();
      expect(plan.pgidHelpers).toEqual([]);
    } finally {
      plan.shmem.close();
    }
  });

  it('a group whose leader had died gets a helper; --shell-job takes the caller session and group', () => {
    const d = images([
      { pid: 200, pgid: 200 },
      { pid: 201, ppid: 200, pgid: 250 },
    ]);
    const plan = planRestore(d);
    expect(plan.pgidHelpers).toEqual([250]);
    plan.shmem.close();
    const job = images([{ pid: 300, pgid: 9, sid: 8 }]);
    expect(refusal(job)).toBe('the session leader 8 of 300 is not in the images: restore with --shell-job');
    const withJob = planRestore(job, { shellJob: true });
    expect(withJob.pgidHelpers).toEqual([]);
    withJob.shmem.close();
  });

  it('refuses trees it cannot make, with the image and task named', () => {
    expect(refusal(images([{ pid: 10 }, { pid: 11, ppid: 99 }]))).toBe(
      'pstree.img: the parent 99 of 11 is not in the tree',
    );
    expect(
      refusal(images([{ pid: 10 }, { pid: 11, ppid: 10, state: 'zombie' }, { pid: 12, ppid: 11 }])),
    ).toBe('pstree.img: zombie 11 has children');
    expect(
      refusal(
        images([
          { pid: 10, threads: [10, 11] },
          { pid: 11, ppid: 10 },
        ]),
      ),
    ).toBe('pstree.img: pid 11 appears twice');
    expect(refusal(images([{ pid: 10 }, { pid: 11, ppid: 10, ids: { vm_id: 10 } }]))).toBe(
      'tasks 10 and 11 share one address space (vfork, CLONE_VM): not supported yet',
    );
    const noCore = images([{ pid: 10 }, { pid: 11, ppid: 10 }]);
    fs.rmSync(path.join(noCore, 'core-11.img'));
    expect(refusal(noCore)).toBe(`missing image ${path.join(noCore, 'core-11.img')}`);
    expect(refusal(images([{ pid: 10 }], [], { tcp_close: true }))).toBe(
      'Need to set the --tcp-close options.',
    );
  });

  it('a child sharing its parent fd table (CLONE_FILES) is planned; two unrelated sharers are refused', () => {
    const shared = images([{ pid: 20 }, { pid: 21, ppid: 20, ids: { files_id: 20 } }]);
    const plan = planRestore(shared);
    expect(plan.tasks[1]!.ids?.files_id).toBe(20);
    plan.shmem.close();
    const cousins = images([
      { pid: 20 },
      { pid: 21, ppid: 20 },
      { pid: 22, ppid: 21, ids: { files_id: 20 } },
    ]);
    expect(refusal(cousins)).toBe(
      "tasks 20 and 22 share one fd table (CLONE_FILES), and 22's parent does not: cannot restore",
    );
  });
});

describe('planRestore: files', () => {
  const fd = (n: number, id: number, type: number): FdinfoEntry => ({ id, flags: 0, type, fd: n });

  it('plans every fd of a kind it restores, each entry classified once by its fd type', () => {
    const pipe = (id: number): FileEntry => ({
      id,
      type: FD_TYPE.PIPE,
      pipe: { id, pipe_id: 77, flags: 0, fown: noOwner() },
    });
    const d = images(
      [{ pid: 30, fds: [fd(0, 10, FD_TYPE.PIPE), fd(1, 11, FD_TYPE.PIPE), fd(2, EXE_ID, FD_TYPE.REG)] }],
      [pipe(10), pipe(11)],
    );
    const plan = planRestore(d);
    try {
      expect(plan.root.fdinfo?.map((f) => f.fd)).toEqual([0, 1, 2]);
      expect([10, 11, EXE_ID].map((id) => fdKindOfEntry(plan.files.get(id)!))).toEqual([
        'pipe',
        'pipe',
        'regular',
      ]);
    } finally {
      plan.shmem.close();
    }
  });

  it('refuses an fd whose file is missing, malformed, of an unknown kind, or changed', () => {
    expect(refusal(images([{ pid: 40, fds: [fd(3, 99, FD_TYPE.REG)] }]))).toBe(
      'fd 3 of 40: file id 99 is not in files.img',
    );
    expect(
      refusal(images([{ pid: 40, fds: [fd(3, 12, FD_TYPE.PIPE)] }], [{ id: 12, type: FD_TYPE.PIPE }])),
    ).toBe('files.img: entry 12 is a pipe without its pipe field');
    // A fd type no kind restores (TUNF): refused by name at plan time.
    expect(fdKindOfEntry({ type: FD_TYPE.TUNF })).toBeUndefined();
    expect(
      refusal(
        images(
          [{ pid: 40, fds: [fd(3, 13, FD_TYPE.TUNF)] }],
          [{ id: 13, type: FD_TYPE.TUNF, tunf: { id: 13, flags: 0, netdev: 'tun0' } } as FileEntry],
        ),
      ),
    ).toBe('fd 3 of 40: tunf files cannot be restored yet');
    expect(
      refusal(images([{ pid: 40, fds: [fd(3, 14, FD_TYPE.REG)] }], [reg(14, '/nonexistent/criu-ts')])),
    ).toBe('file /nonexistent/criu-ts (id 14) is missing: ENOENT');
    expect(refusal(images([{ pid: 40, fds: [fd(3, 3, FD_TYPE.REG), fd(3, 3, FD_TYPE.REG)] }]))).toBe(
      'fdinfo-40.img: fd 3 twice',
    );
  });
});
