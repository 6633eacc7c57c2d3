import type { MagicName } from './magic.js';

/**
 * How an image's entries are laid out after its magic:
 * - 'entries': every entry is one message of `message` type, maybe followed by an extra blob;
 * - 'pagemap': a pagemap_head entry, then pagemap_entry entries;
 * - 'ghost': a ghost_file_entry, then either raw contents or ghost_chunk_entry + data pairs.
 */
export type Layout = 'entries' | 'pagemap' | 'ghost';

/** The blob that follows an entry on disk, sized by fields of that entry. */
export type ExtraKind =
  | 'pipe-data'
  | 'sk-queue'
  | 'tcp-stream'
  | 'bpfmap-data'
  | 'ipc-shm'
  | 'ipc-sem'
  | 'ipc-msg';

export interface ImageKind {
  readonly magic: MagicName;
  readonly layout: Layout;
  /** Message type of the entries (for 'pagemap' and 'ghost': of the first entry). */
  readonly message: string;
  readonly extra?: ExtraKind;
}

function kind(magic: MagicName, message: string, extra?: ExtraKind): ImageKind {
  return extra ? { magic, layout: 'entries', message, extra } : { magic, layout: 'entries', message };
}

/** Every image kind CRIU 4.2 writes with protobuf entries, keyed by magic name. */
export const IMAGE_KINDS: Partial<Record<MagicName, ImageKind>> = Object.fromEntries(
  [
    kind('INVENTORY', 'inventory_entry'),
    kind('CORE', 'core_entry'),
    kind('IDS', 'task_kobj_ids_entry'),
    kind('CREDS', 'creds_entry'),
    kind('UTSNS', 'utsns_entry'),
    kind('TIMENS', 'timens_entry'),
    kind('PIDNS', 'pidns_entry'),
    kind('IPC_VAR', 'ipc_var_entry'),
    kind('FS', 'fs_entry'),
    { magic: 'GHOST_FILE', layout: 'ghost', message: 'ghost_file_entry' },
    kind('MM', 'mm_entry'),
    kind('CGROUP', 'cgroup_entry'),
    kind('TCP_STREAM', 'tcp_stream_entry', 'tcp-stream'),
    kind('STATS', 'stats_entry'),
    { magic: 'PAGEMAP', layout: 'pagemap', message: 'pagemap_head' },
    kind('PSTREE', 'pstree_entry'),
    kind('REG_FILES', 'reg_file_entry'),
    kind('NS_FILES', 'ns_file_entry'),
    kind('EVENTFD_FILE', 'eventfd_file_entry'),
    kind('EVENTPOLL_FILE', 'eventpoll_file_entry'),
    kind('EVENTPOLL_TFD', 'eventpoll_tfd_entry'),
    kind('SIGNALFD', 'signalfd_entry'),
    kind('TIMERFD', 'timerfd_entry'),
    kind('INOTIFY_FILE', 'inotify_file_entry'),
    kind('INOTIFY_WD', 'inotify_wd_entry'),
    kind('FANOTIFY_FILE', 'fanotify_file_entry'),
    kind('FANOTIFY_MARK', 'fanotify_mark_entry'),
    kind('VMAS', 'vma_entry'),
    kind('PIPES', 'pipe_entry'),
    kind('FIFO', 'fifo_entry'),
    kind('SIGACT', 'sa_entry'),
    kind('NETLINK_SK', 'netlink_sk_entry'),
    kind('REMAP_FPATH', 'remap_file_path_entry'),
    kind('MNTS', 'mnt_entry'),
    kind('TTY_FILES', 'tty_file_entry'),
    kind('TTY_INFO', 'tty_info_entry'),
    kind('TTY_DATA', 'tty_data_entry'),
    kind('RLIMIT', 'rlimit_entry'),
    kind('TUNFILE', 'tunfile_entry'),
    kind('EXT_FILES', 'ext_file_entry'),
    kind('IRMAP_CACHE', 'irmap_cache_entry'),
    kind('FILE_LOCKS', 'file_lock_entry'),
    kind('FDINFO', 'fdinfo_entry'),
    kind('UNIXSK', 'unix_sk_entry'),
    kind('INETSK', 'inet_sk_entry'),
    kind('PACKETSK', 'packet_sock_entry'),
    kind('ITIMERS', 'itimer_entry'),
    kind('POSIX_TIMERS', 'posix_timer_entry'),
    kind('NETDEV', 'net_device_entry'),
    kind('PIPES_DATA', 'pipe_data_entry', 'pipe-data'),
    kind('FIFO_DATA', 'pipe_data_entry', 'pipe-data'),
    kind('SK_QUEUES', 'sk_packet_entry', 'sk-queue'),
    kind('IPCNS_SHM', 'ipc_shm_entry', 'ipc-shm'),
    kind('IPCNS_SEM', 'ipc_sem_entry', 'ipc-sem'),
    kind('IPCNS_MSG', 'ipc_msg_entry', 'ipc-msg'),
    kind('NETNS', 'netns_entry'),
    kind('USERNS', 'userns_entry'),
    kind('SECCOMP', 'seccomp_entry'),
    kind('AUTOFS', 'autofs_entry'),
    kind('FILES', 'file_entry'),
    kind('CPUINFO', 'cpuinfo_entry'),
    kind('MEMFD_INODE', 'memfd_inode_entry'),
    kind('BPFMAP_FILE', 'bpfmap_file_entry'),
    kind('BPFMAP_DATA', 'bpfmap_data_entry', 'bpfmap-data'),
    kind('APPARMOR', 'apparmor_entry'),
    kind('SIGNAL', 'signal_queue_entry'),
    kind('BINFMT_MISC', 'binfmt_misc_entry'),
    kind('PIDFD', 'pidfd_entry'),
  ].map((k) => [k.magic, k]),
);

