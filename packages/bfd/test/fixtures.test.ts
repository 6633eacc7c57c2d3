// Pure parsers on hand-written tricky inputs, checked against expected values and the reference.

import { describe, expect, it } from 'vitest';
import {
  Cursor,
  hasVmFlag,
  KeyTable,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  parseChildren,
  parseFdInfo,
  parseMaps,
  parseMountInfo,
  parseSmaps,
  parseSmapsRollup,
  parseStat,
  parseStatus,
  unescapeOctal,
  VmFlag,
  vmFlagMask,
  vmFlagNames,
} from '../src/index.js';
import {
  refChildren,
  refFdInfo,
  refMaps,
  refMountInfo,
  refSmaps,
  refSmapsRollup,
  refStat,
  refStatus,
} from './reference.js';

const B = (s: string) => Buffer.from(s, 'utf8');

describe('Cursor', () => {
  it('parses decimal, hex, octal and bigints of every width', () => {
    const c = new Cursor(
      B('  42 -17 ff 0x1F 0755 18446744073709551615 ffffffffff600000 123456789abcdef0123 -9'),
    );
    expect(c.dec()).toBe(42);
    expect(c.dec()).toBe(-17);
    expect(c.hex()).toBe(255);
    expect(c.hex()).toBe(31);
    expect(c.oct()).toBe(0o755);
    expect(c.decBig()).toBe(18446744073709551615n);
    expect(c.hexBig()).toBe(0xffffffffff600000n);
    expect(c.hexBig()).toBe(0x123456789abcdef0123n);
    expect(c.decBig()).toBe(-9n);
    expect(c.eof).toBe(true);
    expect(c.peek()).toBe(-1);
  });

  it('tokenizes fields and lines without split', () => {
    const c = new Cursor(B('alpha beta\tgamma\nsecond line here\nx'));
    expect(c.field()).toBe('alpha');
    expect(c.field()).toBe('beta');
    expect(c.field()).toBe('gamma');
    c.nextLine();
    expect(c.rest()).toBe('second line here');
    c.nextLine();
    expect(c.match(B('x'))).toBe(true);
    expect(c.eof).toBe(true);
    const d = new Cursor(B('key: value'));
    expect(d.skipTo(0x3a)).toBe(true);
    expect(d.pos).toBe(3);
    expect(d.skipTo(0x7c)).toBe(false);
    expect(d.eof).toBe(true);
  });

  it('respects a window [start, end)', () => {
    const c = new Cursor(B('123456'), 1, 4);
    expect(c.dec()).toBe(234);
    expect(c.eof).toBe(true);
  });

  it('decodes octal escapes', () => {
    const b = B('a\\040b\\134c\\011d\\012e\\xyz');
    expect(unescapeOctal(b, 0, b.length)).toBe('a b\\c\td\ne\\xyz');
  });
});

describe('KeyTable', () => {
  const t = new KeyTable(['Shared_Clean', 'Shared_Dirty', 'Private_Clean', 'Rss', 'Pss', 'Pss_Dirty']);
  it('finds keys by bytes, with and without a hint', () => {
    const b = B('Shared_Dirty:Pss:Rsx:');
    expect(t.lookup(b, 0, 12)).toBe(1);
    expect(t.lookup(b, 0, 12, 0)).toBe(1);
    expect(t.lookup(b, 0, 12, 1)).toBe(1);
    expect(t.lookup(b, 13, 16)).toBe(4);
    expect(t.lookup(b, 17, 20)).toBe(-1);
    expect(t.lookup(b, 0, 0)).toBe(-1);
  });
});

