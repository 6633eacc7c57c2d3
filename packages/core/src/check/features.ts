/**
 * `criu check`: what this kernel and criu-ts together can do, under CRIU's feature names, so that
 * `check --feature NAME` answers scripts and zdtm exactly where CRIU would. A feature is reported
 * supported only when the kernel has it AND criu-ts uses it; otherwise the answer says which of the
 * two is missing.
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { release } from 'node:os';
import { ProcDir } from '@criu-ts/bfd';
import {
  AF_INET,
  close,
  flock,
  getsockoptInt,
  ioDestroy,
  ioGeteventsNow,
  ioSetup,
  isSysError,
  LOCK_EX,
  LOCK_UN,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MFD_CLOEXEC,
  MFD_HUGETLB,
  memfdCreate,
  mmap,
  mremapFixed,
  munmap,
  PR_SET_MM,
  PR_SET_MM_MAP_SIZE,
  PROT_READ,
  PROT_WRITE,
  pidfdGetfd,
  pidfdOpen,
  prctl,
  SO_BUF_LOCK,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SOL_SOCKET,
  socket,
} from '@criu-ts/sys';
import { pagemapScanFindsGuards } from '../mm/guards.js';
import { dirtyTrackMechanism } from '../mm/track/mechanism.js';

// node:child_process (with net, stream and dgram beneath it) is loaded when first needed: most runs
// start no program.
const childProcess = () =>
  createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');

/** `how`: which of several mechanisms answers (mem_dirty_track: soft-dirty or uffd-wp). */
export type FeatureAnswer = { ok: true; how?: string } | { ok: false; why: string };
export type FeatureLevel = 'basic' | 'extra' | 'experimental';

export interface Feature {
  name: string;
  level: FeatureLevel;
  probe(): FeatureAnswer;
}

const yes: FeatureAnswer = { ok: true };
const no = (why: string): FeatureAnswer => ({ ok: false, why });
const notInCriuTs = (what: string) => () => no(`${what} criu-ts does not support yet`);

/** The kernel's version as [major, minor]. */
function kernel(): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release());
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}
const kernelAtLeast = (major: number, minor: number, what: string) => (): FeatureAnswer => {
  const [a, b] = kernel();
  return a > major || (a === major && b >= minor) ? yes : no(`${what} needs Linux ${major}.${minor}`);
};

function probe(what: string, f: () => void): FeatureAnswer {
  try {
    f();
    return yes;
  } catch (e) {
    return no(`${what}: ${isSysError(e) ? e.code : (e as Error).message}`);
  }
}

/** fdinfo shows mnt_id (and, with fdinfoLock, a lock's line) for our own fds. */
function fdinfoOfOwnFile(check: (fdinfo: string) => boolean, what: string, lock = false): FeatureAnswer {
  let fd = -1;
  try {
    fd = memfdCreate('criu-ts-check', 0);
    if (lock) flock(fd, LOCK_EX);
    const text = ProcDir.self().readText(`fdinfo/${fd}`);
    if (lock) flock(fd, LOCK_UN);
    return check(text) ? yes : no(`${what} is not in /proc/PID/fdinfo on this kernel`);
  } catch (e) {
    return no(`${what}: ${(e as Error).message}`);
  } finally {
    if (fd >= 0) close(fd);
  }
}

/**
 * The audit loginuid can be read, unset and set back (CONFIG_AUDITSYSCALL, Linux 3.13+, and
 * CAP_AUDIT_CONTROL): what restore needs to give a task its loginuid again. Tried on criu-ts itself
 * (its main thread is the thread-group leader, the only thread that may write /proc/self/loginuid),
 * and put back as it was.
 */
function loginuidWritable(): FeatureAnswer {
  const self = ProcDir.self();
  let saved: string;
  try {
    saved = self.readText('loginuid').trim();
  } catch (e) {
    return no(`${self.pathOf('loginuid')} cannot be read (no CONFIG_AUDITSYSCALL?): ${(e as Error).message}`);
  }
  try {
    self.writeText('loginuid', '4294967295');
  } catch (e) {
    return no(`${self.pathOf('loginuid')} cannot be unset: ${(e as Error).message}`);
  }
  try {
    self.writeText('loginuid', saved);
  } catch (e) {
    return no(`${self.pathOf('loginuid')} cannot be set back to ${saved}: ${(e as Error).message}`);
  }
  return yes;
}

/**
 * An AIO ring can be moved with mremap and its context follows it (the kernel makes the new address the
 * context id): what restore does with the new ring io_setup gives (aio/restore.ts). Tried on criu-ts
 * itself, as CRIU's check does: a context, its ring moved onto a fresh mapping, then asked for events by
 * its new address; destroyed afterwards.
 */
