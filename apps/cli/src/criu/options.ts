/**
 * CRIU's options, one table for every command as CRIU has it: a configuration file may name any of
 * them whatever the command, and a command uses the ones that mean something to it. Each option is
 * either honoured (it sets a field of CriuOptions that a command acts on) or refused by name with
 * the reason: criu-ts never accepts an option and ignores it.
 */
import { applyCpuCap, type CgroupMode, type CriuOptions, defaultOptions } from '@criu-ts/core';
import { configSources } from './config.js';
import { type ArgKind, type GetoptSpec, getopt, UsageError } from './getopt.js';

export type { CriuOptions };
export { defaultOptions };

const CGROUP_MODES: readonly CgroupMode[] = ['none', 'props', 'soft', 'full', 'strict', 'ignore'];

interface OptionSpec extends GetoptSpec {
  help?: string;
  /** Why criu-ts refuses it (the option is named in the message); honoured when absent. */
  refused?: string;
  /** value: the option's argument; on: false for the `--no-` form of a boolean. */
  set?: (o: CriuOptions, value: string | undefined, on: boolean) => void;
}

const bool = (long: string, key: BoolKey, help: string, short?: string): OptionSpec => ({
  long,
  arg: 'none',
  help,
  ...(short ? { short } : {}),
  set: (o, _v, on) => {
    o[key] = on;
  },
});
type BoolKey =
  | 'restoreDetached'
  | 'restoreSibling'
  | 'shellJob'
  | 'fileLocks'
  | 'autoDedup'
  | 'tcpEstablished'
  | 'tcpClose'
  | 'skipInFlight'
  | 'displayStats'
  | 'forceIrmap'
  | 'checkExtra'
  | 'checkExperimental'
  | 'ghostFiemap'
  | 'linkRemap'
  | 'trackMem'
  | 'pageServer';

const str = (long: string, key: StrKey, help: string, short?: string): OptionSpec => ({
  long,
  arg: 'required',
  help,
  ...(short ? { short } : {}),
  set: (o, v) => {
    o[key] = v as string;
  },
});
type StrKey =
  | 'imagesDir'
  | 'workDir'
  | 'logFile'
  | 'pidfile'
  | 'address'
  | 'freezeCgroup'
  | 'cgroupYard'
  | 'cgroupProps'
  | 'cgroupPropsFile'
  | 'prevImagesDir';

const refuse = (long: string, arg: ArgKind, why: string, short?: string): OptionSpec => ({
  long,
  arg,
  refused: why,
  ...(short ? { short } : {}),
});

const PAGE_SERVER = "the page server's lazy pages are not in criu-ts yet";
const NAMESPACES = "namespaces and mounts of the tree are not dumped by criu-ts yet (CRIU's --root flavour)";
const TLS = 'TLS is for the page server, which is not in criu-ts yet';
const PLUGINS = 'plugins are not in criu-ts yet';

