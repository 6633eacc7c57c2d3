// The one place that talks to koffi. Every binding goes through glibc's syscall(3) with a fixed
// 6-argument prototype whose arguments are all `void *`:
//  - koffi accepts a number, a bigint, null or a Buffer for a `void *` argument, so one prototype serves
//    integer arguments, addresses (bigint) and buffers alike;
//  - a Buffer passed this way is passed by address (byteOffset included, no copy) and koffi keeps it
//    alive for the duration of the call, which a bigint address taken beforehand would not guarantee
//    (the Buffer could be collected between koffi.address() and the call).
// glibc's syscall() maps the kernel's -4095..-1 results to -1 + errno, so -1 always means failure.
//
// koffi (a native addon) and libc are bound on the first call, not when the module is imported: a
// command that makes no system call (`criu-ts --version`, a usage error) does not pay for loading them.
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type koffiModule from 'koffi';
import { SysError } from './errno.js';

/** What a syscall argument may be: an integer, an address, a buffer (passed by pointer) or NULL. */
export type Arg = number | bigint | Buffer | null;

type Koffi = typeof koffiModule;
type Library = ReturnType<Koffi['load']>;
type Syscall6 = (nr: number, a1: Arg, a2: Arg, a3: Arg, a4: Arg, a5: Arg, a6: Arg) => number;

let koffiLib: Koffi | undefined;
let libcLib: Library | undefined;
let syscall6: Syscall6 | undefined;

/** koffi itself, loaded on first use. */
export function koffi(): Koffi {
  if (koffiLib === undefined) {
    const require = createRequire(import.meta.url);
    koffiLib = koffiNative(require) ?? (require('koffi') as Koffi);
  }
  return koffiLib;
}

/**
 * koffi's native module, loaded without koffi's entry point where npm and pnpm put it (else undefined:
 * the caller goes through the entry). The entry finds the module by reading node's ELF header and
 * resolving packages through their `exports` maps, about 12 ms here, a tenth of a small dump; the
 * module alone loads in 3 ms and is all of koffi that criu-ts calls (the entry only adds deprecated
 * aliases). The module must be the one the installed koffi expects, as the entry checks too.
 */
function koffiNative(require: NodeJS.Require): Koffi | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined;
  try {
    for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
      const linked = join(dir, 'node_modules', 'koffi');
      if (existsSync(linked)) {
        const home = realpathSync(linked);
        const native = [
          join(home, '..', '@koromix', 'koffi-linux-x64'), // pnpm, npm (hoisted)
          join(home, 'node_modules', '@koromix', 'koffi-linux-x64'), // npm (nested)
        ]
          .map((pkg) => join(pkg, 'linux_x64', 'koffi.node'))
          .find((file) => existsSync(file));
        if (native === undefined) return undefined;
        const { version } = require(join(home, 'package.json')) as { version: string };
        const k = require(native) as Koffi & { version?: string };
        return k.version === version ? k : undefined;
      }
      if (dir === dirname(dir)) return undefined;
    }
  } catch {
    return undefined; // musl's libc, another layout: koffi's entry knows
  }
}

/** glibc, opened through koffi on first use. */
export function libc(): Library {
  libcLib ??= koffi().load('libc.so.6');
  return libcLib;
}

function bindSyscall(): Syscall6 {
  syscall6 = libc().func(
    'long syscall(long nr, void *a1, void *a2, void *a3, void *a4, void *a5, void *a6)',
  ) as Syscall6;
  return syscall6;
}

/**
 * Raw system call: the kernel's result, or -1 with errno readable through `lastErrno()`.
 * Missing arguments are 0. Results are numbers: sizes, fds and user-space addresses (< 2^47) are exact
 * in a double. koffi hands back a bigint for a result beyond 2^53 (an lseek offset in a huge sparse
 * file); callers that can see one convert with BigInt(), which accepts both.
 */
export function syscall(
  nr: number,
  a1: Arg = 0,
  a2: Arg = 0,
  a3: Arg = 0,
  a4: Arg = 0,
  a5: Arg = 0,
  a6: Arg = 0,
) {
  return (syscall6 ?? bindSyscall())(nr, a1, a2, a3, a4, a5, a6);
}

/**
 * errno of the calling thread. Read it right after a failed call: koffi does not save errno per call for
 * synchronous functions, so anything that runs native code in between (another koffi call) overwrites it.
 */
export function lastErrno(): number {
  return koffi().errno();
}

/** A SysError for the errno the last call left behind. */
export function errnoError(call: string, detail?: string): SysError {
  return new SysError(call, lastErrno(), detail);
}

/** Address of a Buffer's first byte (byteOffset included). The caller must keep `buf` referenced. */
export function addressOf(buf: Buffer | ArrayBufferView): bigint {
  return koffi().address(buf);
}

// Objects whose addresses were written into a structure the kernel reads (iovec arrays, msghdr): they
// are pushed here for the duration of the call so the garbage collector cannot free their memory while
// only a raw address refers to it.
const pinned: unknown[] = [];

/** Run `fn` with `keep` kept reachable: use it when a call passes addresses of Buffers inside a struct. */
export function withPinned<T>(keep: unknown, fn: () => T): T {
  pinned.push(keep);
  try {
    return fn();
  } finally {
    pinned.pop();
  }
}

/** A NUL-terminated copy of a path for the kernel; Buffers pass raw bytes (non-UTF-8 file names). */
export function cString(s: string | Buffer): Buffer {
  if (typeof s === 'string') return Buffer.from(`${s}\0`, 'utf8');
  if (s.length > 0 && s[s.length - 1] === 0) return s;
  return Buffer.concat([s, Buffer.alloc(1)]);
}

const EINTR = 4;

/**
 * Run a syscall, retrying on EINTR (only for calls that are safe to repeat: reads into the same buffer,
 * waits, opens without O_CREAT|O_EXCL side effects...). Returns the result or throws SysError.
 */
export function checkedRetry(call: string, detail: () => string | undefined, run: () => number): number {
  for (;;) {
    const r = run();
    if (r !== -1) return r;
    const errno = lastErrno();
    if (errno !== EINTR) throw new SysError(call, errno, detail());
  }
}

/** Run a syscall once; throw SysError on -1. */
export function checked(call: string, detail: () => string | undefined, r: number): number {
  if (r === -1) throw new SysError(call, lastErrno(), detail());
  return r;
}
