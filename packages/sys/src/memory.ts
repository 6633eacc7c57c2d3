// Cross-process memory (process_vm_readv / process_vm_writev) and the dumper's own mappings.
import { IOV_MAX, MREMAP_FIXED, MREMAP_MAYMOVE } from './constants/mm.js';
import { SYS } from './constants/syscalls.js';
import { SysError } from './errno.js';
import { addressOf, checked, lastErrno, syscall, withPinned } from './native.js';

/**
 * One transfer: `len` bytes between local memory and `remote` (an address in the other process).
 * local is a Buffer (with an optional byte offset into it) or a raw address in this process (memory
 * this process mapped itself, e.g. with mmap()).
 */
export interface VmIovec {
  local: Buffer | bigint;
  /** Byte offset into `local` when it is a Buffer. */
  offset?: number;
  remote: bigint;
  /** Bytes to move; defaults to the rest of the local Buffer. */
  len?: number;
}

// A u64 from a number below 2^53 (user-space addresses and lengths), without allocating a bigint:
// building thousands of iovecs per call is on the memory-dump hot path.
function writeU64(buf: Buffer, value: number, off: number): void {
  buf.writeUInt32LE(value % 0x1_0000_0000, off);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), off + 4);
}

// Fill `liov` / `riov` (16 bytes per entry) for iovs[from, to). Returns the bytes requested.
function fillIovecs(iovs: readonly VmIovec[], from: number, to: number, liov: Buffer, riov: Buffer): number {
  let total = 0;
  // Most calls read many pieces into one big Buffer: take its address once.
  let lastBuf: Buffer | undefined;
  let lastAddr = 0;
  for (let i = from; i < to; i++) {
    const v = iovs[i] as VmIovec;
    const o = (i - from) * 16;
    let len: number;
    if (typeof v.local === 'bigint') {
      if (v.len === undefined) throw new RangeError('process_vm: len is required when local is an address');
      len = v.len;
      liov.writeBigUInt64LE(v.local, o);
    } else {
      const offset = v.offset ?? 0;
      len = v.len ?? v.local.length - offset;
      if (offset < 0 || len < 0 || offset + len > v.local.length) {
        throw new RangeError(
          `process_vm: ${len} bytes at offset ${offset} exceed the ${v.local.length}-byte buffer`,
        );
      }
      if (v.local !== lastBuf) {
        lastBuf = v.local;
        lastAddr = Number(addressOf(v.local));
      }
      writeU64(liov, lastAddr + offset, o);
    }
    writeU64(liov, len, o + 8);
    riov.writeBigUInt64LE(v.remote, o);
    writeU64(riov, len, o + 8);
    total += len;
  }
  return total;
}

/**
 * Run process_vm_readv/writev over any number of iovecs, IOV_MAX at a time. Returns the bytes moved;
 * a short count means the transfer stopped at an unmapped or unreadable remote page (the kernel reports
 * partial transfers at iovec granularity). An error before any byte moved throws SysError.
 */
function vmTransfer(nr: number, call: string, pid: number, iovs: readonly VmIovec[], flags: number): number {
  const chunk = Math.min(iovs.length, IOV_MAX);
  const liov = Buffer.alloc(chunk * 16);
  const riov = Buffer.alloc(chunk * 16);
  let done = 0;
  for (let from = 0; from < iovs.length; from += IOV_MAX) {
    const to = Math.min(from + IOV_MAX, iovs.length);
    const want = fillIovecs(iovs, from, to, liov, riov);
    const n = to - from;
    // The local Buffers are referenced only by address inside liov: keep them reachable.
    const r = withPinned(iovs, () => syscall(nr, pid, liov, n, riov, n, flags));
    if (r === -1) {
      const errno = lastErrno();
      if (done > 0) return done;
      throw new SysError(call, errno, `pid ${pid}`);
    }
    done += r;
    if (r < want) return done;
  }
  return done;
}

/** process_vm_readv(2): copy remote memory into local buffers. Returns the bytes read. */
export function processVmReadv(pid: number, iovs: readonly VmIovec[], flags = 0): number {
  return vmTransfer(SYS.process_vm_readv, 'process_vm_readv', pid, iovs, flags);
}

/**
 * process_vm_writev(2): copy local buffers into remote memory. Returns the bytes written. Fails with
 * EFAULT on pages the target cannot write (read-only mappings); use /proc/PID/mem or POKEDATA there.
 */
