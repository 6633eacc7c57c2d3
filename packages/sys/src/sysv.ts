// SysV shared memory: shmget(2), shmat(2), shmdt(2), shmctl(2) and struct shmid64_ds (x86_64).
import { SYS } from './constants/syscalls.js';
import { checked, errnoError, syscall } from './native.js';

export const IPC_PRIVATE = 0;
export const IPC_CREAT = 0o1000;
export const IPC_EXCL = 0o2000;
export const IPC_RMID = 0;
export const IPC_SET = 1;
export const IPC_STAT = 2;
export const SHM_RDONLY = 0o10000;
export const SHM_EXEC = 0o100000;
/** shm_perm.mode bits the kernel adds: marked for removal (IPC_RMID while attached), locked. */
export const SHM_DEST = 0o1000;
export const SHM_LOCKED = 0o2000;
/** shmget: a segment of huge pages (with the page size as MAP_HUGE_<size> bits). */
export const SHM_HUGETLB = 0o4000;

/** The fields of struct shmid64_ds that matter here. */
export interface ShmidDs {
  key: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
  mode: number;
  size: bigint;
  nattch: bigint;
}

/** sizeof(struct shmid64_ds) on x86_64. */
const SHMID_DS_SIZE = 112;

export function shmget(key: number, size: bigint | number, flags: number): number {
  return checked(
    'shmget',
    () => `key 0x${key.toString(16)}, size ${size}`,
    syscall(SYS.shmget, key, size, flags),
  );
}

/** shmat(2) in the calling process; returns the address. */
export function shmat(id: number, addr: bigint | number, flags: number): bigint {
  const r = syscall(SYS.shmat, id, addr, flags);
  if (Number(r) === -1) throw errnoError('shmat', `id ${id}`);
  return BigInt(r);
}

export function shmdt(addr: bigint): void {
  checked('shmdt', () => `0x${addr.toString(16)}`, syscall(SYS.shmdt, addr));
}

/** shmctl(id, IPC_STAT). */
export function shmStat(id: number): ShmidDs {
  const b = Buffer.alloc(SHMID_DS_SIZE);
  checked('shmctl', () => `IPC_STAT of ${id}`, syscall(SYS.shmctl, id, IPC_STAT, b));
  return {
    key: b.readInt32LE(0),
    uid: b.readUInt32LE(4),
    gid: b.readUInt32LE(8),
    cuid: b.readUInt32LE(12),
    cgid: b.readUInt32LE(16),
    mode: b.readUInt32LE(20),
    size: b.readBigUInt64LE(48),
    nattch: b.readBigUInt64LE(88),
  };
}

/** shmctl(id, IPC_SET): owner and permission bits (the only fields the kernel takes). */
export function shmSetOwner(id: number, uid: number, gid: number, mode: number): void {
  const b = Buffer.alloc(SHMID_DS_SIZE);
  b.writeUInt32LE(uid, 4);
  b.writeUInt32LE(gid, 8);
  b.writeUInt32LE(mode & 0o777, 20);
  checked('shmctl', () => `IPC_SET of ${id}`, syscall(SYS.shmctl, id, IPC_SET, b));
}

/** shmctl(id, IPC_RMID): the segment goes once the last task detaches. */
export function shmRemove(id: number): void {
  checked('shmctl', () => `IPC_RMID of ${id}`, syscall(SYS.shmctl, id, IPC_RMID, 0));
}
