// Straightforward reference parsers (split + regex) producing the same shapes as @criu-ts/bfd.
// They are deliberately simple and slow: the bfd parsers must agree with them byte for byte.

import type {
  FdInfo,
  MapsEntry,
  MountInfo,
  ProcStat,
  ProcStatus,
  SmapsEntry,
  SmapsRollup,
} from '../src/index.js';
import { VM_FLAG_NAMES, vmFlagMask } from '../src/index.js';

export function refStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const pid = Number(text.slice(0, open).trim());
  const comm = text.slice(open + 1, close);
  const f = text
    .slice(close + 2)
    .trim()
    .split(' ');
  // f[0] is field 3 (state)
  const n = (i: number) => Number(f[i - 3] ?? 0);
  const u = (i: number) => BigInt(f[i - 3] ?? 0);
  return {
    pid,
    comm,
    state: f[0]!,
    ppid: n(4),
    pgrp: n(5),
    session: n(6),
    ttyNr: n(7),
    tpgid: n(8),
    flags: n(9),
    minflt: u(10),
    cminflt: u(11),
    majflt: u(12),
    cmajflt: u(13),
    utime: u(14),
    stime: u(15),
    cutime: u(16),
    cstime: u(17),
    priority: n(18),
    nice: n(19),
    numThreads: n(20),
    itrealvalue: u(21),
    starttime: u(22),
    vsize: u(23),
    rss: u(24),
    rsslim: u(25),
    startCode: u(26),
    endCode: u(27),
    startStack: u(28),
    kstkesp: u(29),
    kstkeip: u(30),
    signal: u(31),
    blocked: u(32),
    sigignore: u(33),
    sigcatch: u(34),
    wchan: u(35),
    nswap: u(36),
    cnswap: u(37),
    exitSignal: n(38),
    processor: n(39),
    rtPriority: n(40),
    policy: n(41),
    delayacctBlkioTicks: u(42),
    guestTime: u(43),
    cguestTime: u(44),
    startData: u(45),
    endData: u(46),
    startBrk: u(47),
    argStart: u(48),
    argEnd: u(49),
    envStart: u(50),
    envEnd: u(51),
    exitCode: n(52),
  };
}

