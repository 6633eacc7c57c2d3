// /proc/PID/mountinfo (fs/proc_namespace.c show_mountinfo).
//
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//   (1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//
// root, mount point and source have ' ', '\t', '\n' and '\\' escaped as octal (\040 ...).

import { CH_SPACE, CH_TAB, Cursor, unescapeOctal } from './cursor.js';

export interface MountInfo {
  mntId: number;
  parentId: number;
  /** st_dev of files on this mount */
  major: number;
  minor: number;
  /** the root of the mount within its file system */
  root: string;
  mountpoint: string;
  /** per-mount options (rw, nosuid, relatime ...) */
  options: string;
  /** optional fields as printed: "shared:1", "master:2", "propagate_from:3", "unbindable" */
  optional: string[];
  /** peer group id from shared:N, 0 if not shared */
  shared: number;
  /** peer group id from master:N, 0 if not a slave */
  master: number;
  /** propagate_from:N, 0 if absent */
  propagateFrom: number;
  unbindable: boolean;
  /** file system type, with a subtype after a '.' as printed (fuse.sshfs) */
  fstype: string;
  source: string;
  /** super block options */
  superOptions: string;
}

const cur = new Cursor(Buffer.alloc(0));

const SHARED = Buffer.from('shared:', 'latin1');
const MASTER = Buffer.from('master:', 'latin1');
const PROPAGATE = Buffer.from('propagate_from:', 'latin1');
const UNBINDABLE = Buffer.from('unbindable', 'latin1');

function escapedField(c: Cursor): string {
  c.skipSpaces();
  const s = c.pos;
  const e = c.fieldEnd();
  c.pos = e;
  return unescapeOctal(c.buf, s, e);
}

/** Parse the bytes [0, len) of a mountinfo file. */
export function parseMountInfo(buf: Buffer, len = buf.length): MountInfo[] {
  const c = cur.reset(buf, 0, len);
  const out: MountInfo[] = [];
  while (c.pos < len) {
    const le = c.lineEnd();
    if (le === c.pos) {
      c.pos++;
      continue;
    }
    const mntId = c.dec();
    const parentId = c.dec();
    const major = c.dec();
    c.eat(0x3a);
    const minor = c.dec();
    const root = escapedField(c);
    const mountpoint = escapedField(c);
    const options = escapedField(c);
    const optional: string[] = [];
    let shared = 0;
    let master = 0;
    let propagateFrom = 0;
    let unbindable = false;
    for (;;) {
      c.skipSpaces();
      if (c.pos >= le) break;
      if (buf[c.pos] === 0x2d /* - */ && (c.pos + 1 >= le || buf[c.pos + 1] === CH_SPACE)) {
        c.pos++;
        break;
      }
      const s = c.pos;
      if (c.match(SHARED)) shared = c.dec();
      else if (c.match(MASTER)) master = c.dec();
      else if (c.match(PROPAGATE)) propagateFrom = c.dec();
      else if (c.match(UNBINDABLE)) unbindable = true;
      c.pos = s;
      const e = c.fieldEnd();
      optional.push(buf.toString('latin1', s, e));
      c.pos = e;
    }
    const fstype = escapedField(c);
    const source = escapedField(c);
    c.skipSpaces();
    let se = le;
    while (se > c.pos && (buf[se - 1] === CH_SPACE || buf[se - 1] === CH_TAB)) se--;
    const superOptions = unescapeOctal(buf, c.pos, se);
    out.push({
      mntId,
      parentId,
      major,
      minor,
      root,
      mountpoint,
      options,
      optional,
      shared,
      master,
      propagateFrom,
      unbindable,
      fstype,
      source,
      superOptions,
    });
    c.pos = le + 1;
  }
  return out;
}