describe('stat', () => {
  const tail = (n: number) => Array.from({ length: n }, (_, i) => String(i + 4)).join(' ');
  it('takes comm up to the last ")" (spaces, parens, newline)', () => {
    for (const comm of ['a) (b c) d', 'x\ny) (z', '', ')', 'sleep']) {
      const text = `1234 (${comm}) S ${tail(49)}\n`;
      const s = parseStat(B(text));
      expect(s.comm).toBe(comm);
      expect(s.pid).toBe(1234);
      expect(s.state).toBe('S');
      expect(s.ppid).toBe(4);
      expect(s.startBrk).toBe(47n);
      expect(s.exitCode).toBe(52);
      expect(s).toEqual(refStat(text));
    }
  });
  it('keeps u64 values exact', () => {
    const f = tail(49).split(' ');
    f[25 - 4] = '18446744073709551615';
    f[28 - 4] = '140737488351232';
    const s = parseStat(B(`7 (x) R ${f.join(' ')}`));
    expect(s.rsslim).toBe(18446744073709551615n);
    expect(s.startStack).toBe(140737488351232n);
  });
  it('parses negative fields', () => {
    const f = tail(49).split(' ');
    f[8 - 4] = '-1';
    f[19 - 4] = '-20';
    const s = parseStat(B(`2 (kthreadd) S ${f.join(' ')}`));
    expect(s.tpgid).toBe(-1);
    expect(s.nice).toBe(-20);
  });
});

const STATUS = `Name:\tweird\\nname\\\\x\ty
Umask:\t0027
State:\tS (sleeping)
Tgid:\t100
Ngid:\t0
Pid:\t100
PPid:\t1
TracerPid:\t55
Uid:\t1000\t1001\t1002\t1003
Gid:\t2000\t2001\t2002\t2003
FDSize:\t64
Groups:\t4 24 27 1000 
NStgid:\t100\t5\t1
NSpid:\t100\t5\t1
NSpgid:\t100\t5\t1
NSsid:\t90\t3\t1
Kthread:\t0
VmPeak:\t    3060 kB
VmSize:\t    3056 kB
VmLck:\t       4 kB
VmPin:\t       0 kB
VmHWM:\t    1776 kB
VmRSS:\t    1770 kB
RssAnon:\t     116 kB
RssFile:\t    1654 kB
RssShmem:\t       0 kB
VmData:\t     360 kB
VmStk:\t     132 kB
VmExe:\t      20 kB
VmLib:\t    1528 kB
VmPTE:\t      44 kB
VmSwap:\t       8 kB
HugetlbPages:\t       0 kB
CoreDumping:\t0
THP_enabled:\t1
untag_mask:\t0xffffffffffffffff
Threads:\t3
SigQ:\t2/96365
SigPnd:\t0000000000000100
ShdPnd:\t8000000000000000
SigBlk:\tfffffffe7ffbfeff
SigIgn:\t0000000001001000
SigCgt:\t0000000100004002
CapInh:\t0000000000000000
CapPrm:\t000001ffffffffff
CapEff:\t000001ffffffffff
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t1
Seccomp:\t2
Seccomp_filters:\t3
Speculation_Store_Bypass:\tthread vulnerable
SpeculationIndirectBranch:\tconditional enabled
Cpus_allowed:\t3
Cpus_allowed_list:\t0-1
Mems_allowed:\t00000000,00000001
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t150
nonvoluntary_ctxt_switches:\t545
`;

describe('status', () => {
  it('parses every field and decodes the Name escapes', () => {
    const s = parseStatus(B(STATUS));
    expect(s.name).toBe('weird\nname\\x\ty');
    expect(s.umask).toBe(0o27);
    expect(s.state).toBe('S');
    expect(s.tracerPid).toBe(55);
    expect(s.uid).toEqual([1000, 1001, 1002, 1003]);
    expect(s.gid).toEqual([2000, 2001, 2002, 2003]);
    expect(s.groups).toEqual([4, 24, 27, 1000]);
    expect(s.nsPid).toEqual([100, 5, 1]);
    expect(s.nsSid).toEqual([90, 3, 1]);
    expect(s.vm?.lck).toBe(4);
    expect(s.vm?.swap).toBe(8);
    expect(s.sigQueued).toBe(2);
    expect(s.sigQueueLimit).toBe(96365);
    expect(s.shdPnd).toBe(0x8000000000000000n);
    expect(s.sigBlk).toBe(0xfffffffe7ffbfeffn);
    expect(s.capEff).toBe(0x1ffffffffffn);
    expect(s.untagMask).toBe(0xffffffffffffffffn);
    expect(s.noNewPrivs).toBe(1);
    expect(s.seccomp).toBe(2);
    expect(s.seccompFilters).toBe(3);
    expect(s.voluntaryCtxtSwitches).toBe(150);
    expect(s).toEqual(refStatus(STATUS));
  });
  it('has no vm block for kernel threads', () => {
    const text = STATUS.split('\n')
      .filter((l) => !/^(Vm|Rss|Huge)/.test(l))
      .join('\n');
    const s = parseStatus(B(text));
    expect(s.vm).toBeUndefined();
    expect(s).toEqual(refStatus(text));
  });
});

