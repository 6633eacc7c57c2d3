// @criu-ts/compel: parasite control for criu-ts. Seize (and optionally freeze) a process tree, run
// syscalls inside its tasks one by one or in batches, read and write their memory, copy their fds, and
// let everything go again exactly as it was (Parasite). The same engine runs syscalls and batches in
// tasks traced from their first instruction, the tasks a restore creates (Tracee). x86_64 only. All
// calls are synchronous and belong to the thread that seized the tree (ptrace is per thread): never
// await between a stop and its use.

// Errors: CompelError (pid, what failed), TaskGoneError (the task exited meanwhile)

export { CompelError, TaskGoneError } from './errors.js';

// A task's open files, copied into this process (pidfd_getfd)

export { copyFd, copyFds } from './fds/index.js';

// Injection: Parasite (scratch area, one syscall or a batch) in a seized task, Tracee (the same engine)
// in a task traced from its first instruction, and the injected code, byte by byte

export type { BatchEntry, BatchResult, PendingBatch } from './infect/batch.js';
export {
  BATCH_ASM,
  BATCH_CODE,
  BATCH_DONE_RIP,
  BATCH_ENTRY,
  BATCH_FAIL_RIP,
  codePage,
  ENTRY_SIZE,
  RESULT_OFFSET,
  STUB_OFFSET,
  SYSCALL_STUB,
} from './infect/batch-code.js';
export { chooseScratchAddress, type InfectOptions, Parasite } from './infect/parasite.js';
export { type SyscallArg, waitForStop } from './infect/remote-syscall.js';
export { type ScratchLayout, Tracee } from './infect/tracee.js';

// Remote memory: process_vm_readv/writev, /proc/PID/mem for what they refuse

export {
  type MemoryRun,
  readMemory,
  readProcMem,
  readRuns,
  writeMemory,
  writeProcMem,
} from './memory/index.js';

// Starting a process that may be traced (never a child_process child), and killing it; a guard that
// undoes criu-ts's changes outside if criu-ts dies

export { DeathGuard, type DeathGuardOptions } from './spawn/death-guard.js';
export { killAndReap } from './spawn/reap.js';
export { ensureSubreaper, type StartOptions, startTraceable } from './spawn/start.js';

// Seizing a tree (optionally through the cgroup freezer) and letting it go

export { CgroupFreezer, cgroup2Mount } from './tree/freezer.js';
export { SeizedTree, type SeizeOptions, seizeTree } from './tree/seize.js';
export type { SeizedTask, SeizedThread, TaskState } from './tree/task.js';

// A sleep that blocks the thread (ptrace stops belong to it: nothing may run between)

export { sleepMs } from './util/wait.js';
