// /proc/PID/status (fs/proc/array.c proc_pid_status).

import { CH_BACKSLASH, CH_COLON, CH_NL, Cursor } from './cursor.js';
import { KeyTable } from './keys.js';

/** Vm* and Rss* lines, in kB. Absent for kernel threads and zombies. */
export interface StatusVm {
  peak: number;
  size: number;
  lck: number;
  pin: number;
  hwm: number;
  rss: number;
  rssAnon: number;
  rssFile: number;
  rssShmem: number;
  data: number;
  stk: number;
  exe: number;
  lib: number;
  pte: number;
  swap: number;
  hugetlbPages: number;
}

export interface ProcStatus {
  /** comm with the kernel's `\n` and `\\` escapes decoded. */
  name: string;
  /** undefined on kernels before 4.7 */
  umask: number | undefined;
  /** the state letter: R S D T t Z X I ... */
  state: string;
  tgid: number;
  ngid: number;
  pid: number;
  ppid: number;
  tracerPid: number;
  /** real, effective, saved, filesystem */
  uid: [number, number, number, number];
  gid: [number, number, number, number];
  fdSize: number;
  groups: number[];
  /** ids in each pid namespace, outermost first */
  nsTgid: number[];
  nsPid: number[];
  nsPgid: number[];
  nsSid: number[];
  /** undefined where the kernel has no Kthread line */
  kthread: boolean | undefined;
  vm: StatusVm | undefined;
  coreDumping: boolean | undefined;
  thpEnabled: boolean | undefined;
  untagMask: bigint | undefined;
  threads: number;
  /** SigQ: queued / limit */
  sigQueued: number;
  sigQueueLimit: number;
  sigPnd: bigint;
  shdPnd: bigint;
  sigBlk: bigint;
  sigIgn: bigint;
  sigCgt: bigint;
  capInh: bigint;
  capPrm: bigint;
  capEff: bigint;
  capBnd: bigint;
  capAmb: bigint;
  noNewPrivs: number;
  /** 0 disabled, 1 strict, 2 filter */
  seccomp: number;
  seccompFilters: number;
  cpusAllowedList: string | undefined;
  memsAllowedList: string | undefined;
  voluntaryCtxtSwitches: number;
  nonvoluntaryCtxtSwitches: number;
}

const KEYS = [
  'Name', // 0
  'Umask',
  'State',
  'Tgid',
  'Ngid',
  'Pid', // 5
  'PPid',
  'TracerPid',
  'Uid',
  'Gid',
  'FDSize', // 10
  'Groups',
  'NStgid',
  'NSpid',
  'NSpgid',
  'NSsid', // 15
  'Kthread',
  'VmPeak',
  'VmSize',
  'VmLck',
  'VmPin', // 20
  'VmHWM',
  'VmRSS',
  'RssAnon',
  'RssFile',
  'RssShmem', // 25
  'VmData',
  'VmStk',
  'VmExe',
  'VmLib',
  'VmPTE', // 30
  'VmSwap',
  'HugetlbPages',
  'CoreDumping',
  'THP_enabled',
  'untag_mask', // 35
  'Threads',
  'SigQ',
  'SigPnd',
  'ShdPnd',
  'SigBlk', // 40
  'SigIgn',
  'SigCgt',
  'CapInh',
  'CapPrm',
  'CapEff', // 45
  'CapBnd',
  'CapAmb',
  'NoNewPrivs',
  'Seccomp',
  'Seccomp_filters', // 50
  'Cpus_allowed_list',
  'Mems_allowed_list',
  'voluntary_ctxt_switches',
  'nonvoluntary_ctxt_switches',
] as const;

const table = new KeyTable(KEYS);
const cur = new Cursor(Buffer.alloc(0));

function emptyVm(): StatusVm {
  return {
    peak: 0,
    size: 0,
    lck: 0,
    pin: 0,
    hwm: 0,
    rss: 0,
    rssAnon: 0,
    rssFile: 0,
    rssShmem: 0,
    data: 0,
    stk: 0,
    exe: 0,
    lib: 0,
    pte: 0,
    swap: 0,
    hugetlbPages: 0,
  };
}

function decList(c: Cursor, lineEnd: number): number[] {
  const out: number[] = [];
  for (;;) {
    c.skipSpaces();
    if (c.pos >= lineEnd) break;
    const s = c.pos;
    const v = c.dec();
    if (c.pos === s) break;
    out.push(v);
  }
  return out;
}

function decodeName(b: Buffer, s: number, e: number): string {
  const i = b.indexOf(CH_BACKSLASH, s);
  if (i < 0 || i >= e) return b.toString('utf8', s, e);
  const out = Buffer.allocUnsafe(e - s);
  let o = 0;
  for (let p = s; p < e; p++) {
    const ch = b[p]!;
    if (ch === CH_BACKSLASH && p + 1 < e) {
      const n = b[p + 1]!;
      if (n === 0x6e /* n */) {
        out[o++] = CH_NL;
        p++;
        continue;
      }
      if (n === CH_BACKSLASH) {
        out[o++] = CH_BACKSLASH;
        p++;
        continue;
      }
    }
    out[o++] = ch;
  }
  return out.toString('utf8', 0, o);
}