function kv(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

const nums = (s: string | undefined): number[] =>
  (s ?? '')
    .trim()
    .split(/\s+/)
    .filter((x) => x !== '')
    .map(Number);

export function refStatus(text: string): ProcStatus {
  const m = kv(text);
  const num = (k: string) => Number((m.get(k) ?? '0').trim().split(/\s+/)[0]);
  const hex = (k: string) => BigInt(`0x${(m.get(k) ?? '0').trim()}`);
  const hasVm = m.has('VmPeak') || m.has('VmRSS');
  const vmv = (k: string) => (m.has(k) ? num(k) : 0);
  const nameLine = text.split('\n').find((l) => l.startsWith('Name:'))!;
  const name = nameLine
    .slice('Name:\t'.length)
    .replace(/\\(n|\\)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
  const sigq = (m.get('SigQ') ?? '0/0').trim().split('/');
  const ids = (k: string) => nums(m.get(k)) as [number, number, number, number];
  return {
    name,
    umask: m.has('Umask') ? Number.parseInt(m.get('Umask')!.trim(), 8) : undefined,
    state: (m.get('State') ?? '').trim()[0] ?? '',
    tgid: num('Tgid'),
    ngid: num('Ngid'),
    pid: num('Pid'),
    ppid: num('PPid'),
    tracerPid: num('TracerPid'),
    uid: ids('Uid'),
    gid: ids('Gid'),
    fdSize: num('FDSize'),
    groups: nums(m.get('Groups')),
    nsTgid: nums(m.get('NStgid')),
    nsPid: nums(m.get('NSpid')),
    nsPgid: nums(m.get('NSpgid')),
    nsSid: nums(m.get('NSsid')),
    kthread: m.has('Kthread') ? num('Kthread') !== 0 : undefined,
    vm: hasVm
      ? {
          peak: vmv('VmPeak'),
          size: vmv('VmSize'),
          lck: vmv('VmLck'),
          pin: vmv('VmPin'),
          hwm: vmv('VmHWM'),
          rss: vmv('VmRSS'),
          rssAnon: vmv('RssAnon'),
          rssFile: vmv('RssFile'),
          rssShmem: vmv('RssShmem'),
          data: vmv('VmData'),
          stk: vmv('VmStk'),
          exe: vmv('VmExe'),
          lib: vmv('VmLib'),
          pte: vmv('VmPTE'),
          swap: vmv('VmSwap'),
          hugetlbPages: vmv('HugetlbPages'),
        }
      : undefined,
    coreDumping: m.has('CoreDumping') ? num('CoreDumping') !== 0 : undefined,
    thpEnabled: m.has('THP_enabled') ? num('THP_enabled') !== 0 : undefined,
    untagMask: m.has('untag_mask') ? BigInt(m.get('untag_mask')!.trim()) : undefined,
    threads: num('Threads'),
    sigQueued: Number(sigq[0]),
    sigQueueLimit: Number(sigq[1]),
    sigPnd: hex('SigPnd'),
    shdPnd: hex('ShdPnd'),
    sigBlk: hex('SigBlk'),
    sigIgn: hex('SigIgn'),
    sigCgt: hex('SigCgt'),
    capInh: hex('CapInh'),
    capPrm: hex('CapPrm'),
    capEff: hex('CapEff'),
    capBnd: hex('CapBnd'),
    capAmb: hex('CapAmb'),
    noNewPrivs: num('NoNewPrivs'),
    seccomp: num('Seccomp'),
    seccompFilters: num('Seccomp_filters'),
    cpusAllowedList: m.get('Cpus_allowed_list')?.trim(),
    memsAllowedList: m.get('Mems_allowed_list')?.trim(),
    voluntaryCtxtSwitches: num('voluntary_ctxt_switches'),
    nonvoluntaryCtxtSwitches: num('nonvoluntary_ctxt_switches'),
  };
}

const MAPS_RE =
  /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+) ?\s*(.*)$/;

function refHeader(line: string): MapsEntry {
  const m = MAPS_RE.exec(line);
  if (!m) throw new Error(`bad maps line: ${line}`);
  let path = m[11]!;
  let deleted = false;
  if (path.endsWith(' (deleted)')) {
    deleted = true;
    path = path.slice(0, -' (deleted)'.length);
  }
  return {
    start: BigInt(`0x${m[1]}`),
    end: BigInt(`0x${m[2]}`),
    prot: (m[3] === 'r' ? 1 : 0) | (m[4] === 'w' ? 2 : 0) | (m[5] === 'x' ? 4 : 0),
    shared: m[6] === 's',
    pgoff: BigInt(`0x${m[7]}`),
    major: Number.parseInt(m[8]!, 16),
    minor: Number.parseInt(m[9]!, 16),
    ino: BigInt(m[10]!),
    path,
    deleted,
  };
}

export function refMaps(text: string): MapsEntry[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map(refHeader);
}

const SMAPS_FIELDS: Record<string, keyof SmapsEntry> = {
  Size: 'size',
  KernelPageSize: 'kernelPageSize',
  MMUPageSize: 'mmuPageSize',
  Rss: 'rss',
  Pss: 'pss',
  Pss_Dirty: 'pssDirty',
  Pss_Anon: 'pssAnon',
  Pss_File: 'pssFile',
  Pss_Shmem: 'pssShmem',
  Shared_Clean: 'sharedClean',
  Shared_Dirty: 'sharedDirty',
  Private_Clean: 'privateClean',
  Private_Dirty: 'privateDirty',
  Referenced: 'referenced',
  Anonymous: 'anonymous',
  KSM: 'ksm',
  LazyFree: 'lazyFree',
  AnonHugePages: 'anonHugePages',
  ShmemPmdMapped: 'shmemPmdMapped',
  FilePmdMapped: 'filePmdMapped',
  Shared_Hugetlb: 'sharedHugetlb',
  Private_Hugetlb: 'privateHugetlb',
  Swap: 'swap',
  SwapPss: 'swapPss',
  Locked: 'locked',
  THPeligible: 'thpEligible',
  ProtectionKey: 'protectionKey',
};

function emptyCounters() {
  return {
    size: 0,
    kernelPageSize: 0,
    mmuPageSize: 0,
    rss: 0,
    pss: 0,
    pssDirty: 0,
    pssAnon: 0,
    pssFile: 0,
    pssShmem: 0,
    sharedClean: 0,
    sharedDirty: 0,
    privateClean: 0,
    privateDirty: 0,
    referenced: 0,
    anonymous: 0,
    ksm: 0,
    lazyFree: 0,
    anonHugePages: 0,
    shmemPmdMapped: 0,
    filePmdMapped: 0,
    sharedHugetlb: 0,
    privateHugetlb: 0,
    swap: 0,
    swapPss: 0,
    locked: 0,
    other: undefined as Record<string, number> | undefined,
  };
}

const KV_RE = /^([A-Za-z_]+):\s+(\d+)(?: kB)?$/;

export function refSmaps(text: string): SmapsEntry[] {
  const out: SmapsEntry[] = [];
  let cur: SmapsEntry | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (/^[0-9a-f]+-/.test(line)) {
      cur = {
        ...refHeader(line),
        ...emptyCounters(),
        thpEligible: 0,
        protectionKey: -1,
        vmFlags: 0,
        vmFlagsUnknown: undefined,
      };
      out.push(cur);
      continue;
    }
    if (!cur) throw new Error('smaps: counter before header');
    if (line.startsWith('VmFlags:')) {
      const names = line.slice('VmFlags:'.length).trim().split(' ').filter(Boolean);
      cur.vmFlags = vmFlagMask(names);
      const unknown = names.filter((n) => !(VM_FLAG_NAMES as readonly string[]).includes(n));
      cur.vmFlagsUnknown = unknown.length ? unknown : undefined;
      continue;
    }
    const m = KV_RE.exec(line);
    if (!m) throw new Error(`smaps: bad line ${line}`);
    const key = SMAPS_FIELDS[m[1]!];
    if (key) (cur as unknown as Record<string, number>)[key] = Number(m[2]);
    else cur.other = { ...cur.other, [m[1]!]: Number(m[2]) };
  }
  return out;
}

