// /proc/PID/fdinfo/N: the common header and the per-kind lines of eventfd, epoll, inotify,
// fanotify, timerfd, signalfd, file locks and ttys.

import { append, bytesOf, CH_COLON, CH_SPACE, CH_TAB, Cursor, setKey } from './cursor.js';

export interface EventfdInfo {
  /** the counter (printed in hex by the kernel) */
  count: bigint;
  /** eventfd-id (kernel 5.x+) */
  id: number | undefined;
  /** eventfd-semaphore (kernel 6.x+) */
  semaphore: boolean | undefined;
}

/** One `tfd:` line of an epoll fd. */
export interface EpollTfd {
  tfd: number;
  events: number;
  data: bigint;
  pos: bigint;
  ino: bigint;
  /** the kernel-internal dev_t of the target's super block (major << 20 | minor) */
  sdev: number;
}

/** One `inotify wd:` line. */
export interface InotifyWatch {
  wd: number;
  ino: bigint;
  sdev: number;
  mask: number;
  ignoredMask: number;
  /** f_handle of the watched inode, when the kernel could encode one */
  fhandleBytes: number | undefined;
  fhandleType: number | undefined;
  fhandle: Buffer | undefined;
}

/** One `fanotify` mark line: on an inode, a mount or a super block. */
export interface FanotifyMark {
  kind: 'inode' | 'mount' | 'sb';
  /** inode marks */
  ino: bigint | undefined;
  /** inode and super block marks */
  sdev: number | undefined;
  /** mount marks */
  mntId: number | undefined;
  mflags: number;
  mask: number;
  ignoredMask: number;
  fhandleBytes: number | undefined;
  fhandleType: number | undefined;
  fhandle: Buffer | undefined;
}

export interface FanotifyInfo {
  /** fanotify_init flags */
  flags: number;
  /** fanotify_init event_f_flags */
  eventFlags: number;
  marks: FanotifyMark[];
}

export interface TimerfdInfo {
  clockid: number;
  ticks: bigint;
  settimeFlags: number;
  itValue: { sec: bigint; nsec: bigint };
  itInterval: { sec: bigint; nsec: bigint };
}

/** A `lock:` line: the /proc/locks format for a lock on this file. */
export interface FdLock {
  id: number;
  /** true for the "->" lines of waiters blocked on the lock */
  blocked: boolean;
  /** POSIX, FLOCK, OFDLCK, LEASE, DELEG, ... */
  type: string;
  /** ADVISORY, MANDATORY, ACTIVE, BREAKING, ... */
  mode: string;
  /** READ, WRITE, UNLCK, ... */
  access: string;
  pid: number;
  major: number;
  minor: number;
  ino: bigint;
  start: bigint;
  /** undefined for EOF */
  end: bigint | undefined;
}

export interface FdInfo {
  pos: bigint;
  /** open flags (O_*), printed in octal */
  flags: number;
  mntId: number;
  /** ino line (kernel 5.x+) */
  ino: bigint | undefined;
  eventfd: EventfdInfo | undefined;
  epoll: EpollTfd[] | undefined;
  inotify: InotifyWatch[] | undefined;
  fanotify: FanotifyInfo | undefined;
  timerfd: TimerfdInfo | undefined;
  /** signalfd sigmask */
  sigmask: bigint | undefined;
  locks: FdLock[] | undefined;
  /** tty-index of a pty */
  ttyIndex: number | undefined;
  /** other `key: value` lines (bpf maps, pidfds, drm ...), value text trimmed */
  other: Record<string, string> | undefined;
}

const K = {
  pos: bytesOf('pos:'),
  flags: bytesOf('flags:'),
  mntId: bytesOf('mnt_id:'),
  ino: bytesOf('ino:'),
  eventfdCount: bytesOf('eventfd-count:'),
  eventfdId: bytesOf('eventfd-id:'),
  eventfdSem: bytesOf('eventfd-semaphore:'),
  tfd: bytesOf('tfd:'),
  events: bytesOf('events:'),
  data: bytesOf('data:'),
  inotifyWd: bytesOf('inotify wd:'),
  sdev: bytesOf('sdev:'),
  mask: bytesOf('mask:'),
  ignoredMask: bytesOf('ignored_mask:'),
  fhBytes: bytesOf('fhandle-bytes:'),
  fhType: bytesOf('fhandle-type:'),
  fHandle: bytesOf('f_handle:'),
  fanotify: bytesOf('fanotify '),
  fanFlags: bytesOf('flags:'),
  eventFlags: bytesOf('event-flags:'),
  mflags: bytesOf('mflags:'),
  clockid: bytesOf('clockid:'),
  ticks: bytesOf('ticks:'),
  settimeFlags: bytesOf('settime flags:'),
  itValue: bytesOf('it_value:'),
  itInterval: bytesOf('it_interval:'),
  sigmask: bytesOf('sigmask:'),
  lock: bytesOf('lock:'),
  ttyIndex: bytesOf('tty-index:'),
  arrow: bytesOf('->'),
  eof: bytesOf('EOF'),
} as const;

