// File handles (name_to_handle_at's opaque ids, which fdinfo shows for each inotify watch) turned back
// into a path: open_by_handle_at() needs an fd on the same filesystem, found through mountinfo by the
// device number fdinfo gives (the kernel's dev_t: major << 20 | minor).
import { readFileSync, readlinkSync } from 'node:fs';
import { close, O_CLOEXEC, open, raw, SYS } from '@criu-ts/sys';

const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;

/** Mount points of the filesystem with kernel device number `sdev`, from our mountinfo. */
function mountPointsOf(sdev: number): string[] {
  const want = `${sdev >>> 20}:${sdev & 0xfffff}`;
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === want && f[4] !== undefined)
    .map((f) => f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
}

/** struct file_handle: u32 handle_bytes, i32 handle_type, the handle. */
function fileHandle(type: number, handle: Buffer): Buffer {
  const b = Buffer.alloc(8 + handle.length);
  b.writeUInt32LE(handle.length, 0);
  b.writeInt32LE(type, 4);
  handle.copy(b, 8);
  return b;
}

/** The path of the file behind a handle on filesystem `sdev`, or undefined if none can be found. */
export function pathOfHandle(sdev: number, type: number, handle: Buffer): string | undefined {
  for (const mnt of mountPointsOf(sdev)) {
    let mfd: number;
    try {
      mfd = open(mnt, O_DIRECTORY | O_CLOEXEC); // not O_PATH: open_by_handle_at refuses that (EBADF)
    } catch {
      continue;
    }
    try {
      const fd = Number(
        raw.syscall(SYS.open_by_handle_at, mfd, fileHandle(type, handle), O_PATH | O_CLOEXEC),
      );
      if (fd < 0) continue;
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } finally {
        close(fd);
      }
    } finally {
      close(mfd);
    }
  }
  return undefined;
}

/** A handle as fh_entry keeps it: u64 words, at least 16 of them. */
export function handleWords(handle: Buffer): bigint[] {
  const words = Math.max(16, Math.ceil(handle.length / 8));
  const padded = Buffer.alloc(words * 8);
  handle.copy(padded);
  return Array.from({ length: words }, (_, i) => padded.readBigUInt64LE(i * 8));
}

export function handleBytes(words: readonly bigint[], bytes: number): Buffer {
  const b = Buffer.alloc(words.length * 8);
  for (const [i, w] of words.entries()) b.writeBigUInt64LE(BigInt.asUintN(64, w), i * 8);
  return b.subarray(0, bytes);
}
