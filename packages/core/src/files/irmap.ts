// CRIU's irmap: a path for an inode found by looking through directories. A watched inode whose handle
// opens only to a name that no longer leads to it (the name it was watched by was unlinked, while a
// hard link lives on) has no path an image on another machine could use; with --force-irmap the dump
// looks for one under --irmap-scan-path directories first, then under CRIU's hints, as CRIU does.
import { type BigIntStats, type Dirent, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface IrmapOptions {
  /** --force-irmap: find a path by scanning where the handle's own name does not lead to the inode. */
  force: boolean;
  /** --irmap-scan-path: directories scanned before the hints. */
  scanPaths: readonly string[];
}

/** CRIU's hints: where watched files usually live (recursively), and the root directory itself. */
const HINTS: readonly { path: string; recurse: boolean }[] = [
  { path: '/etc', recurse: true },
  { path: '/var/spool', recurse: true },
  { path: '/var/log', recurse: true },
  { path: '/usr/share/dbus-1/services', recurse: true },
  { path: '/usr/share/dbus-1/system-services', recurse: true },
  { path: '/var/lib/polkit-1/localauthority', recurse: true },
  { path: '/usr/share/polkit-1/actions', recurse: true },
  { path: '/lib/udev', recurse: true },
  { path: '/', recurse: false },
];

/** A scan stops after this many directory entries: a path is a hint, not a search of the disk. */
const MAX_ENTRIES = 200_000;

/**
 * A path whose inode is `ino` on device `dev` (st_dev as lstat gives it), or undefined. Symlinks are
 * not followed and scans stay on `dev`.
 */
export function irmapLookup(dev: bigint, ino: bigint, scanPaths: readonly string[]): string | undefined {
  const t0 = process.hrtime.bigint();
  try {
    return lookup(dev, ino, scanPaths);
  } finally {
    resolveNs += process.hrtime.bigint() - t0;
  }
}

let resolveNs = 0n;

/** Nanoseconds spent in irmapLookup by this process so far: a dump's stats-dump counts its own share. */
export const irmapResolveNs = (): bigint => resolveNs;

function lookup(dev: bigint, ino: bigint, scanPaths: readonly string[]): string | undefined {
  let budget = MAX_ENTRIES;
  const visit = (dir: string, recurse: boolean): string | undefined => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return undefined;
    }
    const subdirs: string[] = [];
    for (const e of entries) {
      if (--budget < 0) return undefined;
      const path = join(dir, e.name);
      let st: BigIntStats;
      try {
        st = lstatSync(path, { bigint: true });
      } catch {
        continue;
      }
      if (st.dev !== dev) continue;
      if (st.ino === ino) return path;
      if (recurse && e.isDirectory()) subdirs.push(path);
    }
    for (const d of subdirs) {
      const hit = visit(d, true);
      if (hit) return hit;
    }
    return undefined;
  };
  for (const { path, recurse } of [...scanPaths.map((path) => ({ path, recurse: true })), ...HINTS]) {
    try {
      const st = lstatSync(path, { bigint: true });
      if (st.dev === dev && st.ino === ino) return path;
    } catch {
      continue;
    }
    const hit = visit(path, recurse);
    if (hit) return hit;
  }
  return undefined;
}