const cur = new Cursor(Buffer.alloc(0));

/** Read `name:value` pairs separated by spaces on one line; returns false if `name` is not next. */
function field(c: Cursor, key: Uint8Array): boolean {
  c.skipSpaces();
  return c.match(key);
}

function fhandleTail(c: Cursor, le: number): { bytes?: number; type?: number; handle?: Buffer } {
  const r: { bytes?: number; type?: number; handle?: Buffer } = {};
  if (field(c, K.fhBytes)) r.bytes = c.hex();
  if (field(c, K.fhType)) r.type = c.hex();
  if (field(c, K.fHandle)) {
    const s = c.pos;
    let e = s;
    while (e < le && c.buf[e] !== CH_SPACE) e++;
    r.handle = Buffer.from(c.buf.toString('latin1', s, e), 'hex');
    c.pos = e;
  }
  return r;
}

function timespec(c: Cursor): { sec: bigint; nsec: bigint } {
  c.skipSpaces();
  c.eat(0x28 /* ( */);
  const sec = c.decBig();
  c.eat(0x2c /* , */);
  const nsec = c.decBig();
  return { sec, nsec };
}

function parseLock(c: Cursor, le: number): FdLock {
  const id = c.dec();
  c.eat(CH_COLON);
  c.skipSpaces();
  const blocked = c.match(K.arrow);
  const type = c.field();
  const mode = c.field();
  const access = c.field();
  const pid = c.dec();
  c.skipSpaces();
  const major = c.hex();
  c.eat(CH_COLON);
  const minor = c.hex();
  c.eat(CH_COLON);
  const ino = c.decBig();
  const start = c.decBig();
  c.skipSpaces();
  let end: bigint | undefined;
  if (!c.match(K.eof) && c.pos < le) end = c.decBig();
  return { id, blocked, type, mode, access, pid, major, minor, ino, start, end };
}

