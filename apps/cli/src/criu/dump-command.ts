import { resolve } from 'node:path';
import { DumpError, type DumpResult, dump } from '@criu-ts/core';
import { ImageDir } from '@criu-ts/images';
import type { Command } from 'commander';
import { makeLogger } from './log.js';
import { networkLockOf } from './network-lock.js';

interface DumpFlags {
  tree: string;
  imagesDir?: string;
  workDir?: string;
  leaveRunning?: boolean;
  leaveStopped?: boolean;
  shellJob?: boolean;
  verbosity: string;
  logFile?: string;
  displayStats?: boolean;
  freezeCgroup?: string;
  tcpEstablished?: boolean;
  networkLock: string;
  extUnixSk?: boolean | string;
  skipInFlight?: boolean;
  fileLocks?: boolean;
}

/** `criu-ts dump -t PID -D DIR`, with criu's options and meanings. */
export function addDumpCommand(program: Command): void {
  program
    .command('dump')
    .description('checkpoint a process tree identified by pid')
    .requiredOption('-t, --tree <pid>', 'checkpoint a process tree identified by pid')
    .option('-D, --images-dir <dir>', 'directory for image files', '.')
    .option('-W, --work-dir <dir>', 'directory for logs and stats (default: the images dir)')
    .option('-R, --leave-running', 'leave tasks running after the dump')
    .option('-s, --leave-stopped', 'leave tasks stopped after the dump')
    .option('--shell-job', 'allow dumping a process started from a shell (sessions, terminal)')
    .option('--verbosity <n>', 'log level: 0 none, 1 errors, 2 warnings, 3 info, 4 debug (-v0..-v4)', '2')
    .option('-o, --log-file <file>', 'log file name (relative to the work dir)')
    .option('--display-stats', 'print dump statistics at the end')
    .option('--freeze-cgroup <path>', 'use this cgroup v2 freezer to stop the tree before seizing it')
    .option('--tcp-established', 'dump established TCP connections (TCP repair)')
    .option('-l, --file-locks', 'dump file locks (without it a task holding one is refused, as in criu)')
    .option('--skip-in-flight', 'leave behind connections a listener has not accepted yet')
    .option(
      '--ext-unix-sk [inodes]',
      'allow datagram unix sockets connected to a named socket outside the tree',
    )
    .option(
      '--network-lock <method>',
      'hold dumped connections with nftables or iptables rules until restore, or skip',
      'nftables',
    )
    .action(async (f: DumpFlags) => {
      const pid = Number(f.tree);
      if (!Number.isInteger(pid) || pid <= 0) throw new DumpError(`bad pid ${JSON.stringify(f.tree)} for -t`);
      const networkLock = networkLockOf(f.networkLock);
      const imagesDir = resolve(f.imagesDir ?? '.');
      ImageDir.create(imagesDir); // 0700, before the log file can create it with other modes
      const log = makeLogger({
        verbosity: Number(f.verbosity),
        workDir: resolve(f.workDir ?? imagesDir),
        ...(f.logFile ? { logFile: f.logFile } : {}),
      });
      let interrupted: string | undefined;
      const onSignal = (sig: string) => {
        interrupted = sig;
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        log.info({ pid, imagesDir }, 'dump starts');
        const result = await dump({
          pid,
          imagesDir,
          leaveRunning: f.leaveRunning === true,
          leaveStopped: f.leaveStopped === true,
          shellJob: f.shellJob === true,
          ...(f.freezeCgroup ? { freezeCgroup: f.freezeCgroup } : {}),
          tcpEstablished: f.tcpEstablished === true,
          networkLock,
          extUnixSk: f.extUnixSk !== undefined,
          skipInFlight: f.skipInFlight === true,
          fileLocks: f.fileLocks === true,
          checkpoint: () => {
            if (interrupted) throw new DumpError(`interrupted by ${interrupted}; the tree was left running`);
          },
          log: (msg) => log.info(msg),
        });
        log.info({ tasks: result.tasks, pages: result.pagesWritten }, 'dump finished');
        if (f.displayStats) printStats(result);
      } catch (err) {
        // The -o log says why, as CRIU's does; stderr gets the CLI's one line either way.
        if (f.logFile) log.error(err instanceof Error ? err.message : String(err));
        throw err;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        log.flush();
      }
    });
}

function printStats(r: DumpResult): void {
  const s = r.stats;
  const n = (v: bigint) => `${v} (0x${v.toString(16)})`;
  process.stdout.write(
    [
      'Displaying dump stats:',
      `Freezing time: ${s.freezing_time} us`,
      `Frozen time: ${s.frozen_time} us`,
      `Memory dump time: ${s.memdump_time} us`,
      `Memory write time: ${s.memwrite_time} us`,
      `Memory pages scanned: ${n(s.pages_scanned)}`,
      `Memory pages skipped from parent: ${n(s.pages_skipped_parent)}`,
      `Memory pages written: ${n(s.pages_written)}`,
      `Lazy memory pages: ${n(s.pages_lazy)}`,
      '',
    ].join('\n'),
  );
}