/** Every option CRIU 4.2 knows, in CRIU's order. */
const OPTIONS: OptionSpec[] = [
  {
    long: 'tree',
    short: 't',
    arg: 'required',
    help: 'the root of the process tree to dump',
    set: (o, v) => {
      const pid = atoi(v as string);
      if (pid <= 0) throw new UsageError(`invalid argument for --tree: ${v}`);
      o.tree = pid;
    },
  },
  {
    long: 'leave-stopped',
    short: 's',
    arg: 'none',
    help: 'leave tasks stopped after dump',
    set: (o) => {
      o.finalState = 'stopped';
    },
  },
  {
    long: 'leave-running',
    short: 'R',
    arg: 'none',
    help: 'leave tasks running after dump',
    set: (o) => {
      o.finalState = 'running';
    },
  },
  bool('restore-detached', 'restoreDetached', 'detach from the restored tree', 'd'),
  bool(
    'restore-sibling',
    'restoreSibling',
    "restore the root as the caller's child (criu-ts's sibling)",
    'S',
  ),
  bool('daemon', 'restoreDetached', 'same as --restore-detached'),
  str('images-dir', 'imagesDir', 'directory of the image files', 'D'),
  str('work-dir', 'workDir', 'directory for the log, stats and pidfile (default: the images dir)', 'W'),
  str('log-file', 'logFile', 'log file (relative to the work dir); - for stderr', 'o'),
  refuse('join-ns', 'required', NAMESPACES, 'J'),
  refuse('root', 'required', NAMESPACES, 'r'),
  {
    long: 'help',
    short: 'h',
    arg: 'none',
    help: 'this text',
    set: (o) => {
      o.help = true;
    },
  },
  bool('tcp-established', 'tcpEstablished', 'dump and restore established TCP connections'),
  refuse('close', 'required', "it belongs to CRIU's exec command, which criu-ts does not have"),
  refuse('log-pid', 'none', 'criu-ts is one process and writes one log'),
  {
    long: 'version',
    short: 'V',
    arg: 'none',
    help: 'print the version',
    set: (o) => {
      o.version = true;
    },
  },
  refuse('evasive-devices', 'none', 'device files are not substituted by criu-ts'),
  str('pidfile', 'pidfile', "restore: write the root task's pid to this file"),
  refuse('veth-pair', 'required', NAMESPACES),
  {
    long: 'action-script',
    arg: 'required',
    help: 'run this program at each stage (CRTOOLS_SCRIPT_ACTION); repeatable',
    set: (o, v) => {
      o.actionScripts.push(v as string);
    },
  },
  bool('link-remap', 'linkRemap', 'link files whose name is gone back under a new one (link_remap.N)'),
  bool('shell-job', 'shellJob', 'the tree was started from a shell (session, terminal)', 'j'),
  bool('file-locks', 'fileLocks', 'dump and restore file locks', 'l'),
  bool('page-server', 'pageServer', 'dump: send the memory to the page server at --address/--port'),
  str(
    'address',
    'address',
    'service: the socket to listen on (default ./criu_service.socket); page-server: the address to bind; dump: the page server',
  ),
  {
    long: 'port',
    arg: 'required',
    help: 'page-server: the TCP port to listen on (0 or none: a free one, logged as "Using P port"); dump: to connect to',
    set: (o, v) => {
      const port = Number(v);
      if (!/^\d+$/.test(v as string) || port > 65535) throw new UsageError(`invalid port: ${v}`);
      o.port = port;
    },
  },
  str('prev-images-dir', 'prevImagesDir', 'path to images from previous dump (relative to -D)'),
  refuse('ms', 'none', 'it is deprecated; see "Check options" of criu --help'),
  bool('track-mem', 'trackMem', 'turn on memory changes tracker in kernel'),
  bool(
    'auto-dedup',
    'autoDedup',
    'punch the pages a dump holds out of its parent images; restore punches what it read',
  ),
  refuse('libdir', 'required', PLUGINS, 'L'),
  {
    long: 'cpu-cap',
    arg: 'optional',
    help: 'CPU checks (cpuinfo.img written on dump, checked on restore): fpu,cpu,ins,all,none, ^CAP off; no value: all',
    set: (o, v) => {
      try {
        o.cpuCap = applyCpuCap(o.cpuCap, v);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    },
  },
  bool('force-irmap', 'forceIrmap', 'find paths of watched inodes by scanning where their handle gives none'),
  refuse('ext-mount-map', 'required', NAMESPACES, 'M'),
  refuse('exec-cmd', 'none', 'criu-ts does not exec a command after restore yet'),
  {
    long: 'manage-cgroups',
    arg: 'optional',
    help: 'cgroups: none, props, soft (default), full, strict, ignore',
    set: (o, v) => {
      const mode = CGROUP_MODES.find((m) => m === (v ?? 'soft'));
      if (!mode) throw new UsageError(`unknown cgroups mode '${v}' selected`);
      o.manageCgroups = mode;
    },
  },
  {
    long: 'cgroup-root',
    arg: 'required',
    help: '[controller:]/newroot: where the dumped cgroups are (dump) or go (restore)',
    set: (o, v) => {
      const s = v as string;
      const colon = s.indexOf(':');
      o.cgroupRoots.push(
        colon < 0 ? { path: s } : { controller: s.slice(0, colon), path: s.slice(colon + 1) },
      );
    },
  },
  refuse('inherit-fd', 'required', 'inherited fds at restore are not in criu-ts yet'),
  {
    long: 'feature',
    arg: 'required',
    help: 'check: one feature (list: the names)',
    set: (o, v) => void o.features.push(v as string),
  },
  refuse('skip-mnt', 'required', NAMESPACES),
  refuse('enable-fs', 'required', NAMESPACES),
  refuse('enable-external-sharing', 'none', NAMESPACES),
  refuse('enable-external-masters', 'none', NAMESPACES),
  str('freeze-cgroup', 'freezeCgroup', 'freeze the tree with this cgroup before seizing it'),
  {
    long: 'ghost-limit',
    arg: 'required',
    help: 'the most disk space an unlinked file kept in the images may take (K, M, G; default 1M)',
    set: (o, v) => {
      o.ghostLimit = BigInt(parseSize(v as string));
    },
  },
  {
    long: 'irmap-scan-path',
    arg: 'required',
    help: 'with --force-irmap: a directory to look through first',
    set: (o, v) => {
      o.irmapScanPaths.push(v as string);
    },
  },
  refuse('lsm-profile', 'required', 'LSM profiles are not restored by criu-ts yet'),
  {
    long: 'timeout',
    arg: 'required',
    help: 'seconds the tree may take to freeze (default 10)',
    set: (o, v) => {
      const s = atoi(v as string);
      if (s <= 0) throw new UsageError(`invalid argument for --timeout: ${v}`);
      o.timeout = s;
    },
  },
  refuse('external', 'required', 'external resources (--external) are not in criu-ts yet'),
  refuse('empty-ns', 'required', NAMESPACES),
  refuse('lazy-pages', 'none', PAGE_SERVER),
  bool('extra', 'checkExtra', 'check: also the extra features'),
  bool('experimental', 'checkExperimental', 'check: also the experimental features'),
  {
    long: 'all',
    arg: 'none',
    help: 'check: every feature',
    set: (o) => {
      o.checkExtra = true;
      o.checkExperimental = true;
    },
  },
  str('cgroup-props', 'cgroupProps', "dump: the cgroup properties to keep per controller (CRIU's format)"),
  str('cgroup-props-file', 'cgroupPropsFile', 'dump: a file with cgroup properties to keep'),
  {
    long: 'cgroup-dump-controller',
    arg: 'required',
    help: 'dump: only this cgroup hierarchy (repeat for more)',
    set: (o, v) => {
      o.cgroupDumpControllers.push(v as string);
    },
  },
  bool('skip-in-flight', 'skipInFlight', 'leave behind connections not accepted yet'),
  refuse('deprecated', 'none', 'criu-ts has no deprecated features to turn on'),
  bool('display-stats', 'displayStats', 'print statistics at the end'),
  refuse('weak-sysctls', 'none', NAMESPACES),
  {
    long: 'status-fd',
    arg: 'required',
    help: 'restore: write a zero byte to this fd once the tree runs',
    set: (o, v) => {
      const fd = Number.parseInt(v as string, 10);
      if (!Number.isInteger(fd) || fd < 0)
        throw new UsageError(`unable to parse a value of --status-fd: ${v}`);
      o.statusFd = fd;
    },
  },
  bool('tcp-close', 'tcpClose', 'restore connected TCP sockets closed (dumped without their state)'),
  {
    long: 'verbosity',
    short: 'v',
    arg: 'optional',
    help: 'log level: -v0..-v4, -vvv',
    set: (o, v) => {
      if (v === undefined) o.verbosity++;
      else if (v.startsWith('v')) o.verbosity += v.length + 1;
      else o.verbosity = atoi(v);
    },
  },
  {
    long: 'ps-socket',
    arg: 'required',
    help: 'dump --page-server: the page server is on this connected socket fd',
    set: (o, v) => {
      const fd = Number.parseInt(v as string, 10);
      if (!Number.isInteger(fd) || fd < 0) throw new UsageError(`invalid value for --ps-socket: ${v}`);
      o.psSocket = fd;
    },
  },
  refuse('stream', 'none', 'image streaming is not in criu-ts yet'),
  { long: 'config', arg: 'required', help: 'read options from this file (instead of the default ones)' },
  {
    long: 'no-default-config',
    arg: 'none',
    help: "don't read /etc/criu/default.conf and ~/.criu/default.conf",
  },
  refuse('tls-cacert', 'required', TLS),
  refuse('tls-cacrl', 'required', TLS),
  refuse('tls-cert', 'required', TLS),
  refuse('tls-key', 'required', TLS),
  refuse('tls', 'none', TLS),
  refuse('tls-no-cn-verify', 'none', TLS),
  str('cgroup-yard', 'cgroupYard', 'a directory where the cgroup hierarchies are mounted'),
  {
    long: 'pre-dump-mode',
    arg: 'required',
    help: 'read (default: process_vm_readv after the thaw); splice is not in criu-ts',
    set: (o, v) => {
      if (v !== 'splice' && v !== 'read')
        throw new UsageError(`unable to parse value of --pre-dump-mode: ${v}`);
      o.preDumpMode = v;
    },
  },
  {
    long: 'file-validation',
    arg: 'required',
    help: 'filesize: files are checked by their size at restore (buildid is not in criu-ts)',
    set: (_o, v) => {
      if (v === 'buildid')
        throw new UsageError('--file-validation buildid is not supported by criu-ts yet; filesize is');
      if (v !== 'filesize') throw new UsageError(`unknown file validation method '${v}' selected`);
    },
  },
  refuse('skip-file-rwx-check', 'none', 'restore always checks the permissions of the files it opens'),
  refuse('lsm-mount-context', 'required', NAMESPACES),
  {
    long: 'network-lock',
    arg: 'required',
    help: 'nftables (default), iptables, or skip (none)',
    set: (o, v) => {
      if (v === 'nftables' || v === 'iptables' || v === 'skip') o.networkLock = v;
      else if (v === 'none') o.networkLock = 'skip';
      else throw new UsageError(`invalid value for --network-lock: ${v}`);
    },
  },
  refuse('mntns-compat-mode', 'none', NAMESPACES),
  refuse('unprivileged', 'none', 'criu-ts runs as root'),
  bool(
    'ghost-fiemap',
    'ghostFiemap',
    'find the data of unlinked files with FIEMAP (default; else SEEK_DATA)',
  ),
  refuse('allow-uprobes', 'none', 'uprobes mappings are not dumped by criu-ts'),
  {
    long: 'ext-unix-sk',
    short: 'x',
    arg: 'optional',
    help: 'allow datagram unix sockets connected to a named socket outside the tree',
    set: (o, v) => {
      if (v !== undefined)
        throw new UsageError(`--ext-unix-sk=${v}: naming socket inodes is not supported by criu-ts yet`);
      o.extUnixSk = true;
    },
  },
  // criu-ts's own.
  {
    long: 'log-format',
    arg: 'required',
    help: "criu-ts: text (CRIU's layout) or json (pino)",
    set: (o, v) => {
      if (v !== 'text' && v !== 'json') throw new UsageError(`--log-format ${v}: text or json`);
      o.logFormat = v;
    },
  },
];

/** CRIU's booleans come with a `--no-` form; so do criu-ts's refused ones (asking for the default). */
const SPECS: OptionSpec[] = OPTIONS.flatMap((s) => {
  const negatable = s.arg === 'none' && (s.set !== undefined || s.refused !== undefined) && isBoolean(s.long);
  if (!negatable) return [s];
  return [s, { long: `no-${s.long}`, arg: 'none' as const, set: (o, v) => s.set?.(o, v, false) }];
});

function isBoolean(long: string): boolean {
  return ![
    'leave-stopped',
    'leave-running',
    'help',
    'version',
    'all',
    'ms',
    'close',
    'exec-cmd',
    'no-default-config',
  ].includes(long);
}

/**
 * The options in force: the configuration files in CRIU's order, then the command line. The first
 * operand of the command line is the command.
 */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CriuOptions {
  const o = defaultOptions();
  for (const src of configSources(argv, env)) {
    const { options, operands } = parseOrSay(src.argv, src.file);
    if (operands.length) throw new UsageError(`${src.file}: '${operands[0]}' is not an option`);
    apply(o, options, src.file);
  }
  const { options, operands } = parseOrSay(argv);
  apply(o, options);
  o.command = operands[0];
  o.operands = operands.slice(1);
  return o;
}

function parseOrSay(argv: readonly string[], file?: string) {
  try {
    return getopt(argv, SPECS);
  } catch (e) {
    if (e instanceof UsageError && file) throw new UsageError(`${file}: ${e.message}`);
    throw e;
  }
}

function apply(
  o: CriuOptions,
  options: ReturnType<typeof getopt<OptionSpec>>['options'],
  file?: string,
): void {
  for (const { spec, value, as } of options) {
    if (spec.refused) {
      const where = file ? ` (in ${file})` : '';
      throw new UsageError(`${as}${where} is not supported: ${spec.refused}`);
    }
    spec.set?.(o, value, true);
  }
}

/** C's atoi: the leading digits, 0 when there are none. */
function atoi(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  return m ? Number.parseInt(m[1] as string, 10) : 0;
}

/** CRIU's sizes: a number with an optional K, M or G suffix. */
export function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim());
  if (!m) throw new UsageError(`invalid size: ${s}`);
  const shift = { '': 0, K: 10, M: 20, G: 30 }[(m[2] as string).toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * 2 ** shift;
}

/** The options, for --help. */
export function optionHelp(): string {
  return OPTIONS.filter((s) => !s.refused && s.help)
    .map((s) => {
      const names = `${s.short ? `-${s.short}, ` : '    '}--${s.long}${s.arg === 'required' ? ' ARG' : s.arg === 'optional' ? '[=ARG]' : ''}`;
      return `  ${names.padEnd(34)} ${s.help}`;
    })
    .join('\n');
}