export function processVmWritev(pid: number, iovs: readonly VmIovec[], flags = 0): number {
  return vmTransfer(SYS.process_vm_writev, 'process_vm_writev', pid, iovs, flags);
}

/** Read `len` bytes (default buf.length) at `remote` into buf. Returns the bytes read. */
export function vmRead(pid: number, remote: bigint, buf: Buffer, len = buf.length): number {
  return processVmReadv(pid, [{ local: buf, remote, len }]);
}

/** Write `len` bytes (default buf.length) of buf at `remote`. Returns the bytes written. */
export function vmWrite(pid: number, remote: bigint, buf: Buffer, len = buf.length): number {
  return processVmWritev(pid, [{ local: buf, remote, len }]);
}

// --- own mappings ------------------------------------------------------------------------------------

/** mmap(2) in this process. Returns the address as bigint. */
export function mmap(
  addr: bigint,
  length: number | bigint,
  prot: number,
  flags: number,
  fd = -1,
  offset: number | bigint = 0,
): bigint {
  const r = checked(
    'mmap',
    () => `length ${length}`,
    syscall(SYS.mmap, addr, length, prot, flags, fd, offset),
  );
  return BigInt.asUintN(64, BigInt(r));
}

/** munmap(2) in this process. */
export function munmap(addr: bigint, length: number | bigint): void {
  checked('munmap', () => `0x${addr.toString(16)}`, syscall(SYS.munmap, addr, length));
}

/** mremap(2) in this process of `len` bytes at `from` onto `to` (MREMAP_MAYMOVE | MREMAP_FIXED). */
export function mremapFixed(from: bigint, len: number | bigint, to: bigint): bigint {
  const r = checked(
    'mremap',
    () => `0x${from.toString(16)} to 0x${to.toString(16)}`,
    syscall(SYS.mremap, from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to),
  );
  return BigInt.asUintN(64, BigInt(r));
}

/** mprotect(2) in this process. */
export function mprotect(addr: bigint, length: number | bigint, prot: number): void {
  checked('mprotect', () => `0x${addr.toString(16)}`, syscall(SYS.mprotect, addr, length, prot));
}

/** madvise(2) in this process. */
export function madvise(addr: bigint, length: number | bigint, advice: number): void {
  checked('madvise', () => `0x${addr.toString(16)}`, syscall(SYS.madvise, addr, length, advice));
}

// --- buffers for O_DIRECT and the page cache ------------------------------------------------------

/**
 * A zero-filled Buffer of `size` bytes whose first byte sits at a multiple of `align` (a power of two):
 * what O_DIRECT reads and writes need, and what process_vm_readv fills a page at a time.
 */
export function alignedBuffer(size: number, align = 4096): Buffer {
  const raw = Buffer.alloc(size + align);
  const skew = Number(addressOf(raw) & BigInt(align - 1));
  return raw.subarray(skew === 0 ? 0 : align - skew, (skew === 0 ? 0 : align - skew) + size);
}

/** Whether `buf` starts at a multiple of `align` (a power of two). */
export function isAligned(buf: Buffer, align = 4096): boolean {
  return (addressOf(buf) & BigInt(align - 1)) === 0n;
}

/** struct cachestat (linux/mman.h): pages of a file range in the page cache. */
export interface CacheStat {
  cache: number;
  dirty: number;
  writeback: number;
  evicted: number;
  recentlyEvicted: number;
}

/**
 * cachestat(2) (Linux 6.5+) of `len` bytes at `off` of `fd` (len 0: to the end of the file), or
 * undefined where the kernel has no cachestat (ENOSYS) or refuses the file (EOPNOTSUPP: hugetlbfs).
 */
export function cachestat(fd: number, off = 0, len = 0): CacheStat | undefined {
  const range = Buffer.alloc(16);
  writeU64(range, off, 0);
  writeU64(range, len, 8);
  const out = Buffer.alloc(40);
  if (syscall(SYS.cachestat, fd, range, out, 0) === -1) {
    const errno = lastErrno();
    if (errno === 38 || errno === 95) return undefined;
    throw new SysError('cachestat', errno, `fd ${fd}`);
  }
  const u = (i: number) => Number(out.readBigUInt64LE(i * 8));
  return { cache: u(0), dirty: u(1), writeback: u(2), evicted: u(3), recentlyEvicted: u(4) };
}
