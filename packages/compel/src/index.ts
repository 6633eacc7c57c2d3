// @criu-ts/compel: parasite control for criu-ts. Seize (and optionally freeze) a process tree, run
// syscalls inside its tasks one by one or in batches, read and write their memory, copy their fds, and
// let everything go again exactly as it was (Parasite). The same engine runs syscalls and batches in
// tasks traced from their first instruction, the tasks a restore creates (Tracee). x86_64 only. All
// calls are synchronous and belong to the thread that seized the tree (ptrace is per thread): never
// await between a stop and its use.

export { CompelError, TaskGoneError } from './errors.js';
export { copyFd, copyFds } from './fds/index.js';
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
  STUB_TRAP_RIP,
  SYSCALL_STUB,
} from './infect/batch-code.js';
export { findCodeAddress } from './infect/code-address.js';
export { chooseScratchAddress, type InfectOptions, Parasite } from './infect/parasite.js';
export { type SyscallArg, waitForStop } from './infect/remote-syscall.js';
export { type ScratchLayout, Tracee } from './infect/tracee.js';
export {
  type MemoryRun,
  readMemory,
  readProcMem,
  readRuns,
  writeMemory,
  writeProcMem,
} from './memory/index.js';
export { DeathGuard, type DeathGuardOptions } from './spawn/death-guard.js';
export { killAndReap } from './spawn/reap.js';
export { ensureSubreaper, type StartOptions, startTraceable } from './spawn/start.js';
export { CgroupFreezer, cgroup2Mount } from './tree/freezer.js';
export { SeizedTree, type SeizeOptions, seizeTree } from './tree/seize.js';
export { redeliverSignal } from './tree/signals.js';
export type { SeizedTask, SeizedThread, TaskState } from './tree/task.js';
export { Backoff, sleepMs } from './util/wait.js';
