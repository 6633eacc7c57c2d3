// struct clone_args encoder for clone3(2). criu-ts never calls clone3 in its own process (Node cannot
// survive a fork of itself); the restorer injects it into a stub task, so the encoder also lays out the
// set_tid array and lets the caller say where the bytes will live in that task.
import { CLONE_ARGS_SIZE_VER2 } from './constants/clone.js';
import { addressOf } from './native.js';

export interface CloneArgs {
  /** CLONE_* flags (without the exit signal, which has its own field). */
  flags?: bigint | number;
  /** Where the kernel stores the child's pidfd (CLONE_PIDFD): an address in the calling task. */
  pidfd?: bigint;
  /** Address for CLONE_CHILD_SETTID / CLONE_CHILD_CLEARTID. */
  childTid?: bigint;
  /** Address for CLONE_PARENT_SETTID. */
  parentTid?: bigint;
  /** Signal sent to the parent when the child exits (SIGCHLD usually; 0 with CLONE_PARENT|THREAD). */
  exitSignal?: number;
  /** Lowest address of the child's stack (not its top, unlike clone(2)). */
  stack?: bigint;
  stackSize?: bigint | number;
  /** New TLS base (CLONE_SETTLS): fs_base on x86_64. */
  tls?: bigint;
  /**
   * Pids for the child, innermost pid namespace first (set_tid). Laid out after the struct in the
   * returned Buffer, unless setTidAddress says where the caller already put them.
   */
  setTid?: readonly number[];
  /** Address of a pid_t array the caller placed itself; used with setTidSize instead of setTid. */
  setTidAddress?: bigint;
  setTidSize?: number;
  /** cgroup2 directory fd (CLONE_INTO_CGROUP). */
  cgroup?: number;
}

export interface EncodeCloneArgsOptions {
  /**
   * Address at which the returned bytes will be placed in the task that calls clone3 (for injection);
   * the set_tid pointer is computed from it. Default: the address of the returned Buffer itself.
   */
  base?: bigint;
}

const OFF = {
  flags: 0,
  pidfd: 8,
  childTid: 16,
  parentTid: 24,
  exitSignal: 32,
  stack: 40,
  stackSize: 48,
  tls: 56,
  setTid: 64,
  setTidSize: 72,
  cgroup: 80,
} as const;

/**
 * struct clone_args (88 bytes, CLONE_ARGS_SIZE_VER2), followed by the set_tid array (4 bytes per pid)
 * when `setTid` is given. Pass CLONE_ARGS_SIZE_VER2 as clone3's size argument, not the Buffer length.
 */
export function encodeCloneArgs(args: CloneArgs, opts: EncodeCloneArgsOptions = {}): Buffer {
  const tids = args.setTid ?? [];
  if (tids.length > 0 && args.setTidAddress !== undefined) {
    throw new TypeError('encodeCloneArgs: give either setTid or setTidAddress, not both');
  }
  const b = Buffer.alloc(CLONE_ARGS_SIZE_VER2 + tids.length * 4);
  b.writeBigUInt64LE(BigInt(args.flags ?? 0n), OFF.flags);
  b.writeBigUInt64LE(args.pidfd ?? 0n, OFF.pidfd);
  b.writeBigUInt64LE(args.childTid ?? 0n, OFF.childTid);
  b.writeBigUInt64LE(args.parentTid ?? 0n, OFF.parentTid);
  b.writeBigUInt64LE(BigInt(args.exitSignal ?? 0), OFF.exitSignal);
  b.writeBigUInt64LE(args.stack ?? 0n, OFF.stack);
  b.writeBigUInt64LE(BigInt(args.stackSize ?? 0), OFF.stackSize);
  b.writeBigUInt64LE(args.tls ?? 0n, OFF.tls);
  if (tids.length > 0) {
    tids.forEach((tid, i) => {
      b.writeInt32LE(tid, CLONE_ARGS_SIZE_VER2 + i * 4);
    });
    const base = opts.base ?? addressOf(b);
    b.writeBigUInt64LE(base + BigInt(CLONE_ARGS_SIZE_VER2), OFF.setTid);
    b.writeBigUInt64LE(BigInt(tids.length), OFF.setTidSize);
  } else if (args.setTidAddress !== undefined) {
    b.writeBigUInt64LE(args.setTidAddress, OFF.setTid);
    b.writeBigUInt64LE(BigInt(args.setTidSize ?? 0), OFF.setTidSize);
  }
  b.writeBigUInt64LE(BigInt(args.cgroup ?? 0), OFF.cgroup);
  return b;
}

/** Decoded struct clone_args (the inverse of encodeCloneArgs, for logs and tests). */
export interface DecodedCloneArgs {
  flags: bigint;
  pidfd: bigint;
  childTid: bigint;
  parentTid: bigint;
  exitSignal: number;
  stack: bigint;
  stackSize: bigint;
  tls: bigint;
  setTidAddress: bigint;
  setTidSize: number;
  cgroup: number;
}

export function decodeCloneArgs(b: Buffer): DecodedCloneArgs {
  return {
    flags: b.readBigUInt64LE(OFF.flags),
    pidfd: b.readBigUInt64LE(OFF.pidfd),
    childTid: b.readBigUInt64LE(OFF.childTid),
    parentTid: b.readBigUInt64LE(OFF.parentTid),
    exitSignal: Number(b.readBigUInt64LE(OFF.exitSignal)),
    stack: b.readBigUInt64LE(OFF.stack),
    stackSize: b.readBigUInt64LE(OFF.stackSize),
    tls: b.readBigUInt64LE(OFF.tls),
    setTidAddress: b.readBigUInt64LE(OFF.setTid),
    setTidSize: Number(b.readBigUInt64LE(OFF.setTidSize)),
    cgroup: Number(b.readBigUInt64LE(OFF.cgroup)),
  };
}