const MAPS = `55ba6e684000-55ba6e686000 r--p 00000000 fe:00 260386                     /usr/bin/head
55694b3e4000-55694b405000 rw-p 00000000 00:00 0                          [heap]
7f5194cd6000-7f5194d9a000 rw-p 00000000 00:00 0 
7f5194d9a000-7f5194df1000 r-xs 0001f000 103:0a 18446744073709551615      /tmp/dir with spaces/lib x.so (deleted)
7f5194df1000-7f5194df2000 rw-s 00000000 00:01 4096                       /memfd:my memfd (deleted)
7f5194df2000-7f5194df3000 ---p 00000000 00:00 0                          [anon:my name]
7f5194df3000-7f5194df4000 r--p 00000000 00:00 0                          [vvar]
7f5194df4000-7f5194df5000 r--p 00000000 00:00 0                          [vvar_vclock]
7f5194df5000-7f5194df6000 r-xp 00000000 00:00 0                          [vdso]
7ffc22e98000-7ffc22eb9000 rw-p 00000000 00:00 0                          [stack]
7f5194df6000-7f5194df7000 r--p 123456789abcdef0 fe:00 1                  /weird\\012name
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`;

describe('maps', () => {
  it('parses headers, pseudo paths, deleted files and spaces', () => {
    const m = parseMaps(B(MAPS));
    expect(m).toHaveLength(12);
    expect(m[0]).toEqual({
      start: 0x55ba6e684000n,
      end: 0x55ba6e686000n,
      prot: PROT_READ,
      shared: false,
      pgoff: 0n,
      major: 0xfe,
      minor: 0,
      ino: 260386n,
      path: '/usr/bin/head',
      deleted: false,
    });
    expect(m[1]!.path).toBe('[heap]');
    expect(m[2]!.path).toBe('');
    expect(m[3]).toMatchObject({
      prot: PROT_READ | PROT_EXEC,
      shared: true,
      pgoff: 0x1f000n,
      major: 0x103,
      minor: 0xa,
      ino: 18446744073709551615n,
      path: '/tmp/dir with spaces/lib x.so',
      deleted: true,
    });
    expect(m[4]).toMatchObject({ prot: PROT_READ | PROT_WRITE, path: '/memfd:my memfd', deleted: true });
    expect(m[5]!.prot).toBe(0);
    expect(m.slice(5, 10).map((e) => e.path)).toEqual([
      '[anon:my name]',
      '[vvar]',
      '[vvar_vclock]',
      '[vdso]',
      '[stack]',
    ]);
    expect(m[10]!.pgoff).toBe(0x123456789abcdef0n);
    expect(m[10]!.path).toBe('/weird\\012name');
    expect(m[11]!.start).toBe(0xffffffffff600000n);
    expect(m[11]!.prot).toBe(PROT_EXEC);
    expect(m).toEqual(refMaps(MAPS));
  });
  it('handles a missing final newline and an empty file', () => {
    const text = MAPS.trimEnd();
    expect(parseMaps(B(text))).toEqual(refMaps(text));
    expect(parseMaps(B(''))).toEqual([]);
  });
});

const SMAPS_BLOCK = (hdr: string, flags: string, extra = '') => `${hdr}
Size:                  8 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                   8 kB
Pss:                   8 kB
Pss_Dirty:             0 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         8 kB
Private_Dirty:         0 kB
Referenced:            8 kB
Anonymous:             0 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
${extra}THPeligible:           1
VmFlags: ${flags}
`;

