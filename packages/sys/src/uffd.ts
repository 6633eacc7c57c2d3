// userfaultfd(2) ioctls for write tracking: UFFDIO_API with the async write-protect features, and
// UFFDIO_REGISTER / UFFDIO_UNREGISTER of ranges in MODE_WP. (Lazy pages would add MODE_MISSING and
// UFFDIO_COPY; criu-ts's dirty tracking needs only these.)
import { ioctl } from './process.js';

/** The only API version (UFFD_API). */
export const UFFD_API = 0xaan;
/** userfaultfd(2) flag: only faults from user mode are handled (allowed without privileges). */
export const UFFD_USER_MODE_ONLY = 1;

export const UFFD_FEATURE_WP_UNPOPULATED = 1n << 13n;
export const UFFD_FEATURE_WP_ASYNC = 1n << 15n;

export const UFFDIO_REGISTER_MODE_MISSING = 1n;
export const UFFDIO_REGISTER_MODE_WP = 2n;

/** _IOWR(0xAA, 0x3F, struct uffdio_api) (24 bytes). */
export const UFFDIO_API = 0xc018aa3f;
/** _IOWR(0xAA, 0x00, struct uffdio_register) (32 bytes). */
export const UFFDIO_REGISTER = 0xc020aa00;
/** _IOR(0xAA, 0x01, struct uffdio_range) (16 bytes). */
export const UFFDIO_UNREGISTER = 0x8010aa01;

/**
 * UFFDIO_API: enables `features` on a fresh userfaultfd; returns the features and the ioctls the kernel
 * offers (a second call on the same fd fails with EINVAL).
 */
export function uffdApi(fd: number, features: bigint): { features: bigint; ioctls: bigint } {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(UFFD_API, 0);
  b.writeBigUInt64LE(features, 8);
  ioctl(fd, UFFDIO_API, b);
  return { features: b.readBigUInt64LE(8), ioctls: b.readBigUInt64LE(16) };
}

/** UFFDIO_REGISTER of [start, start + len) with `mode`; returns the ioctls allowed on the range. */
export function uffdRegister(fd: number, start: bigint, len: bigint, mode: bigint): bigint {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  b.writeBigUInt64LE(mode, 16);
  ioctl(fd, UFFDIO_REGISTER, b);
  return b.readBigUInt64LE(24);
}

/** UFFDIO_UNREGISTER of [start, start + len). */
export function uffdUnregister(fd: number, start: bigint, len: bigint): void {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  ioctl(fd, UFFDIO_UNREGISTER, b);
}
