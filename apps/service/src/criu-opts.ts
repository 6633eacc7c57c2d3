// criu_opts -> CRIU's option set (@criu-ts/core's CriuOptions), as CRIU's setup_opts_from_req fills its
// `opts` from a request: the same fields in the same order. A field criu-ts honours sets its option; a
// field set to a value criu-ts cannot honour yet is refused by name (`criu_opts.<name>: not supported by
// criu-ts yet`), never ignored; a field absent or at its "off" value is no error.
import { readlinkSync, statSync } from 'node:fs';
import { procPath } from '@criu-ts/bfd';
import { CPU_CAP, type CriuOptions, defaultOptions } from '@criu-ts/core';
import { CriuCgMode, CriuNetworkLockMethod, type CriuOpts } from '@criu-ts/rpc';

/** A request whose options cannot be acted on: CRIU answers these with cr_errno EBADRQC. */
export class RequestError extends Error {
  override name = 'RequestError';
}

/** What a request runs with, besides CRIU's option set. */
export interface RequestOptions {
  o: CriuOptions;
  /** The tree to dump: criu_opts.pid, else the peer (SO_PEERCRED), as CRIU's. */
  pid: number;
  /** Whether the client asked to dump itself (no pid). */
  selfDump: boolean;
  /** opts.notify_scripts: a NOTIFY exchange at each stage. */
  notify: boolean;
  /** opts.status_fd: the client's fd, reopened, written once the restored tree runs. */
  statusFdPath?: string;
  /** Where the log goes: a path in the work dir, or stderr. */
  logToStderr: boolean;
}

export type RequestMode = 'dump' | 'restore' | 'check' | 'cpuinfo';

const notYet = (name: string, why?: string) =>
  new RequestError(`criu_opts.${name}: not supported by criu-ts yet${why ? ` (${why})` : ''}`);

const NAMESPACES = "the tree's namespaces and mounts are not dumped by criu-ts yet";
const INCREMENTAL = 'deduplication of incremental dumps is not in criu-ts yet';
const PAGE_SERVER = 'the page server is not in criu-ts yet';
const TLS = 'TLS is for the page server, which is not in criu-ts yet';

/**
 * The client's fd `fd` (one of its directories) as a path criu-ts can use: /proc/PEER/fd/N names it,
 * and the path it links to must be the same directory (not deleted, not in another mount namespace).
 */
function peerDirPath(peer: number, fd: number, field: string): string {
  const link = procPath(peer, 'fd', fd);
  let target: string;
  let st: ReturnType<typeof statSync>;
  try {
    target = readlinkSync(link);
    st = statSync(link);
  } catch (e) {
    throw new RequestError(
      `criu_opts.${field} ${fd}: the client's fd cannot be read (${(e as NodeJS.ErrnoException).code ?? e})`,
    );
  }
  if (!st.isDirectory())
    throw new RequestError(`criu_opts.${field} ${fd}: the client's fd is not a directory`);
  let same = false;
  try {
    const there = statSync(target);
    same = there.dev === st.dev && there.ino === st.ino;
  } catch {
    // not reachable by its name
  }
  if (!same)
    throw new RequestError(
      `criu_opts.${field} ${fd}: the client's directory (${target}) cannot be reached by its path from criu-ts`,
    );
  return target;
}

/**
 * CRIU's option set for a request, from its criu_opts. `peer` is the client's pid; `swrk` says whether
 * this is `criu-ts swrk` (rst_sibling, inherit_fd and ps.fd are for swrk only, as CRIU's).
 */