describe('smaps', () => {
  it('parses counters and VmFlags', () => {
    const text =
      SMAPS_BLOCK(
        '55ba6e684000-55ba6e686000 r--p 00000000 fe:00 260386                     /usr/bin/head',
        'rd mr mw me ',
      ) +
      SMAPS_BLOCK(
        '7f0000000000-7f0000100000 rw-p 00000000 00:00 0 ',
        'rd wr mr mw me ac sd dd wf mg hg nh um uw ss sl gd lo ',
        'NewCounter:           7 kB\nProtectionKey:         3\n',
      );
    const s = parseSmaps(B(text));
    expect(s).toHaveLength(2);
    expect(s[0]).toMatchObject({ size: 8, rss: 8, pss: 8, privateClean: 8, referenced: 8, thpEligible: 1 });
    expect(vmFlagNames(s[0]!.vmFlags)).toEqual(['rd', 'mr', 'mw', 'me']);
    expect(s[0]!.vmFlags & VmFlag.rd).toBeTruthy();
    expect(s[1]!.other).toEqual({ NewCounter: 7 });
    expect(s[1]!.protectionKey).toBe(3);
    expect(s[0]!.protectionKey).toBe(-1);
    for (const f of ['ac', 'sd', 'dd', 'wf', 'mg', 'hg', 'nh', 'um', 'uw', 'ss', 'sl', 'gd', 'lo'] as const) {
      expect(hasVmFlag(s[1]!.vmFlags, f)).toBe(true);
    }
    expect(hasVmFlag(s[1]!.vmFlags, 'ex')).toBe(false);
    expect(s).toEqual(refSmaps(text));
  });

  it('keeps unknown VmFlags mnemonics and wide values', () => {
    const wide = SMAPS_BLOCK('7f0000000000-7f0000100000 rw-p 00000000 00:00 0 ', 'rd zz wr q3 ').replace(
      'Rss:                   8 kB',
      'Rss:            123456789 kB',
    );
    const s = parseSmaps(B(wide));
    expect(s[0]!.rss).toBe(123456789);
    expect(s[0]!.vmFlagsUnknown).toEqual(['zz', 'q3']);
    expect(vmFlagNames(s[0]!.vmFlags)).toEqual(['rd', 'wr']);
    expect(s).toEqual(refSmaps(wide));
  });

  it('copes with keys out of order and no final newline', () => {
    const lines = SMAPS_BLOCK('7f0000000000-7f0000100000 rw-p 00000000 00:00 0 ', 'rd').trimEnd().split('\n');
    const shuffled = [lines[0], ...lines.slice(1, -1).reverse(), lines.at(-1)].join('\n');
    expect(parseSmaps(B(shuffled))).toEqual(refSmaps(shuffled));
  });

  it('masks cover all known flags exactly', () => {
    expect(vmFlagNames(vmFlagMask(['mp', 'rd', 'gu']))).toEqual(['rd', 'gu', 'mp']);
    expect(vmFlagMask(['rd', 'rd'])).toBe(VmFlag.rd);
  });

  it('parses smaps_rollup', () => {
    const text = `55974b8d5000-7ffc22eb9000 ---p 00000000 00:00 0                          [rollup]
Rss:                1732 kB
Pss:                 388 kB
Pss_Dirty:           112 kB
Pss_Anon:            112 kB
Pss_File:            276 kB
Pss_Shmem:             0 kB
Shared_Clean:       1584 kB
Shared_Dirty:          0 kB
Private_Clean:        36 kB
Private_Dirty:       112 kB
Referenced:         1732 kB
Anonymous:           112 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
`;
    const r = parseSmapsRollup(B(text));
    expect(r).toMatchObject({
      start: 0x55974b8d5000n,
      end: 0x7ffc22eb9000n,
      rss: 1732,
      pssFile: 276,
      sharedClean: 1584,
    });
    expect(r).toEqual(refSmapsRollup(text));
  });
});