export function refSmapsRollup(text: string): SmapsRollup {
  const lines = text.split('\n').filter(Boolean);
  const h = refHeader(lines[0]!);
  const r: SmapsRollup = { start: h.start, end: h.end, ...emptyCounters() };
  for (const line of lines.slice(1)) {
    const m = KV_RE.exec(line)!;
    const key = SMAPS_FIELDS[m[1]!];
    if (key) (r as unknown as Record<string, number>)[key] = Number(m[2]);
    else r.other = { ...r.other, [m[1]!]: Number(m[2]) };
  }
  return r;
}

const unoct = (s: string) =>
  Buffer.from(
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))),
    'latin1',
  ).toString('utf8');

export function refMountInfo(text: string): MountInfo[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      const sep = f.indexOf('-', 6);
      const optional = f.slice(6, sep);
      const tag = (t: string) => {
        const o = optional.find((x) => x.startsWith(`${t}:`));
        return o ? Number(o.slice(t.length + 1)) : 0;
      };
      const [major, minor] = f[2]!.split(':').map(Number);
      return {
        mntId: Number(f[0]),
        parentId: Number(f[1]),
        major: major!,
        minor: minor!,
        root: unoct(f[3]!),
        mountpoint: unoct(f[4]!),
        options: unoct(f[5]!),
        optional,
        shared: tag('shared'),
        master: tag('master'),
        propagateFrom: tag('propagate_from'),
        unbindable: optional.includes('unbindable'),
        fstype: unoct(f[sep + 1]!),
        source: unoct(f[sep + 2]!),
        superOptions: unoct(f.slice(sep + 3).join(' ')),
      };
    });
}

/** name:value pairs of a "k1:v1 k2:v2" line */
function pairs(s: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const tok of s.trim().split(/\s+/)) {
    const i = tok.indexOf(':');
    if (i > 0) m.set(tok.slice(0, i), tok.slice(i + 1));
  }
  return m;
}

const hx = (s: string | undefined) => (s === undefined ? undefined : Number.parseInt(s, 16));
const hxb = (s: string | undefined) => (s === undefined ? undefined : BigInt(`0x${s}`));
const fh = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'hex'));