function aioRemap(): FeatureAnswer {
  let ctx: bigint;
  try {
    ctx = ioSetup(16);
  } catch (e) {
    return no(`No AIO syscall: ${isSysError(e) ? e.code : (e as Error).message}`);
  }
  let spare: { at: bigint; len: bigint } | undefined;
  try {
    const ring = ProcDir.self()
      .maps()
      .find((m) => m.start === ctx);
    if (ring?.path !== '/[aio]' || !ring.deleted) return no('No AIO ring at expected location');
    const len = ring.end - ring.start;
    const at = mmap(0n, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    spare = { at, len };
    try {
      mremapFixed(ctx, len, at);
    } catch (e) {
      return no(`Can't remap AIO ring: ${isSysError(e) ? e.code : (e as Error).message}`);
    }
    spare = undefined; // the ring is there now
    ctx = at;
    try {
      ioGeteventsNow(ctx);
    } catch (e) {
      return no(`AIO remap doesn't work properly: ${isSysError(e) ? e.code : (e as Error).message}`);
    }
    return yes;
  } finally {
    try {
      ioDestroy(ctx);
    } catch {
      // nothing left to undo
    }
    if (spare) munmap(spare.at, spare.len);
  }
}

export const FEATURES: readonly Feature[] = [
  { name: 'mnt_id', level: 'basic', probe: () => fdinfoOfOwnFile((t) => /^mnt_id:/m.test(t), 'mnt_id') },
  {
    name: 'mem_dirty_track',
    level: 'basic',
    // soft-dirty where the kernel has it, else userfaultfd async write-protect (mm/track/mechanism.ts)
    probe: () => {
      const m = dirtyTrackMechanism();
      return m.mechanism
        ? { ok: true, how: m.mechanism }
        : no(`Dirty tracking is OFF. Memory snapshot will not work. (${m.why})`);
    },
  },
  { name: 'aio_remap', level: 'basic', probe: aioRemap },
  { name: 'timerfd', level: 'basic', probe: kernelAtLeast(3, 17, 'timerfd state in fdinfo') },
  { name: 'tun', level: 'basic', probe: notInCriuTs('tun/tap devices are something') },
  { name: 'tun_ns', level: 'extra', probe: notInCriuTs('tun/tap devices are something') },
  { name: 'userns', level: 'basic', probe: notInCriuTs('user namespaces are something') },
  {
    name: 'fdinfo_lock',
    level: 'basic',
    probe: () => fdinfoOfOwnFile((t) => /^lock:/m.test(t), 'lock lines', true),
  },
  { name: 'seccomp_suspend', level: 'basic', probe: kernelAtLeast(4, 3, 'PTRACE_O_SUSPEND_SECCOMP') },
  { name: 'seccomp_filters', level: 'basic', probe: kernelAtLeast(4, 4, 'PTRACE_SECCOMP_GET_FILTER') },
  { name: 'loginuid', level: 'basic', probe: loginuidWritable },
  { name: 'cgroupns', level: 'basic', probe: notInCriuTs('cgroup namespaces are something') },
  { name: 'autofs', level: 'basic', probe: notInCriuTs('autofs mounts are something') },
  {
    name: 'tcp_half_closed',
    level: 'basic',
    probe: kernelAtLeast(4, 2, 'TCP repair of half-closed sockets'),
  },
  { name: 'compat_cr', level: 'basic', probe: notInCriuTs('32-bit (compat) tasks are something') },
  { name: 'uffd', level: 'basic', probe: notInCriuTs('lazy pages are something') },
  { name: 'uffd-noncoop', level: 'basic', probe: notInCriuTs('lazy pages are something') },
  {
    name: 'can_map_vdso',
    level: 'basic',
    probe: notInCriuTs('mapping a new vdso (ARCH_MAP_VDSO) is something'),
  },
  { name: 'sk_ns', level: 'basic', probe: notInCriuTs('network namespaces are something') },
  {
    name: 'sk_unix_file',
    level: 'basic',
    probe: notInCriuTs('unix sockets bound in other mount namespaces are something'),
  },
  {
    // What zdtm asks with it: can raw sockets be dumped. criu-ts reads a raw socket whole with
    // getsockopt (files/inet), without the kernel's raw_diag, which this kind of kernel may lack (CRIU
    // says yes then too: its probe takes raw_diag's ENOENT as success).
    name: 'net_diag_raw',
    level: 'basic',
    probe: () => yes,
  },
  { name: 'nsid', level: 'basic', probe: notInCriuTs('network namespace ids are something') },
  { name: 'link_nsid', level: 'extra', probe: notInCriuTs('network namespaces are something') },
  {
    name: 'kcmp_epoll',
    level: 'basic',
    probe: kernelAtLeast(4, 13, 'kcmp(KCMP_EPOLL_TFD)'),
  },
  { name: 'timens', level: 'basic', probe: notInCriuTs('time namespaces are something') },
  { name: 'external_net_ns', level: 'basic', probe: notInCriuTs('network namespaces are something') },
  { name: 'clone3_set_tid', level: 'basic', probe: kernelAtLeast(5, 5, 'clone3 with set_tid') },
  { name: 'newifindex', level: 'basic', probe: notInCriuTs('network namespaces are something') },
  {
    name: 'nftables',
    level: 'basic',
    probe: notInCriuTs("a network namespace's nftables rules are something"),
  },
  { name: 'has_ipt_legacy', level: 'basic', probe: legacyIptables },
  { name: 'pidfd_store', level: 'basic', probe: notInCriuTs('the RPC pidfd store is something') },
  {
    // CRIU's ns_pid is the kernel's NSpid line in /proc/PID/status, which it reads for the pids a task
    // has in nested pid namespaces (the thread a SIGEV_THREAD_ID timer signals...). criu-ts refuses a
    // tree with pid namespaces of its own (namespaces/dump.ts), so the pids it dumps are already the
    // tasks' own; what is left to answer is the kernel's fact.
    name: 'ns_pid',
    level: 'basic',
    probe: () =>
      /^NSpid:/m.test(ProcDir.self().readText('status')) ? yes : no('/proc/PID/status has no NSpid line'),
  },
  { name: 'apparmor_stacking', level: 'basic', probe: notInCriuTs('AppArmor profiles are something') },
  {
    name: 'network_lock_nftables',
    level: 'basic',
    probe: () =>
      ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].some(existsSync)
        ? yes
        : no('the nft command is not installed'),
  },
  {
    name: 'sockopt_buf_lock',
    level: 'basic',
    probe: () =>
      probe('SO_BUF_LOCK', () => {
        const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        try {
          getsockoptInt(fd, SOL_SOCKET, SO_BUF_LOCK);
        } finally {
          close(fd);
        }
      }),
  },
  {
    // CRIU's kerndat probe: an empty hugetlb memfd of the default size (it takes no huge page).
    // criu-ts dumps and restores them (memfd.img hugetlb_flag), and MAP_SHARED hugetlb memory with them.
    name: 'memfd_hugetlb',
    level: 'basic',
    probe: () => probe('memfd_create(MFD_HUGETLB)', () => close(memfdCreate('', MFD_CLOEXEC | MFD_HUGETLB))),
  },
  { name: 'move_mount_set_group', level: 'basic', probe: notInCriuTs('mount namespaces are something') },
  { name: 'openat2', level: 'basic', probe: notInCriuTs('openat2-based restore of files is something') },
  { name: 'get_rseq_conf', level: 'basic', probe: kernelAtLeast(5, 13, 'PTRACE_GET_RSEQ_CONFIGURATION') },
  { name: 'ipv6_freebind', level: 'basic', probe: kernelAtLeast(4, 15, 'IPV6_FREEBIND') },
  { name: 'pagemap_scan', level: 'basic', probe: kernelAtLeast(6, 7, 'the PAGEMAP_SCAN ioctl') },
  { name: 'timer_cr_ids', level: 'basic', probe: kernelAtLeast(6, 15, 'PR_TIMER_CREATE_RESTORE_IDS') },
  { name: 'overlayfs_maps', level: 'basic', probe: notInCriuTs('overlayfs mount namespaces are something') },
  {
    name: 'breakpoints',
    level: 'basic',
    probe: notInCriuTs('hardware breakpoints (debug registers) are something'),
  },
  {
    name: 'pagemap_scan_guard_pages',
    level: 'basic',
    probe: () =>
      pagemapScanFindsGuards(ProcDir.self().pagemap())
        ? yes
        : no('PAGEMAP_SCAN does not report guard pages (PAGE_IS_GUARD needs Linux 6.14)'),
  },
];

