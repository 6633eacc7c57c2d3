// The new mount API (fsopen/fsconfig/fsmount/move_mount): a file system configured and mounted as a
// detached mount, reachable only through the fd fsmount returns until move_mount attaches it. Used to
// reach cgroup hierarchies without touching the mount table.
import { SYS } from './constants/syscalls.js';
import { checked, cString, syscall } from './native.js';

export const FSOPEN_CLOEXEC = 0x1;
export const FSCONFIG_SET_FLAG = 0;
export const FSCONFIG_SET_STRING = 1;
export const FSCONFIG_CMD_CREATE = 6;
export const FSMOUNT_CLOEXEC = 0x1;
export const MOVE_MOUNT_F_EMPTY_PATH = 0x4;

/** fsopen(2): a file system context of type `fstype` ("cgroup", "cgroup2", "tmpfs" ...). */
export function fsopen(fstype: string, flags = FSOPEN_CLOEXEC): number {
  return checked('fsopen', () => fstype, syscall(SYS.fsopen, cString(fstype), flags));
}

/** fsconfig(2) of a flag option ("cpu") or a string option ("name", "zdtmtst"). */
export function fsconfigSet(fsfd: number, key: string, value?: string): void {
  const cmd = value === undefined ? FSCONFIG_SET_FLAG : FSCONFIG_SET_STRING;
  const v = value === undefined ? null : cString(value);
  checked(
    'fsconfig',
    () => (value === undefined ? key : `${key}=${value}`),
    syscall(SYS.fsconfig, fsfd, cmd, cString(key), v, 0),
  );
}

/** fsconfig(FSCONFIG_CMD_CREATE): make (or find) the super block the context describes. */
export function fsconfigCreate(fsfd: number): void {
  checked('fsconfig', () => 'create', syscall(SYS.fsconfig, fsfd, FSCONFIG_CMD_CREATE, null, null, 0));
}

/** fsmount(2): a detached mount of a created context; returns its fd (O_PATH-like, a directory). */
export function fsmount(fsfd: number, flags = FSMOUNT_CLOEXEC, attrs = 0): number {
  return checked('fsmount', () => `fd ${fsfd}`, syscall(SYS.fsmount, fsfd, flags, attrs));
}

/** move_mount(2) of a detached mount fd onto a path (MOVE_MOUNT_F_EMPTY_PATH). */
export function moveMountFd(mntFd: number, toDir: number, toPath: string): void {
  checked(
    'move_mount',
    () => toPath,
    syscall(SYS.move_mount, mntFd, cString(''), toDir, cString(toPath), MOVE_MOUNT_F_EMPTY_PATH),
  );
}