const LOCK_RE =
  /^lock:\s+(\d+):\s+(->\s+)?(\S+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s+(\d+)\s+(\S+)/;

export function refFdInfo(text: string): FdInfo {
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
  const timer = () => {
    r.timerfd = r.timerfd ?? {
      clockid: 0,
      ticks: 0n,
      settimeFlags: 0,
      itValue: { sec: 0n, nsec: 0n },
      itInterval: { sec: 0n, nsec: 0n },
    };
    return r.timerfd;
  };
  const ev = () => {
    r.eventfd = r.eventfd ?? { count: 0n, id: undefined, semaphore: undefined };
    return r.eventfd;
  };
  const ts = (v: string) => {
    const m = /\((-?\d+), (-?\d+)\)/.exec(v)!;
    return { sec: BigInt(m[1]!), nsec: BigInt(m[2]!) };
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const tfd = /^tfd:\s*(\d+)/.exec(line);
    const lock = LOCK_RE.exec(line);
    if (tfd) {
      // "tfd: N events: X data: X  pos:N ino:X sdev:X" -> normalize "key: value" to "key:value"
      const p = pairs(line.replace(/:\s+/g, ':'));
      r.epoll = r.epoll ?? [];
      r.epoll.push({
        tfd: Number(tfd[1]),
        events: hx(p.get('events'))!,
        data: hxb(p.get('data'))!,
        pos: BigInt(p.get('pos')!),
        ino: hxb(p.get('ino'))!,
        sdev: hx(p.get('sdev'))!,
      });
    } else if (line.startsWith('inotify ')) {
      const p = pairs(line.slice(8));
      r.inotify = r.inotify ?? [];
      r.inotify.push({
        wd: hx(p.get('wd'))!,
        ino: hxb(p.get('ino'))!,
        sdev: hx(p.get('sdev'))!,
        mask: hx(p.get('mask'))!,
        ignoredMask: hx(p.get('ignored_mask'))!,
        fhandleBytes: hx(p.get('fhandle-bytes')),
        fhandleType: hx(p.get('fhandle-type')),
        fhandle: fh(p.get('f_handle')),
      });
    } else if (line.startsWith('fanotify ')) {
      const p = pairs(line.slice(9));
      r.fanotify = r.fanotify ?? { flags: 0, eventFlags: 0, marks: [] };
      const fan = r.fanotify;
      if (p.has('flags')) {
        fan.flags = hx(p.get('flags'))!;
        fan.eventFlags = hx(p.get('event-flags')) ?? 0;
      } else {
        const kind = p.has('mnt_id') ? 'mount' : p.has('ino') ? 'inode' : 'sb';
        fan.marks.push({
          kind,
          ino: hxb(p.get('ino')),
          sdev: hx(p.get('sdev')),
          mntId: hx(p.get('mnt_id')),
          mflags: hx(p.get('mflags')) ?? 0,
          mask: hx(p.get('mask')) ?? 0,
          ignoredMask: hx(p.get('ignored_mask')) ?? 0,
          fhandleBytes: hx(p.get('fhandle-bytes')),
          fhandleType: hx(p.get('fhandle-type')),
          fhandle: fh(p.get('f_handle')),
        });
      }
    } else if (lock) {
      const m = lock;
      r.locks = r.locks ?? [];
      r.locks.push({
        id: Number(m[1]),
        blocked: m[2] !== undefined,
        type: m[3]!,
        mode: m[4]!,
        access: m[5]!,
        pid: Number(m[6]),
        major: Number.parseInt(m[7]!, 16),
        minor: Number.parseInt(m[8]!, 16),
        ino: BigInt(m[9]!),
        start: BigInt(m[10]!),
        end: m[11] === 'EOF' ? undefined : BigInt(m[11]!),
      });
    } else {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const k = line.slice(0, i);
      const v = line.slice(i + 1).trim();
      switch (k) {
        case 'pos':
          r.pos = BigInt(v);
          break;
        case 'flags':
          r.flags = Number.parseInt(v, 8);
          break;
        case 'mnt_id':
          r.mntId = Number(v);
          break;
        case 'ino':
          r.ino = BigInt(v);
          break;
        case 'eventfd-count':
          ev().count = BigInt(`0x${v}`);
          break;
        case 'eventfd-id':
          ev().id = Number(v);
          break;
        case 'eventfd-semaphore':
          ev().semaphore = Number(v) !== 0;
          break;
        case 'clockid':
          timer().clockid = Number(v);
          break;
        case 'ticks':
          timer().ticks = BigInt(v);
          break;
        case 'settime flags':
          timer().settimeFlags = Number.parseInt(v, 8);
          break;
        case 'it_value':
          timer().itValue = ts(v);
          break;
        case 'it_interval':
          timer().itInterval = ts(v);
          break;
        case 'sigmask':
          r.sigmask = BigInt(`0x${v}`);
          break;
        case 'tty-index':
          r.ttyIndex = Number(v);
          break;
        default:
          r.other = { ...r.other, [k]: v };
      }
    }
  }
  return r;
}

export function refChildren(text: string): number[] {
  return text.trim().split(/\s+/).filter(Boolean).map(Number);
}
