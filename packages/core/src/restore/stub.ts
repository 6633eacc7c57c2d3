// The stub every restored task starts from: a static ELF of one page that criu-ts writes as bytes (no
// compiler, no libc, so no rseq area, no signal handlers, no stray mappings), started by a double fork
// while criu-ts is a child subreaper (compel's startTraceable) so that libuv never waits on it.
//
//   entry:  mov eax, 34 (pause); syscall; jmp entry     waits, doing nothing, until we seize it
//   +0x10:  syscall; int3                               where the first injected syscalls run
import { mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import {
  close,
  memfdCreate,
  PTRACE_EVENT_STOP,
  PTRACE_O_EXITKILL,
  PTRACE_O_SUSPEND_SECCOMP,
  PTRACE_O_TRACECLONE,
  PTRACE_O_TRACEFORK,
  PTRACE_O_TRACESYSGOOD,
  PTRACE_O_TRACEVFORK,
  ptraceCont,
  ptraceInterrupt,
  ptraceSeize,
  spawnSibling,
  writeAll,
} from '@criu-ts/sys';
import { RestoreError } from './errors.js';
import { Tracee, waitStop } from './inject.js';

/** Load address of the stub (unmapped again before any dumped VMA is mapped). */
export const STUB_BASE = 0x400000n;
const HEADERS = 64 + 56; // ELF header + one program header
const ENTRY_OFFSET = 0x80;
const SYSCALL_OFFSET = 0x90;
/** Address of the stub's `syscall; int3`. */
export const STUB_SYSCALL = STUB_BASE + BigInt(SYSCALL_OFFSET);

/**
 * Options every restored task is traced with: syscall stops told apart from SIGTRAP, children and
 * threads auto-attached, seccomp filters not applied to our injections, and SIGKILL for all of them if
 * criu-ts dies half way.
 */
export const TRACE_OPTIONS =
  PTRACE_O_TRACESYSGOOD |
  PTRACE_O_TRACEFORK |
  PTRACE_O_TRACEVFORK |
  PTRACE_O_TRACECLONE |
  PTRACE_O_EXITKILL |
  PTRACE_O_SUSPEND_SECCOMP;

/** The stub's bytes: a 64-bit ET_EXEC with one R+X PT_LOAD of the whole file. */
export function stubElf(): Buffer {
  const size = 0x100;
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // \x7fELF, 64-bit, little endian, version 1, SysV
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(0x3e, 18); // EM_X86_64
  b.writeUInt32LE(1, 20); // EV_CURRENT
  b.writeBigUInt64LE(STUB_BASE + BigInt(ENTRY_OFFSET), 24); // e_entry
  b.writeBigUInt64LE(64n, 32); // e_phoff
  b.writeUInt16LE(64, 52); // e_ehsize
  b.writeUInt16LE(56, 54); // e_phentsize
  b.writeUInt16LE(1, 56); // e_phnum
  b.writeUInt16LE(64, 58); // e_shentsize
  // PT_LOAD, PF_R | PF_X, the whole file at STUB_BASE
  b.writeUInt32LE(1, 64);
  b.writeUInt32LE(5, 68);
  b.writeBigUInt64LE(0n, 72); // p_offset
  b.writeBigUInt64LE(STUB_BASE, 80); // p_vaddr
  b.writeBigUInt64LE(STUB_BASE, 88); // p_paddr
  b.writeBigUInt64LE(BigInt(size), 96); // p_filesz
  b.writeBigUInt64LE(BigInt(size), 104); // p_memsz
  b.writeBigUInt64LE(0x1000n, 112); // p_align
  if (HEADERS > ENTRY_OFFSET) throw new Error('stub layout');
  // biome-ignore format: one instruction per line
  Buffer.from([
    0xb8, 0x22, 0x00, 0x00, 0x00, //  mov eax, 34 (pause)
    0x0f, 0x05, //                    syscall
    0xeb, 0xf7, //                    jmp entry
  ]).copy(b, ENTRY_OFFSET);
  Buffer.from([0x0f, 0x05, 0xcc]).copy(b, SYSCALL_OFFSET); // syscall; int3
  return b;
}

/**
 * Start the stub and seize it. Returns it stopped (in a PTRACE_EVENT_STOP) with TRACE_OPTIONS. The ELF
 * is a file in the temp dir, deleted again at once (the running stub keeps its inode); where the temp
 * dir is mounted noexec, a memfd. A stub that happens to get one of `avoid` (pids the restore needs)
 * is killed and started again.
 */
export function startStub(avoid: ReadonlySet<number> = new Set()): Tracee {
  for (let attempt = 0; ; attempt++) {
    let pid: number;
    try {
      pid = execStub(attempt > 0);
    } catch (e) {
      if (attempt > 0) throw e;
      continue;
    }
    if (avoid.has(pid) && attempt < 5) {
      killAndReap(pid);
      continue;
    }
    return seizeStub(pid);
  }
}

/**
 * --restore-sibling: the stub started as criu-ts's sibling with the root's own pid, so that it IS the
 * root task (criu-ts's parent is its parent and gets its exit). Seized and stopped like startStub's.
 */
export function startStubAsSibling(rootPid: number): Tracee {
  const fd = memfdCreate('criu-ts-restore', 0); // not close-on-exec: the child execs it by this fd
  let pid: number;
  try {
    writeAll(fd, stubElf());
    pid = spawnSibling(`/proc/self/fd/${fd}`, rootPid);
  } finally {
    close(fd);
  }
  if (pid === -17) throw new RestoreError(`cannot create pid ${rootPid}: it is in use`);
  if (pid < 0)
    throw new RestoreError(`cannot create the root ${rootPid} as criu-ts's sibling: errno ${-pid}`);
  return seizeStub(pid);
}

function seizeStub(pid: number): Tracee {
  ptraceSeize(pid, TRACE_OPTIONS);
  ptraceInterrupt(pid);
  for (;;) {
    const st = waitStop(pid);
    if (!st.stopped) throw new RestoreError(`the restore stub ${pid} died at start`);
    if (st.event === PTRACE_EVENT_STOP) break;
    ptraceCont(pid, 0); // a signal on the way: drop it
  }
  return new Tracee(pid, pid);
}

function execStub(viaMemfd: boolean): number {
  if (viaMemfd) {
    // Not close-on-exec: the shell and then the stub inherit it, and exec it as /proc/self/fd/N.
    const fd = memfdCreate('criu-ts-restore', 0);
    try {
      writeAll(fd, stubElf());
      return startTraceable([`/proc/self/fd/${fd}`]);
    } finally {
      close(fd);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'criu-ts-stub-'));
  try {
    const path = join(dir, 'criu-ts-restore');
    writeFileSync(path, stubElf(), { mode: 0o700 });
    const pid = startTraceable([path]);
    let exe = '';
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      // exec failed (a noexec mount): the shell's child is gone or a zombie
    }
    if (exe !== path) {
      killAndReap(pid);
      throw new RestoreError('the restore stub did not start');
    }
    return pid;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