export function requestOptions(
  req: CriuOpts | undefined,
  mode: RequestMode,
  peer: number,
  swrk: boolean,
): RequestOptions {
  const o = defaultOptions();
  o.command = mode;
  const r: CriuOpts = req ?? { images_dir_fd: -1 };
  const on = (v: boolean | undefined) => v === true;
  const some = (v: unknown[] | undefined) => v !== undefined && v.length > 0;

  if (on(r.unprivileged)) throw notYet('unprivileged', 'criu-ts runs as root');
  if (on(r.leave_running)) o.finalState = 'running';
  if (on(r.leave_stopped)) o.finalState = 'stopped';
  const selfDump = r.pid === undefined || r.pid === 0;
  const pid = selfDump ? peer : (r.pid as number);
  if (r.ext_unix_sk !== undefined) o.extUnixSk = r.ext_unix_sk;
  if (some(r.unix_sk_ino)) throw notYet('unix_sk_ino', 'naming external unix sockets by inode');
  if (r.root !== undefined && r.root !== '') throw notYet('root', NAMESPACES);
  if (r.rst_sibling !== undefined) {
    if (!swrk) throw new RequestError('rst_sibling is not allowed in standalone service');
    o.restoreSibling = r.rst_sibling;
  }
  if (r.tcp_established !== undefined) o.tcpEstablished = r.tcp_established;
  if (r.tcp_skip_in_flight !== undefined) o.skipInFlight = r.tcp_skip_in_flight;
  if (r.tcp_close !== undefined) o.tcpClose = r.tcp_close;
  if (on(r.weak_sysctls)) throw notYet('weak_sysctls', NAMESPACES);
  if (on(r.evasive_devices)) throw notYet('evasive_devices', 'device files are not substituted');
  if (r.shell_job !== undefined) o.shellJob = r.shell_job;
  if (on(r.skip_file_rwx_check)) throw notYet('skip_file_rwx_check');
  if (r.file_locks !== undefined) o.fileLocks = r.file_locks;
  if (r.track_mem !== undefined) o.trackMem = r.track_mem;
  if (r.link_remap !== undefined) o.linkRemap = r.link_remap;
  if (r.auto_dedup !== undefined) o.autoDedup = r.auto_dedup;
  if (r.force_irmap !== undefined) o.forceIrmap = r.force_irmap;
  if (some(r.exec_cmd)) throw notYet('exec_cmd');
  if (on(r.lazy_pages)) throw notYet('lazy_pages', PAGE_SERVER);
  if (r.pre_dump_mode !== undefined) {
    if (r.pre_dump_mode === 1) o.preDumpMode = 'splice';
    else if (r.pre_dump_mode === 2) o.preDumpMode = 'read';
    else throw new RequestError(`criu_opts.pre_dump_mode: unknown mode ${r.pre_dump_mode}`);
  }
  if (r.network_lock !== undefined) {
    const m = r.network_lock;
    if (m === CriuNetworkLockMethod.IPTABLES) o.networkLock = 'iptables';
    else if (m === CriuNetworkLockMethod.NFTABLES) o.networkLock = 'nftables';
    else if (m === CriuNetworkLockMethod.SKIP) o.networkLock = 'skip';
    else throw new RequestError(`criu_opts.network_lock: unknown method ${m}`);
  }
  if (r.ps !== undefined) {
    // As CRIU: the memory goes to the page server at ps.address:ps.port, or on ps.fd (swrk only: a socket
    // the client passed at exec). Lazy pages, the other use of ps, are refused above.
    o.pageServer = true;
    o.port = r.ps.port;
    if (r.ps.address) o.address = r.ps.address;
    if (r.ps.fd !== undefined) {
      if (!swrk) throw new RequestError('criu_opts.ps.fd: a page server socket is for swrk only');
      o.psSocket = r.ps.fd;
    }
  }
  const notify = on(r.notify_scripts);
  if (some(r.veths)) throw notYet('veths', NAMESPACES);
  if (some(r.ext_mnt)) throw notYet('ext_mnt', NAMESPACES);
  if (some(r.join_ns)) throw notYet('join_ns', NAMESPACES);
  if (some(r.inherit_fd)) {
    if (!swrk) throw new RequestError('inherit_fd is not allowed in standalone service');
    throw notYet('inherit_fd', 'inherited fds at restore');
  }
  if (some(r.external)) throw notYet('external', 'external resources');
  for (const c of r.cg_root ?? [])
    o.cgroupRoots.push(c.ctrl ? { controller: c.ctrl, path: c.path } : { path: c.path });
  if (some(r.enable_fs)) throw notYet('enable_fs', NAMESPACES);
  if (some(r.skip_mnt)) throw notYet('skip_mnt', NAMESPACES);
  // As CRIU's: a cpu_cap given also writes (dump) and checks (restore) cpuinfo.img, whatever its bits.
  if (r.cpu_cap !== undefined) o.cpuCap = (r.cpu_cap | CPU_CAP.IMAGE) >>> 0;
  if (r.manage_cgroups !== undefined) o.manageCgroups = r.manage_cgroups ? 'soft' : 'ignore';
  if (r.manage_cgroups_mode !== undefined) {
    const modes: Record<number, CriuOptions['manageCgroups']> = {
      [CriuCgMode.IGNORE]: 'ignore',
      [CriuCgMode.CG_NONE]: 'none',
      [CriuCgMode.PROPS]: 'props',
      [CriuCgMode.SOFT]: 'soft',
      [CriuCgMode.FULL]: 'full',
      [CriuCgMode.STRICT]: 'strict',
      [CriuCgMode.DEFAULT]: 'soft',
    };
    const mode = modes[r.manage_cgroups_mode];
    if (!mode) throw new RequestError(`criu_opts.manage_cgroups_mode: unknown mode ${r.manage_cgroups_mode}`);
    o.manageCgroups = mode;
  }
  if (r.freeze_cgroup) o.freezeCgroup = r.freeze_cgroup;
  if (r.lsm_profile !== undefined) throw notYet('lsm_profile', 'LSM profiles');
  if (r.lsm_mount_context !== undefined) throw notYet('lsm_mount_context', NAMESPACES);
  if (r.timeout !== undefined && r.timeout > 0) o.timeout = r.timeout;
  if (r.cgroup_props) o.cgroupProps = r.cgroup_props;
  if (r.cgroup_props_file) o.cgroupPropsFile = r.cgroup_props_file;
  o.cgroupDumpControllers.push(...(r.cgroup_dump_controller ?? []));
  if (r.cgroup_yard) o.cgroupYard = r.cgroup_yard;
  for (const name of ['tls_cacert', 'tls_cacrl', 'tls_cert', 'tls_key'] as const)
    if (r[name] !== undefined) throw notYet(name, TLS);
  if (on(r.tls)) throw notYet('tls', TLS);
  if (on(r.tls_no_cn_verify)) throw notYet('tls_no_cn_verify', TLS);
  if (on(r.auto_ext_mnt)) throw notYet('auto_ext_mnt', NAMESPACES);
  if (on(r.ext_sharing)) throw notYet('ext_sharing', NAMESPACES);
  if (on(r.ext_masters)) throw notYet('ext_masters', NAMESPACES);
  if (r.ghost_limit !== undefined) o.ghostLimit = BigInt(r.ghost_limit);
  if (r.empty_ns !== undefined && r.empty_ns !== 0) throw notYet('empty_ns', NAMESPACES);
  const statusFdPath = r.status_fd !== undefined ? procPath(peer, 'fd', r.status_fd) : undefined;
  if (on(r.orphan_pts_master)) throw notYet('orphan_pts_master', 'terminals are restored as the shell job');
  if (r.display_stats !== undefined) o.displayStats = r.display_stats;
  if (r.config_file !== undefined) throw notYet('config_file', "CRIU's RPC configuration file");
  if (r.parent_img) o.prevImagesDir = r.parent_img;
  if (r.irmap_scan_paths) o.irmapScanPaths.push(...r.irmap_scan_paths);
  if (r.pidfd_store_sk !== undefined) throw notYet('pidfd_store_sk', 'the pidfd store');
  if (on(r.mntns_compat_mode)) throw notYet('mntns_compat_mode', NAMESPACES);

  // The images dir: the client's fd, else images_dir; CHECK needs none.
  let imagesDir: string | undefined;
  if (r.images_dir_fd !== -1 && r.images_dir_fd !== undefined)
    imagesDir = peerDirPath(peer, r.images_dir_fd, 'images_dir_fd');
  else if (r.images_dir) imagesDir = r.images_dir;
  else if (mode !== 'check')
    throw new RequestError('Neither images_dir_fd nor images_dir was passed by RPC client.');
  if (imagesDir !== undefined) o.imagesDir = imagesDir;
  if (r.work_dir_fd !== undefined) o.workDir = peerDirPath(peer, r.work_dir_fd, 'work_dir_fd');
  else if (imagesDir === undefined) o.workDir = undefined;

  // The log: log_file in the work dir (no subdirectories), stderr with log_to_stderr, else criu.log.
  const logToStderr = r.log_file === undefined && on(r.log_to_stderr);
  if (r.log_file !== undefined) {
    if (r.log_file.includes('/')) throw new RequestError('No subdirs are allowed in log_file name');
    o.logFile = r.log_file;
  } else o.logFile = logToStderr ? '-' : 'criu.log';
  o.verbosity = r.log_level ?? 2;
  return {
    o,
    pid,
    selfDump,
    notify,
    logToStderr,
    ...(statusFdPath ? { statusFdPath } : {}),
  };
}