/**
 * Whether an iptables on the legacy (x_tables) kernel interface is installed, for IPv4 and IPv6: the
 * plain command if it is not the nf_tables one, else its -legacy twin. CRIU's check, to the letter.
 */
function legacyIptables(): FeatureAnswer {
  const isLegacy = (cmd: string) => {
    try {
      const v = childProcess().execFileSync(cmd, ['--version'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      return !v.includes('nf_tables');
    } catch {
      return false;
    }
  };
  for (const family of ['iptables', 'ip6tables'])
    if (!isLegacy(`${family}-save`) && !isLegacy(`${family}-legacy-save`))
      return no(`no ${family} using the legacy (x_tables) interface is installed`);
  return yes;
}

export function featureNamed(name: string): Feature | undefined {
  return FEATURES.find((f) => f.name === name);
}

/**
 * What `criu check` with no feature named checks: the mechanisms every dump and restore rests on.
 * Each entry names what fails, so a user knows what the kernel lacks.
 */
export function basicChecks(): { name: string; answer: FeatureAnswer }[] {
  const self = process.pid;
  return [
    { name: 'clone3 with set_tid', answer: kernelAtLeast(5, 5, 'clone3 with set_tid')() },
    {
      name: 'pidfd_getfd',
      answer: probe('pidfd_open/pidfd_getfd', () => {
        const pidfd = pidfdOpen(self);
        try {
          close(pidfdGetfd(pidfd, 0));
        } finally {
          close(pidfd);
        }
      }),
    },
    {
      name: 'prctl(PR_SET_MM_MAP)',
      // PR_SET_MM_MAP_SIZE asks the size of struct prctl_mm_map: it exists where the call does.
      answer: probe(
        'PR_SET_MM_MAP_SIZE',
        () => void prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, Buffer.alloc(4), 0, 0),
      ),
    },
    { name: 'PTRACE_O_SUSPEND_SECCOMP', answer: kernelAtLeast(4, 3, 'PTRACE_O_SUSPEND_SECCOMP')() },
  ];
}
