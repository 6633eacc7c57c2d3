// A process created as this process's *sibling* (the child of our parent) with a chosen pid, running a
// given program: what `criu restore --restore-sibling` needs, so that the restored root task is the
// child of whoever started criu-ts (a container runtime that waits for it). Only the caller of clone()
// can give a new process its own parent (CLONE_PARENT), and Node cannot fork, so a 50-byte function
// placed in an executable page does it: clone3(CLONE_PARENT | CLONE_VM | CLONE_VFORK) onto a stack of
// its own, and in the child execve() at once. CLONE_VM avoids copying Node's address space; CLONE_VFORK
// holds this thread until the child has exec'd (or died), so the shared memory is never used by both.
// Signals are blocked around the call: the child must not run one of Node's handlers on our tiny stack.
// The same function, without CLONE_PARENT, starts a plain child (spawnChild: the restore stub) in a
// fraction of a millisecond, where a shell started through child_process takes tens.

import { encodeCloneArgs } from './clone3.js';
import { CLONE_ARGS_SIZE_VER2, CLONE_PARENT, CLONE_VFORK, CLONE_VM } from './constants/clone.js';
import { SIGCHLD } from './constants/signals.js';
import { mmap, mprotect, munmap } from './memory.js';
import { cString, koffi, libc, syscall } from './native.js';

// Layout of the data block the function gets in rdi.
const ARGS_AT = 0; // struct clone_args, then the set_tid array
const PATH_PTR_AT = 96; // char *path
const ARGV_PTR_AT = 104; // char **argv
const PATH_AT = 128; // the path string
const ARGV_AT = 1024; // { path, NULL }
const BLOCK_SIZE = 4096;
const STACK_SIZE = 64 * 1024;

// biome-ignore format: one instruction per line
const CODE = Buffer.from([
  0x49, 0x89, 0xf8, //             mov  r8, rdi            ; the block (survives syscalls, copied to the child)
  0xb8, 0xb3, 0x01, 0x00, 0x00, // mov  eax, 435          ; clone3(block, 88)
  0xbe, 0x58, 0x00, 0x00, 0x00, // mov  esi, 88
  0x0f, 0x05, //                   syscall
  0x48, 0x85, 0xc0, //             test rax, rax
  0x75, 0x1d, //                   jnz  parent             ; pid or -errno: return it
  0x49, 0x8b, 0x78, 0x60, //       mov  rdi, [r8+96]       ; child, on its own stack: execve(path, argv, NULL)
  0x49, 0x8b, 0x70, 0x68, //       mov  rsi, [r8+104]
  0x31, 0xd2, //                   xor  edx, edx
  0xb8, 0x3b, 0x00, 0x00, 0x00, // mov  eax, 59
  0x0f, 0x05, //                   syscall
  0xbf, 0x7f, 0x00, 0x00, 0x00, // mov  edi, 127          ; exec failed: _exit(127)
  0xb8, 0x3c, 0x00, 0x00, 0x00, // mov  eax, 60
  0x0f, 0x05, //                   syscall
  0xc3, //                         parent: ret
]);

const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;
const MAP_PRIVATE_ANON = 0x22;
const SIG_SETMASK = 2;
const SYS_RT_SIGPROCMASK = 14;

let fn: { addr: bigint; proto: unknown; memcpy: (dst: bigint, src: Buffer, n: number) => void } | undefined;

function siblingFunction() {
  if (!fn) {
    const addr = mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE_ANON);
    const memcpy = libc().func('void *memcpy(uint64_t dst, const uint8_t *src, size_t n)') as (
      dst: bigint,
      src: Buffer,
      n: number,
    ) => void;
    memcpy(addr, CODE, CODE.length);
    mprotect(addr, 4096, PROT_READ | PROT_EXEC);
    fn = { addr, proto: koffi().proto('int64_t criu_ts_clone_sibling(uint64_t block)'), memcpy };
  }
  return fn;
}

/**
 * Start `path` (no arguments but argv[0], an empty environment) as a sibling of this process with pid
 * `pid` (clone3 set_tid: needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE). Its exit signal is this
 * process's own (the kernel's rule for CLONE_PARENT), so our parent can wait for it. Returns the pid,
 * or -errno when clone3 failed. An exec that fails makes the child exit with status 127.
 */
export function spawnSibling(path: string, pid: number): number {
  return cloneExec(path, CLONE_PARENT | CLONE_VM | CLONE_VFORK, 0, [pid]);
}

/**
 * Start `path` (no arguments but argv[0], an empty environment) as a child of this process, exit
 * signal SIGCHLD, by the same clone3 + execve as spawnSibling: no shell, no fork of Node's address
 * space, returning once the child has exec'd (CLONE_VFORK). libuv never waits for it (it waits only
 * for the pids it spawned itself), so its stops and its exit are the caller's to wait for. The child
 * inherits every fd not marked close-on-exec (0-2 among them) and starts with every signal blocked.
 * Returns the pid, or -errno when clone3 failed; an exec that fails makes the child exit with 127.
 */
export function spawnChild(path: string): number {
  return cloneExec(path, CLONE_VM | CLONE_VFORK, SIGCHLD, []);
}

function cloneExec(path: string, flags: bigint, exitSignal: number, setTid: number[]): number {
  const f = siblingFunction();
  const region = mmap(0n, BLOCK_SIZE + STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE_ANON);
  const stack = region + BigInt(BLOCK_SIZE);
  try {
    const block = Buffer.alloc(BLOCK_SIZE);
    encodeCloneArgs({ flags, exitSignal, setTid, stack, stackSize: STACK_SIZE }, { base: region }).copy(
      block,
      ARGS_AT,
    );
    const pathBytes = cString(path);
    if (PATH_AT + pathBytes.length > ARGV_AT) throw new RangeError(`spawn: path too long: ${path}`);
    pathBytes.copy(block, PATH_AT);
    block.writeBigUInt64LE(region + BigInt(PATH_AT), PATH_PTR_AT);
    block.writeBigUInt64LE(region + BigInt(ARGV_AT), ARGV_PTR_AT);
    block.writeBigUInt64LE(region + BigInt(PATH_AT), ARGV_AT); // argv[0]; argv[1] stays NULL
    f.memcpy(region, block, BLOCK_SIZE);
    if (CLONE_ARGS_SIZE_VER2 + 4 > PATH_PTR_AT) throw new Error('spawn: block layout');
    return withSignalsBlocked(() => Number(koffi().call(f.addr, f.proto as never, region)));
  } finally {
    munmap(region, BLOCK_SIZE + STACK_SIZE);
  }
}

function withSignalsBlocked<T>(run: () => T): T {
  const all = Buffer.alloc(8, 0xff);
  const old = Buffer.alloc(8);
  syscall(SYS_RT_SIGPROCMASK, SIG_SETMASK, all, old, 8);
  try {
    return run();
  } finally {
    syscall(SYS_RT_SIGPROCMASK, SIG_SETMASK, old, null, 8);
  }
}