/** Parse the bytes [0, len) of a status file. */
export function parseStatus(buf: Buffer, len = buf.length): ProcStatus {
  const c = cur.reset(buf, 0, len);
  const r: ProcStatus = {
    name: '',
    umask: undefined,
    state: '',
    tgid: 0,
    ngid: 0,
    pid: 0,
    ppid: 0,
    tracerPid: 0,
    uid: [0, 0, 0, 0],
    gid: [0, 0, 0, 0],
    fdSize: 0,
    groups: [],
    nsTgid: [],
    nsPid: [],
    nsPgid: [],
    nsSid: [],
    kthread: undefined,
    vm: undefined,
    coreDumping: undefined,
    thpEnabled: undefined,
    untagMask: undefined,
    threads: 0,
    sigQueued: 0,
    sigQueueLimit: 0,
    sigPnd: 0n,
    shdPnd: 0n,
    sigBlk: 0n,
    sigIgn: 0n,
    sigCgt: 0n,
    capInh: 0n,
    capPrm: 0n,
    capEff: 0n,
    capBnd: 0n,
    capAmb: 0n,
    noNewPrivs: 0,
    seccomp: 0,
    seccompFilters: 0,
    cpusAllowedList: undefined,
    memsAllowedList: undefined,
    voluntaryCtxtSwitches: 0,
    nonvoluntaryCtxtSwitches: 0,
  };
  let hint = 0;
  while (c.pos < len) {
    const ls = c.pos;
    const le = c.lineEnd();
    const colon = c.indexOf(CH_COLON);
    if (colon < 0 || colon > le) {
      c.pos = le + 1;
      continue;
    }
    const k = table.lookup(buf, ls, colon, hint);
    c.pos = colon + 1;
    if (k >= 0) hint = k + 1;
    switch (k) {
      case 0: {
        // "Name:\t" then the escaped comm, which may itself contain tabs and spaces.
        let s = colon + 1;
        if (s < le && buf[s] === 0x09) s++;
        r.name = decodeName(buf, s, le);
        break;
      }
      case 1:
        r.umask = c.oct();
        break;
      case 2:
        c.skipSpaces();
        r.state = buf.toString('latin1', c.pos, c.pos + 1);
        break;
      case 3:
        r.tgid = c.dec();
        break;
      case 4:
        r.ngid = c.dec();
        break;
      case 5:
        r.pid = c.dec();
        break;
      case 6:
        r.ppid = c.dec();
        break;
      case 7:
        r.tracerPid = c.dec();
        break;
      case 8:
        r.uid = [c.dec(), c.dec(), c.dec(), c.dec()];
        break;
      case 9:
        r.gid = [c.dec(), c.dec(), c.dec(), c.dec()];
        break;
      case 10:
        r.fdSize = c.dec();
        break;
      case 11:
        r.groups = decList(c, le);
        break;
      case 12:
        r.nsTgid = decList(c, le);
        break;
      case 13:
        r.nsPid = decList(c, le);
        break;
      case 14:
        r.nsPgid = decList(c, le);
        break;
      case 15:
        r.nsSid = decList(c, le);
        break;
      case 16:
        r.kthread = c.dec() !== 0;
        break;
      case 17:
      case 18:
      case 19:
      case 20:
      case 21:
      case 22:
      case 23:
      case 24:
      case 25:
      case 26:
      case 27:
      case 28:
      case 29:
      case 30:
      case 31:
      case 32: {
        if (r.vm === undefined) r.vm = emptyVm();
        const v = c.dec();
        const vm = r.vm;
        switch (k) {
          case 17:
            vm.peak = v;
            break;
          case 18:
            vm.size = v;
            break;
          case 19:
            vm.lck = v;
            break;
          case 20:
            vm.pin = v;
            break;
          case 21:
            vm.hwm = v;
            break;
          case 22:
            vm.rss = v;
            break;
          case 23:
            vm.rssAnon = v;
            break;
          case 24:
            vm.rssFile = v;
            break;
          case 25:
            vm.rssShmem = v;
            break;
          case 26:
            vm.data = v;
            break;
          case 27:
            vm.stk = v;
            break;
          case 28:
            vm.exe = v;
            break;
          case 29:
            vm.lib = v;
            break;
          case 30:
            vm.pte = v;
            break;
          case 31:
            vm.swap = v;
            break;
          default:
            vm.hugetlbPages = v;
        }
        break;
      }
      case 33:
        r.coreDumping = c.dec() !== 0;
        break;
      case 34:
        r.thpEnabled = c.dec() !== 0;
        break;
      case 35:
        r.untagMask = c.hexBig();
        break;
      case 36:
        r.threads = c.dec();
        break;
      case 37:
        r.sigQueued = c.dec();
        c.eat(0x2f /* / */);
        r.sigQueueLimit = c.dec();
        break;
      case 38:
        r.sigPnd = c.hexBig();
        break;
      case 39:
        r.shdPnd = c.hexBig();
        break;
      case 40:
        r.sigBlk = c.hexBig();
        break;
      case 41:
        r.sigIgn = c.hexBig();
        break;
      case 42:
        r.sigCgt = c.hexBig();
        break;
      case 43:
        r.capInh = c.hexBig();
        break;
      case 44:
        r.capPrm = c.hexBig();
        break;
      case 45:
        r.capEff = c.hexBig();
        break;
      case 46:
        r.capBnd = c.hexBig();
        break;
      case 47:
        r.capAmb = c.hexBig();
        break;
      case 48:
        r.noNewPrivs = c.dec();
        break;
      case 49:
        r.seccomp = c.dec();
        break;
      case 50:
        r.seccompFilters = c.dec();
        break;
      case 51:
        c.skipSpaces();
        r.cpusAllowedList = c.rest();
        break;
      case 52:
        c.skipSpaces();
        r.memsAllowedList = c.rest();
        break;
      case 53:
        r.voluntaryCtxtSwitches = c.dec();
        break;
      case 54:
        r.nonvoluntaryCtxtSwitches = c.dec();
        break;
      default:
        // Speculation_*, Cpus_allowed, Mems_allowed, x86_Thread_features ...: not needed.
        break;
    }
    c.pos = le + 1;
  }
  return r;
}
