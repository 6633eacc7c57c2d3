// Linux native AIO (io_setup(2) and friends) in this process, and the layout of the ring the kernel
// maps for a context (fs/aio.c): `struct aio_ring` then `nr` `struct io_event` slots. The context id
// a program uses is the ring's address.
import { SYS } from './constants/syscalls.js';
import { checked, syscall } from './native.js';

/** struct aio_ring: id, nr, head, tail, magic, compat_features, incompat_features, header_length (u32 each). */
export const AIO_RING_HEADER_SIZE = 32;
/** struct io_event: data, obj, res, res2 (u64 each). */
export const AIO_IO_EVENT_SIZE = 32;
export const AIO_RING_MAGIC = 0xa10a10a1;
export const AIO_RING_COMPAT_FEATURES = 1;
export const AIO_RING_INCOMPAT_FEATURES = 0;
/** iocb opcodes (linux/aio_abi.h). */
export const IOCB_CMD_PREAD = 0;
export const IOCB_CMD_PWRITE = 1;
/** sizeof(struct iocb). */
export const IOCB_SIZE = 64;

/** The header of an AIO ring, as read from its first 32 bytes. */
export interface AioRingHeader {
  id: number;
  nr: number;
  head: number;
  tail: number;
  magic: number;
  compatFeatures: number;
  incompatFeatures: number;
  headerLength: number;
}

export function parseAioRingHeader(b: Buffer): AioRingHeader {
  if (b.length < AIO_RING_HEADER_SIZE)
    throw new RangeError(`an AIO ring header is ${AIO_RING_HEADER_SIZE} bytes`);
  return {
    id: b.readUInt32LE(0),
    nr: b.readUInt32LE(4),
    head: b.readUInt32LE(8),
    tail: b.readUInt32LE(12),
    magic: b.readUInt32LE(16),
    compatFeatures: b.readUInt32LE(20),
    incompatFeatures: b.readUInt32LE(24),
    headerLength: b.readUInt32LE(28),
  };
}

/** io_events slots a ring of `len` bytes has (what the kernel writes into its `nr`). */
export const aioRingEvents = (len: bigint | number): number =>
  Math.floor((Number(len) - AIO_RING_HEADER_SIZE) / AIO_IO_EVENT_SIZE);

/** A struct iocb (64 bytes) for one request. */
export function iocb(op: number, fd: number, buf: bigint, nbytes: bigint | number, offset = 0n): Buffer {
  const b = Buffer.alloc(IOCB_SIZE);
  b.writeUInt16LE(op, 16); // aio_lio_opcode
  b.writeUInt32LE(fd, 20); // aio_fildes
  b.writeBigUInt64LE(buf, 24); // aio_buf
  b.writeBigUInt64LE(BigInt(nbytes), 32); // aio_nbytes
  b.writeBigInt64LE(offset, 40); // aio_offset
  return b;
}

/** io_setup(2) in this process: a context for `nrEvents` requests; returns its id (the ring's address). */
export function ioSetup(nrEvents: number): bigint {
  const out = Buffer.alloc(8);
  checked('io_setup', () => `nr_events ${nrEvents}`, syscall(SYS.io_setup, nrEvents, out));
  return out.readBigUInt64LE(0);
}

/** io_destroy(2) in this process (unmaps the ring). */
export function ioDestroy(ctx: bigint): void {
  checked('io_destroy', () => `ctx 0x${ctx.toString(16)}`, syscall(SYS.io_destroy, ctx));
}

/**
 * io_getevents(2) in this process without waiting (a zero timeout); returns the events reaped (at most
 * `max`, 0 asks nothing and only checks the context).
 */
export function ioGeteventsNow(ctx: bigint, max = 0): number {
  const events = Buffer.alloc(Math.max(1, max) * AIO_IO_EVENT_SIZE);
  const timeout = Buffer.alloc(16);
  return checked(
    'io_getevents',
    () => `ctx 0x${ctx.toString(16)}`,
    syscall(SYS.io_getevents, ctx, 0, max, events, timeout),
  );
}
