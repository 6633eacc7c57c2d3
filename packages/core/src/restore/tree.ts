// Creating the tasks and threads with the ids they had: clone3 with set_tid, injected into the parent
// (the stub for the root, with CLONE_PARENT so the root becomes criu-ts's child), auto-attached thanks to
// PTRACE_O_TRACEFORK/CLONE. Sessions are made by setsid() right after a session leader is born (before it
// forks its session's members), process groups by setpgid() once everybody exists, leaders first.
import {
  CLONE_ARGS_SIZE_VER2,
  CLONE_FILES,
  CLONE_FS,
  CLONE_PARENT,
  CLONE_SIGHAND,
  CLONE_SYSVSEM,
  CLONE_THREAD,
  CLONE_VM,
  encodeCloneArgs,
  formatWaitStatus,
  PTRACE_EVENT_STOP,
  ptraceCont,
  SIGCHLD,
  SYS,
  vmWrite,
} from '@criu-ts/sys';
import { RestoreError } from './errors.js';
import { type Injector, Tracee, waitStop } from './inject.js';

export const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;

export type CloneKind = 'root' | 'child' | 'thread';

/**
 * clone3(set_tid = [id]) in the task `inj` runs in; returns the new task or thread, stopped in its first
 * PTRACE_EVENT_STOP. EEXIST (the id was taken meanwhile) is a clear error. `extraFlags`: CLONE_FILES for a
 * child sharing its parent's fd table.
 */
export function cloneWithId(
  inj: Injector,
  pid: number,
  id: number,
  kind: CloneKind,
  extraFlags = 0n,
): Tracee {
  const flags = (kind === 'root' ? CLONE_PARENT : kind === 'thread' ? THREAD_FLAGS : 0n) | extraFlags;
  // exit_signal must be 0 with CLONE_PARENT (the child inherits the caller's) and with CLONE_THREAD.
  const exitSignal = kind === 'child' ? SIGCHLD : 0;
  const r = clone3(inj, flags, exitSignal, [id]);
  const born = inj.t.takeBorn();
  if (r < 0n) {
    const why =
      r === -17n
        ? 'it is in use'
        : r === -1n
          ? 'EPERM (choosing pids needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN: run as root)'
          : `errno ${-r}`;
    throw new RestoreError(`cannot create ${kind === 'thread' ? 'thread' : 'pid'} ${id}: ${why}`);
  }
  if (Number(r) !== id || !born.includes(id))
    throw new RestoreError(`clone3 made ${r} instead of ${id} (reported: ${born.join(',') || 'nothing'})`);
  waitFirstStop(id);
  return new Tracee(kind === 'thread' ? pid : id, id);
}

/**
 * A child of the task `inj` runs in, with whatever pid the kernel gives: a helper that lives only
 * while criu-ts opens something on it. Returned stopped in its first PTRACE_EVENT_STOP.
 */
export function cloneHelper(inj: Injector): number {
  const r = clone3(inj, 0n, SIGCHLD, []);
  inj.t.takeBorn();
  if (r < 0n) throw new RestoreError(`cannot create a helper process: errno ${-r}`);
  waitFirstStop(Number(r));
  return Number(r);
}

function clone3(inj: Injector, flags: bigint, exitSignal: number, setTid: number[]): bigint {
  const at = inj.reserve(CLONE_ARGS_SIZE_VER2 + 8);
  const args = encodeCloneArgs({ flags, exitSignal, setTid }, { base: at });
  vmWrite(inj.tid, at, args);
  const r = inj.syscall(SYS.clone3, at, CLONE_ARGS_SIZE_VER2);
  inj.resetData();
  return r;
}

/** A new task, auto-attached, runs to its first PTRACE_EVENT_STOP. */
function waitFirstStop(id: number): void {
  for (;;) {
    const st = waitStop(id);
    if (!st.stopped) throw new RestoreError(`new task ${id}: ${formatWaitStatus(st)}`);
    if (st.event === PTRACE_EVENT_STOP) break;
    ptraceCont(id, 0);
  }
}