const MOUNTINFO = `22 27 0:21 / /proc rw,relatime - proc proc rw
36 35 98:0 /mnt\\0401 /mnt\\040two\\134x rw,noatime shared:1 master:2 propagate_from:3 - ext3 /dev/root rw,errors=continue
40 22 0:50 /sub\\011dir /tmp/a\\012b ro unbindable - fuse.sshfs user@host:/a\\040b rw,user_id=0,group_id=0
41 22 0:51 / /empty rw - tmpfs none rw,size=1k,mode=755
`;

describe('mountinfo', () => {
  it('decodes octal escapes and optional fields', () => {
    const m = parseMountInfo(B(MOUNTINFO));
    expect(m).toHaveLength(4);
    expect(m[1]).toEqual({
      mntId: 36,
      parentId: 35,
      major: 98,
      minor: 0,
      root: '/mnt 1',
      mountpoint: '/mnt two\\x',
      options: 'rw,noatime',
      optional: ['shared:1', 'master:2', 'propagate_from:3'],
      shared: 1,
      master: 2,
      propagateFrom: 3,
      unbindable: false,
      fstype: 'ext3',
      source: '/dev/root',
      superOptions: 'rw,errors=continue',
    });
    expect(m[2]).toMatchObject({
      root: '/sub\tdir',
      mountpoint: '/tmp/a\nb',
      unbindable: true,
      optional: ['unbindable'],
      fstype: 'fuse.sshfs',
      source: 'user@host:/a b',
    });
    expect(m).toEqual(refMountInfo(MOUNTINFO));
  });
});

const FDINFO: Record<string, string> = {
  eventfd:
    'pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\neventfd-count:                5\neventfd-id: 1\neventfd-semaphore: 1\n',
  epoll:
    'pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\n' +
    'tfd:        3 events:       1c data:                3  pos:0 ino:40e sdev:10\n' +
    'tfd:        5 events:       19 data: ffffffffffffffff  pos:77 ino:290e sdev:f\n',
  inotify:
    'pos:\t0\nflags:\t00\nmnt_id:\t17\nino:\t1038\n' +
    'inotify wd:1 ino:3f7e8 sdev:fe00000 mask:300 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e8f7030000000000\n' +
    'inotify wd:a ino:2 sdev:fe00000 mask:fff ignored_mask:0\n',
  fanotify:
    'pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\n' +
    'fanotify flags:10 event-flags:8000\n' +
    'fanotify mnt_id:1b mflags:0 mask:8 ignored_mask:0\n' +
    'fanotify ino:3f7e8 sdev:fe00000 mflags:0 mask:8 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e8f7030000000000\n' +
    'fanotify sdev:fe00001 mflags:1 mask:2 ignored_mask:4\n',
  timerfd:
    'pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\nclockid: 1\nticks: 3\nsettime flags: 01\n' +
    'it_value: (99, 999406928)\nit_interval: (1, 500)\n',
  signalfd: 'pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\nsigmask:\t0000000000000a00\n',
  locks:
    'pos:\t10\nflags:\t02100001\nmnt_id:\t27\nino:\t2146626\n' +
    'lock:\t1: POSIX  ADVISORY  WRITE 6047 fe:00:2146626 0 EOF\n' +
    'lock:\t1: -> POSIX  ADVISORY  WRITE 6050 fe:00:2146626 0 99\n' +
    'lock:\t2: OFDLCK ADVISORY  READ -1 103:0a:2146626 100 199\n',
  pidfd: 'pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1047\nPid:\t1234\nNSpid:\t1234\t1\n',
  tty: 'pos:\t0\nflags:\t0100002\nmnt_id:\t26\nino:\t3\ntty-index:\t4\n',
};