/**
 * Image file names, as CRIU forms them (criu/image-desc.c). `%u`/`%d`/`%lu` take a decimal
 * id, `%x` a hex one. Raw images (pages, tarballs, ip dumps) have no magic.
 */
export interface ImageName {
  readonly pattern: string;
  readonly magic: MagicName | 'RAW';
}

const NAMES: ImageName[] = [
  ['inventory', 'INVENTORY'],
  ['fdinfo-%u', 'FDINFO'],
  ['pagemap-shmem-%lu', 'PAGEMAP'],
  ['pagemap-%lu', 'PAGEMAP'],
  ['reg-files', 'REG_FILES'],
  ['ext-files', 'EXT_FILES'],
  ['ns-files', 'NS_FILES'],
  ['eventfd', 'EVENTFD_FILE'],
  ['eventpoll', 'EVENTPOLL_FILE'],
  ['eventpoll-tfd', 'EVENTPOLL_TFD'],
  ['signalfd', 'SIGNALFD'],
  ['inotify', 'INOTIFY_FILE'],
  ['inotify-wd', 'INOTIFY_WD'],
  ['fanotify', 'FANOTIFY_FILE'],
  ['fanotify-mark', 'FANOTIFY_MARK'],
  ['core-%u', 'CORE'],
  ['ids-%u', 'IDS'],
  ['mm-%u', 'MM'],
  ['vmas-%u', 'VMAS'],
  ['pipes', 'PIPES'],
  ['pipes-data', 'PIPES_DATA'],
  ['fifo', 'FIFO'],
  ['fifo-data', 'FIFO_DATA'],
  ['pstree', 'PSTREE'],
  ['sigacts-%u', 'SIGACT'],
  ['unixsk', 'UNIXSK'],
  ['inetsk', 'INETSK'],
  ['packetsk', 'PACKETSK'],
  ['netlinksk', 'NETLINK_SK'],
  ['sk-queues', 'SK_QUEUES'],
  ['itimers-%u', 'ITIMERS'],
  ['posix-timers-%u', 'POSIX_TIMERS'],
  ['creds-%u', 'CREDS'],
  ['utsns-%u', 'UTSNS'],
  ['ipcns-var-%u', 'IPC_VAR'],
  ['ipcns-shm-%u', 'IPCNS_SHM'],
  ['ipcns-msg-%u', 'IPCNS_MSG'],
  ['ipcns-sem-%u', 'IPCNS_SEM'],
  ['fs-%u', 'FS'],
  ['remap-fpath', 'REMAP_FPATH'],
  ['ghost-file-%x', 'GHOST_FILE'],
  ['memfd', 'MEMFD_INODE'],
  ['tcp-stream-%x', 'TCP_STREAM'],
  ['mountpoints-%u', 'MNTS'],
  ['netdev-%u', 'NETDEV'],
  ['netns-ct-%u', 'RAW'],
  ['netns-exp-%u', 'RAW'],
  ['netns-%u', 'NETNS'],
  ['ifaddr-%u', 'RAW'],
  ['route-%u', 'RAW'],
  ['route6-%u', 'RAW'],
  ['rule-%u', 'RAW'],
  ['iptables-%u', 'RAW'],
  ['ip6tables-%u', 'RAW'],
  ['nftables-%u', 'RAW'],
  ['tmpfs-dev-%u.tar.gz', 'RAW'],
  ['tmpfs-%u.tar.gz', 'RAW'],
  ['autofs-%u', 'AUTOFS'],
  ['binfmt-misc', 'BINFMT_MISC'],
  ['tty', 'TTY_FILES'],
  ['tty-info', 'TTY_INFO'],
  ['tty-data', 'TTY_DATA'],
  ['filelocks', 'FILE_LOCKS'],
  ['rlimit-%u', 'RLIMIT'],
  ['pages-shmem-%ld', 'RAW'],
  ['pages-%u', 'RAW'],
  ['signal-s-%u', 'SIGNAL'],
  ['signal-p-%u', 'SIGNAL'],
  ['tunfile', 'TUNFILE'],
  ['cgroup', 'CGROUP'],
  ['timerfd', 'TIMERFD'],
  ['cpuinfo', 'CPUINFO'],
  ['seccomp', 'SECCOMP'],
  ['userns-%u', 'USERNS'],
  ['files', 'FILES'],
  ['timens-%u', 'TIMENS'],
  ['pidns-%u', 'PIDNS'],
  ['bpfmap-file', 'BPFMAP_FILE'],
  ['bpfmap-data', 'BPFMAP_DATA'],
  ['apparmor', 'APPARMOR'],
  ['pidfd', 'PIDFD'],
  ['stats-%s', 'STATS'],
  ['irmap-cache', 'IRMAP_CACHE'],
].map(([pattern, magic]) => ({ pattern: pattern as string, magic: magic as MagicName | 'RAW' }));

