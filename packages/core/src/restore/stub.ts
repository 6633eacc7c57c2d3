// The stub every restored task starts from: a static ELF of one page that criu-ts writes as bytes (no
// compiler, no libc, so no rseq area, no signal handlers, no stray mappings), started
// as criu-ts's own child by clone3 + execve (sys's spawnChild: no shell, no fork of Node) while criu-ts
// is a child subreaper; libuv never waits on it (it waits only for the pids it spawned).
//
//   entry:  waits, doing nothing, until we seize it: in poll() on a pidfd of criu-ts, so that it exits
//           by itself if criu-ts dies before it is seized (then PTRACE_O_EXITKILL takes over); in a
//           pause() loop where pidfds are missing
//   +0x10:  syscall; int3                               where the first injected syscalls run
//   +0x20:  the wait, then a kill loop over a table of pids: empty here, the tree's in a death guard
//           (guard.ts), the same ELF started once more for the last steps of a restore
// The ELF is never a named file: an O_TMPFILE (no name, ever), or a memfd where that cannot be exec'ed.

import { fstatSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { procPath } from '@criu-ts/bfd';
import { ensureSubreaper, killAndReap } from '@criu-ts/compel';
import {
  close,
  memfdCreate,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  O_TMPFILE,
  open,
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
  spawnChild,
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

/** Where the watch code starts (a death guard is sent there again, see guard.ts). */
export const WATCH_OFFSET = 0xa0;

/**
 * The stub's wait: pidfd_open(watchPid); ESRCH (criu-ts is gone already): the kill loop; any other error: a
 * pause() loop; else poll() the pidfd until it is readable (criu-ts exited), then the kill loop (empty but
 * in a death guard, see guard.ts) and exit_group(0).
 */
function watchCode(watchPid: number): Buffer {
  const c: number[] = [];
  const at = () => c.length;
  // bytes of an instruction, then its 32-bit immediate if it has one
  const ins = (bytes: number[], imm?: number) => {
    c.push(...bytes);
    if (imm === undefined) return;
    const x = Buffer.alloc(4);
    x.writeInt32LE(imm | 0);
    c.push(...x);
  };
  ins([0xb8], 434); //                                  mov eax, 434 (pidfd_open)
  ins([0xbf], watchPid); //                             mov edi, watchPid
  ins([0x31, 0xf6, 0x0f, 0x05]); //                     xor esi, esi; syscall
  ins([0x83, 0xf8, 0xfd, 0x74, 0]); //                  cmp eax, -3 (ESRCH); je exit
  const toExit = at() - 1;
  ins([0x85, 0xc0, 0x78, 0]); //                        test eax, eax; js pause
  const toPause = at() - 1;
  const poll = at();
  ins([0x89, 0x44, 0x24, 0xf8]); //                     mov [rsp-8], eax        pollfd.fd
  ins([0xc7, 0x44, 0x24, 0xfc], 1); //                  mov dword [rsp-4], 1    POLLIN
  ins([0x48, 0x8d, 0x7c, 0x24, 0xf8]); //               lea rdi, [rsp-8]
  ins([0xbe], 1); //                                    mov esi, 1
  ins([0xba], -1); //                                   mov edx, -1
  ins([0xb8], 7); //                                    mov eax, 7 (poll)
  ins([0x0f, 0x05, 0x48, 0x83, 0xf8, 0x01, 0x75, 0]); // syscall; cmp rax, 1; jne poll
  c[at() - 1] = (poll - at()) & 0xff;
  c[toExit] = at() - (toExit + 1);
  // criu-ts is gone: SIGKILL to the ebp pids of the u32 table at rbx (none in the stub: exec zeroes both;
  // the death guard's are set by guard.ts). A failed kill (ESRCH) does not stop the loop.
  const kill = at();
  ins([0x85, 0xed, 0x74, 0]); //                        kill: test ebp, ebp; jz exit
  const toDone = at() - 1;
  ins([0x8b, 0x3b]); //                                 mov edi, [rbx]
  ins([0xbe], 9); //                                    mov esi, 9 (SIGKILL)
  ins([0xb8], 62); //                                   mov eax, 62 (kill)
  ins([0x0f, 0x05, 0x48, 0x83, 0xc3, 0x04]); //         syscall; add rbx, 4
  ins([0xff, 0xcd, 0xeb, 0]); //                        dec ebp; jmp kill
  c[at() - 1] = (kill - at()) & 0xff;
  c[toDone] = at() - (toDone + 1);
  ins([0xb8], 231); //                                  exit: mov eax, 231 (exit_group)
  ins([0x31, 0xff, 0x0f, 0x05]); //                     xor edi, edi; syscall
  c[toPause] = at() - (toPause + 1);
  const pause = at();
  ins([0xb8], 34); //                                   pause: mov eax, 34 (pause)
  ins([0x0f, 0x05, 0xeb, 0]); //                        syscall; jmp pause
  c[at() - 1] = (pause - at()) & 0xff;
  return Buffer.from(c);
}

/**
 * The stub's bytes: a 64-bit ET_EXEC with one R+X PT_LOAD of the whole file. It exits by itself once
 * process `watchPid` (criu-ts) is gone, unless it was seized before (0: it waits forever).
 */
export function stubElf(watchPid = 0): Buffer {
  const size = 0x180;
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
  if (HEADERS > ENTRY_OFFSET || WATCH_OFFSET + watchCode(0).length > size) throw new Error('stub layout');
  b.set([0xeb, WATCH_OFFSET - (ENTRY_OFFSET + 2)], ENTRY_OFFSET); // jmp watch
  watchCode(watchPid).copy(b, WATCH_OFFSET);
  Buffer.from([0x0f, 0x05, 0xcc]).copy(b, SYSCALL_OFFSET); // syscall; int3
  return b;
}

/**
 * Start the stub and seize it. Returns it stopped (in a PTRACE_EVENT_STOP) with TRACE_OPTIONS. The ELF
 * is an unnamed file (O_TMPFILE) in the temp dir; where the temp dir is mounted noexec or has no
 * O_TMPFILE, a memfd. A stub that happens to get one of `avoid` (pids the restore needs)
 * is killed and started again.
 */
export function startStub(avoid: ReadonlySet<number> = new Set()): Tracee {
  return seizeStub(spawnStub(avoid));
}

/**
 * Start the stub, not seized: it waits in its watch code (and exits by itself once criu-ts is gone). Its
 * pid is none of `avoid`.
 */
export function spawnStub(avoid: ReadonlySet<number> = new Set()): number {
  ensureSubreaper();
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
    return pid;
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
    writeAll(fd, stubElf(process.pid));
    pid = spawnSibling(procPath('self', 'fd', fd), rootPid);
  } finally {
    close(fd);
  }
  if (pid === -17) throw new RestoreError(`cannot create pid ${rootPid}: it is in use`);
  if (pid < 0)
    throw new RestoreError(`cannot create the root ${rootPid} as criu-ts's sibling: errno ${-pid}`);
  return seizeStub(pid);
}

/** Seize a stub started by spawnStub (or as the root's sibling): stopped, with TRACE_OPTIONS. */
export function seizeStub(pid: number): Tracee {
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
    // Not close-on-exec: the stub inherits it, and execs it as /proc/self/fd/N.
    const fd = memfdCreate('criu-ts-restore', 0);
    try {
      writeAll(fd, stubElf(process.pid));
      return spawned(spawnChild(procPath('self', 'fd', fd)));
    } finally {
      close(fd);
    }
  }
  // An unnamed file in the temp dir: nothing to remove, whenever criu-ts dies. Written, then reopened
  // read-only (not close-on-exec, exec'ed as /proc/self/fd/N) with the writer closed: no ETXTBSY.
  const w = open(tmpdir(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0o700);
  let fd: number;
  try {
    writeAll(w, stubElf(process.pid));
    fd = open(procPath('self', 'fd', w), O_RDONLY, 0);
  } finally {
    close(w);
  }
  try {
    const pid = spawned(spawnChild(procPath('self', 'fd', fd)));
    let same = false;
    try {
      same = statSync(procPath(pid, 'exe')).ino === fstatSync(fd).ino;
    } catch {
      // exec failed (a noexec mount): the child exited (127) and is a zombie
    }
    if (!same) {
      killAndReap(pid);
      throw new RestoreError('the restore stub did not start');
    }
    return pid;
  } finally {
    close(fd);
  }
}

function spawned(pid: number): number {
  if (pid < 0) throw new RestoreError(`cannot start the restore stub: clone3: errno ${-pid}`);
  return pid;
}