describe('fdinfo', () => {
  it('parses every kind like the reference', () => {
    for (const [kind, text] of Object.entries(FDINFO)) {
      expect(parseFdInfo(B(text)), kind).toEqual(refFdInfo(text));
    }
  });
  it('gets the values right', () => {
    const ev = parseFdInfo(B(FDINFO.eventfd!));
    expect(ev).toMatchObject({ pos: 0n, flags: 2, mntId: 17, ino: 1038n });
    expect(ev.eventfd).toEqual({ count: 5n, id: 1, semaphore: true });
    const ep = parseFdInfo(B(FDINFO.epoll!));
    expect(ep.flags).toBe(0o2000002);
    expect(ep.epoll).toEqual([
      { tfd: 3, events: 0x1c, data: 3n, pos: 0n, ino: 0x40en, sdev: 0x10 },
      { tfd: 5, events: 0x19, data: 0xffffffffffffffffn, pos: 77n, ino: 0x290en, sdev: 0xf },
    ]);
    const ino = parseFdInfo(B(FDINFO.inotify!));
    expect(ino.inotify?.[0]).toEqual({
      wd: 1,
      ino: 0x3f7e8n,
      sdev: 0xfe00000,
      mask: 0x300,
      ignoredMask: 0,
      fhandleBytes: 8,
      fhandleType: 1,
      fhandle: Buffer.from('e8f7030000000000', 'hex'),
    });
    expect(ino.inotify?.[1]).toMatchObject({ wd: 10, fhandle: undefined });
    const fan = parseFdInfo(B(FDINFO.fanotify!)).fanotify!;
    expect(fan.flags).toBe(0x10);
    expect(fan.eventFlags).toBe(0x8000);
    expect(fan.marks.map((m) => m.kind)).toEqual(['mount', 'inode', 'sb']);
    expect(fan.marks[0]!.mntId).toBe(0x1b);
    expect(fan.marks[1]!.ino).toBe(0x3f7e8n);
    expect(fan.marks[2]).toMatchObject({ sdev: 0xfe00001, mflags: 1, mask: 2, ignoredMask: 4 });
    expect(parseFdInfo(B(FDINFO.timerfd!)).timerfd).toEqual({
      clockid: 1,
      ticks: 3n,
      settimeFlags: 1,
      itValue: { sec: 99n, nsec: 999406928n },
      itInterval: { sec: 1n, nsec: 500n },
    });
    expect(parseFdInfo(B(FDINFO.signalfd!)).sigmask).toBe(0xa00n);
    const locks = parseFdInfo(B(FDINFO.locks!)).locks!;
    expect(locks[0]).toEqual({
      id: 1,
      blocked: false,
      type: 'POSIX',
      mode: 'ADVISORY',
      access: 'WRITE',
      pid: 6047,
      major: 0xfe,
      minor: 0,
      ino: 2146626n,
      start: 0n,
      end: undefined,
    });
    expect(locks[1]).toMatchObject({ blocked: true, pid: 6050, end: 99n });
    expect(locks[2]).toMatchObject({
      type: 'OFDLCK',
      access: 'READ',
      pid: -1,
      major: 0x103,
      minor: 10,
      end: 199n,
    });
    expect(parseFdInfo(B(FDINFO.pidfd!)).other).toEqual({ Pid: '1234', NSpid: '1234\t1' });
    expect(parseFdInfo(B(FDINFO.tty!)).ttyIndex).toBe(4);
  });
});

describe('children', () => {
  it('parses space separated pids', () => {
    for (const text of ['', '123 ', '1 22 333 4444 ', '5\n', '7 8']) {
      expect(parseChildren(B(text))).toEqual(refChildren(text));
    }
  });
});

describe('parsers honour the length argument', () => {
  it('ignores bytes past len (a reused buffer)', () => {
    const text = MAPS;
    const big = Buffer.alloc(text.length + 100, 0x41);
    big.write(text, 0, 'utf8');
    expect(parseMaps(big, Buffer.byteLength(text))).toEqual(refMaps(text));
    const m = Buffer.alloc(MOUNTINFO.length + 50, 0x20);
    m.write(MOUNTINFO);
    expect(parseMountInfo(m, Buffer.byteLength(MOUNTINFO))).toEqual(refMountInfo(MOUNTINFO));
  });
});