export const IMAGE_NAMES: readonly ImageName[] = NAMES;

/** The file name of an image: `imageFileName('core-%u', 42)` is `core-42.img`. */
export function imageFileName(pattern: string, id?: number | bigint | string): string {
  const base = pattern.replace(/%(u|d|lu|ld|x|s)/, (_m, conv: string) => {
    if (id === undefined) throw new Error(`image name ${pattern} needs an id`);
    return conv === 'x' ? BigInt(id).toString(16) : String(id);
  });
  return hasImgSuffix(pattern) ? `${base}.img` : base;
}

/**
 * Tarballs carry their own extension, and CRIU names its service images (stats-dump, stats-restore,
 * irmap-cache) without one; everything else ends in .img.
 */
function hasImgSuffix(pattern: string): boolean {
  return !pattern.endsWith('.tar.gz') && pattern !== 'stats-%s' && pattern !== 'irmap-cache';
}

const MATCHERS = NAMES.map((n) => {
  const rx = n.pattern
    .replace(/[.]/g, '\\.')
    .replace(/%(u|d|lu)/, '(\\d+)')
    .replace(/%ld/, '(-?\\d+)')
    .replace(/%x/, '([0-9a-f]+)')
    .replace(/%s/, '([a-z]+)');
  const suffix = hasImgSuffix(n.pattern) ? '\\.img' : '';
  return { name: n, rx: new RegExp(`^${rx}${suffix}$`) };
});

/** Which image a file name is, and its id: `core-42.img` -> core-%u, '42'. */
export function parseImageFileName(file: string): { name: ImageName; id?: string } | undefined {
  for (const m of MATCHERS) {
    const hit = m.rx.exec(file);
    if (hit) return hit[1] === undefined ? { name: m.name } : { name: m.name, id: hit[1] };
  }
  return undefined;
}
