// Memory of another process: process_vm_readv / process_vm_writev (no ptrace stop needed, many iovecs per
// call), and /proc/PID/mem for writes process_vm_writev refuses (read-only pages: /proc/PID/mem writes
// with FOLL_FORCE, like a debugger setting a breakpoint, and copies on write in private mappings).
import { procPath } from '@criu-ts/bfd';
import {
  addressOf,
  close,
  IOV_MAX,
  isSysError,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  open,
  pread,
  pwrite,
  raw,
  SYS,
  SysError,
  vmRead,
  vmWrite,
  withPinned,
} from '@criu-ts/sys';

/** Read buf.length bytes at `addr` of `pid` into buf. Returns the bytes read (short at an unmapped page). */
export function readMemory(pid: number, addr: bigint, buf: Buffer): number {
  if (buf.length === 0) return 0;
  return vmRead(pid, addr, buf);
}

/**
 * Write buf at `addr` of `pid`. process_vm_writev first; what it cannot write (read-only or otherwise
 * unwritable pages: EFAULT, or a short count) is written through /proc/PID/mem. Returns the bytes
 * written; throws if nothing could be.
 */
export function writeMemory(pid: number, addr: bigint, buf: Buffer): number {
  if (buf.length === 0) return 0;
  let done = 0;
  try {
    done = vmWrite(pid, addr, buf);
  } catch (e) {
    if (!isSysError(e, 'EFAULT')) throw e;
  }
  if (done === buf.length) return done;
  return done + writeProcMem(pid, addr + BigInt(done), buf.subarray(done));
}

/** Write through /proc/PID/mem (works on read-only mappings of a task we may ptrace). */
export function writeProcMem(pid: number, addr: bigint, buf: Buffer): number {
  const fd = open(procPath(pid, 'mem'), O_RDWR | O_CLOEXEC);
  try {
    let done = 0;
    while (done < buf.length) {
      const n = pwrite(fd, buf, buf.length - done, addr + BigInt(done), done);
      if (n === 0) break;
      done += n;
    }
    return done;
  } finally {
    close(fd);
  }
}

/** Read through /proc/PID/mem (also reads pages process_vm_readv refuses, e.g. PROT_NONE ones). */
export function readProcMem(pid: number, addr: bigint, buf: Buffer): number {
  const fd = open(procPath(pid, 'mem'), O_RDONLY | O_CLOEXEC);
  try {
    let done = 0;
    while (done < buf.length) {
      const n = pread(fd, buf, buf.length - done, addr + BigInt(done), done);
      if (n === 0) break;
      done += n;
    }
    return done;
  } finally {
    close(fd);
  }
}

/** A range of remote memory. */
export interface MemoryRun {
  addr: bigint;
  len: number;
}

// iovec arrays reused by every readRuns() call: IOV_MAX entries of 16 bytes each.
const liov = Buffer.alloc(IOV_MAX * 16);
const riov = Buffer.alloc(IOV_MAX * 16);
const lview = new DataView(liov.buffer, liov.byteOffset, liov.length);
const rview = new DataView(riov.buffer, riov.byteOffset, riov.length);

/**
 * Gather many remote runs back to back into `into` (from `offset`), IOV_MAX iovecs per process_vm_readv
 * call. Returns the bytes read: less than the sum of the runs when a remote page is unmapped (the kernel
 * stops at the first iovec it cannot read completely).
 */
export function readRuns(pid: number, runs: readonly MemoryRun[], into: Buffer, offset = 0): number {
  let want = 0;
  for (const r of runs) want += r.len;
  if (offset + want > into.length) {
    throw new RangeError(`readRuns: ${want} bytes at offset ${offset} exceed the ${into.length}-byte buffer`);
  }
  const base = addressOf(into) + BigInt(offset);
  let done = 0;
  return withPinned(into, () => {
    for (let from = 0; from < runs.length; from += IOV_MAX) {
      const n = Math.min(IOV_MAX, runs.length - from);
      let chunk = 0;
      for (let i = 0; i < n; i++) {
        const r = runs[from + i] as MemoryRun;
        const o = i * 16;
        lview.setBigUint64(o, base + BigInt(done + chunk), true);
        lview.setBigUint64(o + 8, BigInt(r.len), true);
        rview.setBigUint64(o, r.addr, true);
        rview.setBigUint64(o + 8, BigInt(r.len), true);
        chunk += r.len;
      }
      const got = raw.syscall(SYS.process_vm_readv, pid, liov, n, riov, n, 0);
      if (got === -1) {
        const errno = raw.lastErrno();
        if (done > 0) return done;
        throw new SysError('process_vm_readv', errno, `pid ${pid}`);
      }
      done += got;
      if (got < chunk) return done;
    }
    return done;
  });
}
