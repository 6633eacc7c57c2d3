// Event-like anonymous-inode files: eventfd, epoll, signalfd, timerfd, and clock_gettime for timers.
import { SYS } from './constants/syscalls.js';
import { checked, checkedRetry, syscall } from './native.js';

/** eventfd2 flags (linux/eventfd.h): EFD_CLOEXEC and EFD_NONBLOCK are O_CLOEXEC and O_NONBLOCK. */
export const EFD_SEMAPHORE = 1;
/** epoll_ctl operations. */
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
/** timerfd_settime flags. */
export const TFD_TIMER_ABSTIME = 1;
export const TFD_TIMER_CANCEL_ON_SET = 2;
/** clock_nanosleep / timer_settime flags: an absolute time. */
export const TIMER_ABSTIME = 1;
/** _IOW('T', 0, u64): set the number of expirations a timerfd reports (CONFIG_CHECKPOINT_RESTORE). */
export const TFD_IOC_SET_TICKS = 0x40085400;
/** struct epoll_event is packed on x86-64: u32 events, u64 data. */
export const EPOLL_EVENT_SIZE = 12;

export interface Timespec {
  sec: bigint;
  nsec: bigint;
}

/** eventfd2(2): the counter starts at `initval` (a u32; write() adds more). */
export function eventfd2(initval: number, flags: number): number {
  return checked('eventfd2', () => `initval ${initval}`, syscall(SYS.eventfd2, initval, flags));
}

/** epoll_create1(2). */
export function epollCreate1(flags: number): number {
  return checked('epoll_create1', () => undefined, syscall(SYS.epoll_create1, flags));
}

/** struct epoll_event as the kernel reads it on x86-64 (packed: 12 bytes). */
export function epollEvent(events: number, data: bigint): Buffer {
  const b = Buffer.alloc(EPOLL_EVENT_SIZE);
  b.writeUInt32LE(events >>> 0, 0);
  b.writeBigUInt64LE(BigInt.asUintN(64, data), 4);
  return b;
}

/** epoll_ctl(2) in this process. */
export function epollCtl(epfd: number, op: number, fd: number, events = 0, data = 0n): void {
  checked(
    'epoll_ctl',
    () => `epfd ${epfd}, op ${op}, fd ${fd}`,
    syscall(SYS.epoll_ctl, epfd, op, fd, epollEvent(events, data)),
  );
}

/** signalfd4(2) with a 64-bit signal mask (bit n-1 = signal n); fd -1 makes a new signalfd. */
export function signalfd4(fd: number, mask: bigint, flags: number): number {
  const m = Buffer.alloc(8);
  m.writeBigUInt64LE(BigInt.asUintN(64, mask), 0);
  return checked('signalfd4', () => `fd ${fd}`, syscall(SYS.signalfd4, fd, m, 8, flags));
}

/** timerfd_create(2). */
export function timerfdCreate(clockid: number, flags: number): number {
  return checked('timerfd_create', () => `clock ${clockid}`, syscall(SYS.timerfd_create, clockid, flags));
}

/** struct itimerspec: it_interval, then it_value. */
function itimerspec(value: Timespec, interval: Timespec): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigInt64LE(interval.sec, 0);
  b.writeBigInt64LE(interval.nsec, 8);
  b.writeBigInt64LE(value.sec, 16);
  b.writeBigInt64LE(value.nsec, 24);
  return b;
}

/** timerfd_settime(2): arm (value != 0) or disarm (value 0) the timer. */
export function timerfdSettime(fd: number, flags: number, value: Timespec, interval: Timespec): void {
  checked(
    'timerfd_settime',
    () => `fd ${fd}`,
    syscall(SYS.timerfd_settime, fd, flags, itimerspec(value, interval), null),
  );
}

/**
 * timerfd_gettime(2): time to the next expiration and the interval. For a periodic timer that expired
 * unread, the kernel first moves the timer past now and adds the missed periods to its tick count
 * (what a read() would do too, without taking the ticks).
 */
export function timerfdGettime(fd: number): { value: Timespec; interval: Timespec } {
  const b = Buffer.alloc(32);
  checked('timerfd_gettime', () => `fd ${fd}`, syscall(SYS.timerfd_gettime, fd, b));
  return {
    interval: { sec: b.readBigInt64LE(0), nsec: b.readBigInt64LE(8) },
    value: { sec: b.readBigInt64LE(16), nsec: b.readBigInt64LE(24) },
  };
}

/** ioctl(TFD_IOC_SET_TICKS): the expirations a timerfd reports on its next read. */
export function timerfdSetTicks(fd: number, ticks: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(ticks, 0);
  checkedRetry(
    'ioctl(TFD_IOC_SET_TICKS)',
    () => `fd ${fd}`,
    () => syscall(SYS.ioctl, fd, TFD_IOC_SET_TICKS, b),
  );
}

/** clock_gettime(2) of any clock id (the alarm clocks included). */
export function clockGettime(clockid: number): Timespec {
  const b = Buffer.alloc(16);
  checked('clock_gettime', () => `clock ${clockid}`, syscall(SYS.clock_gettime, clockid, b));
  return { sec: b.readBigInt64LE(0), nsec: b.readBigInt64LE(8) };
}