/** Parse the bytes [0, len) of an fdinfo file. */
export function parseFdInfo(buf: Buffer, len = buf.length): FdInfo {
  const c = cur.reset(buf, 0, len);
  const r: FdInfo = {
    pos: 0n,
    flags: 0,
    mntId: 0,
    ino: undefined,
    eventfd: undefined,
    epoll: undefined,
    inotify: undefined,
    fanotify: undefined,
    timerfd: undefined,
    sigmask: undefined,
    locks: undefined,
    ttyIndex: undefined,
    other: undefined,
  };
  while (c.pos < len) {
    const ls = c.pos;
    const le = c.lineEnd();
    if (le === ls) {
      c.pos++;
      continue;
    }
    const b0 = buf[ls]!;
    if (c.match(K.pos)) r.pos = c.decBig();
    else if (c.match(K.flags)) r.flags = c.oct();
    else if (c.match(K.mntId)) r.mntId = c.dec();
    else if (c.match(K.ino)) r.ino = c.decBig();
    else if (b0 === 0x74 /* t */ && c.match(K.tfd)) {
      const tfd = c.dec();
      const events = field(c, K.events) ? c.hex() : 0;
      const data = field(c, K.data) ? c.hexBig() : 0n;
      const pos = field(c, K.pos) ? c.decBig() : 0n;
      const ino = field(c, K.ino) ? c.hexBig() : 0n;
      const sdev = field(c, K.sdev) ? c.hex() : 0;
      r.epoll = append(r.epoll, { tfd, events, data, pos, ino, sdev });
    } else if (b0 === 0x69 /* i */ && c.match(K.inotifyWd)) {
      const wd = c.hex();
      const ino = field(c, K.ino) ? c.hexBig() : 0n;
      const sdev = field(c, K.sdev) ? c.hex() : 0;
      const mask = field(c, K.mask) ? c.hex() : 0;
      const ignoredMask = field(c, K.ignoredMask) ? c.hex() : 0;
      const fh = fhandleTail(c, le);
      r.inotify = append(r.inotify, {
        wd,
        ino,
        sdev,
        mask,
        ignoredMask,
        fhandleBytes: fh.bytes,
        fhandleType: fh.type,
        fhandle: fh.handle,
      });
    } else if (b0 === 0x66 /* f */ && c.match(K.fanotify)) {
      const fan = r.fanotify ?? { flags: 0, eventFlags: 0, marks: [] };
      r.fanotify = fan;
      if (c.match(K.fanFlags)) {
        fan.flags = c.hex();
        if (field(c, K.eventFlags)) fan.eventFlags = c.hex();
      } else {
        let kind: FanotifyMark['kind'] = 'sb';
        let ino: bigint | undefined;
        let sdev: number | undefined;
        let mntId: number | undefined;
        if (c.match(K.mntId)) {
          kind = 'mount';
          mntId = c.hex();
        } else if (c.match(K.ino)) {
          kind = 'inode';
          ino = c.hexBig();
          if (field(c, K.sdev)) sdev = c.hex();
        } else if (c.match(K.sdev)) {
          sdev = c.hex();
        }
        const mflags = field(c, K.mflags) ? c.hex() : 0;
        const mask = field(c, K.mask) ? c.hex() : 0;
        const ignoredMask = field(c, K.ignoredMask) ? c.hex() : 0;
        const fh = fhandleTail(c, le);
        fan.marks.push({
          kind,
          ino,
          sdev,
          mntId,
          mflags,
          mask,
          ignoredMask,
          fhandleBytes: fh.bytes,
          fhandleType: fh.type,
          fhandle: fh.handle,
        });
      }
    } else if (b0 === 0x65 /* e */ && c.match(K.eventfdCount)) {
      eventfd(r).count = c.hexBig();
    } else if (b0 === 0x65 && c.match(K.eventfdId)) {
      eventfd(r).id = c.dec();
    } else if (b0 === 0x65 && c.match(K.eventfdSem)) {
      eventfd(r).semaphore = c.dec() !== 0;
    } else if (b0 === 0x63 /* c */ && c.match(K.clockid)) {
      timer(r).clockid = c.dec();
    } else if (b0 === 0x74 && c.match(K.ticks)) {
      timer(r).ticks = c.decBig();
    } else if (b0 === 0x73 /* s */ && c.match(K.settimeFlags)) {
      timer(r).settimeFlags = c.oct();
    } else if (b0 === 0x69 && c.match(K.itValue)) {
      timer(r).itValue = timespec(c);
    } else if (b0 === 0x69 && c.match(K.itInterval)) {
      timer(r).itInterval = timespec(c);
    } else if (b0 === 0x73 && c.match(K.sigmask)) {
      r.sigmask = c.hexBig();
    } else if (b0 === 0x6c /* l */ && c.match(K.lock)) {
      r.locks = append(r.locks, parseLock(c, le));
    } else if (b0 === 0x74 && c.match(K.ttyIndex)) {
      r.ttyIndex = c.dec();
    } else {
      const colon = c.indexOf(CH_COLON);
      if (colon > ls && colon < le) {
        let vs = colon + 1;
        while (vs < le && (buf[vs] === CH_SPACE || buf[vs] === CH_TAB)) vs++;
        let ve = le;
        while (ve > vs && (buf[ve - 1] === CH_SPACE || buf[ve - 1] === CH_TAB)) ve--;
        r.other = setKey(r.other, buf.toString('utf8', ls, colon), buf.toString('utf8', vs, ve));
      }
    }
    c.pos = le + 1;
  }
  return r;
}

function timer(r: FdInfo): TimerfdInfo {
  if (r.timerfd === undefined) {
    r.timerfd = {
      clockid: 0,
      ticks: 0n,
      settimeFlags: 0,
      itValue: { sec: 0n, nsec: 0n },
      itInterval: { sec: 0n, nsec: 0n },
    };
  }
  return r.timerfd;
}

function eventfd(r: FdInfo): EventfdInfo {
  if (r.eventfd === undefined) r.eventfd = { count: 0n, id: undefined, semaphore: undefined };
  return r.eventfd;
}
