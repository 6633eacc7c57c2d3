import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { RestoreError, restore, waitForRoot } from '@criu-ts/core';
import type { RestoreStatsEntry } from '@criu-ts/images';
import type { Command } from 'commander';
import { makeLogger } from './log.js';
import { networkLockOf } from './network-lock.js';

interface RestoreFlags {
  imagesDir?: string;
  workDir?: string;
  restoreDetached?: boolean;
  pidfile?: string;
  shellJob?: boolean;
  restoreSibling?: boolean;
  verbosity: string;
  logFile?: string;
  displayStats?: boolean;
  networkLock?: string;
}

/** The restore API (one place, so the command reads as before). */
async function loadRestore() {
  return { restore, waitForRoot, RestoreError };
}

/** `criu-ts restore -D DIR`, with criu's options and meanings. */
export function addRestoreCommand(program: Command, exitWith: (code: number) => void): void {
  program
    .command('restore')
    .description('restore a process tree from its images')
    .option('-D, --images-dir <dir>', 'directory with the image files', '.')
    .option('-W, --work-dir <dir>', 'directory for the log and the pidfile (default: the images dir)')
    .option(
      '-d, --restore-detached',
      'detach from the restored tree (default: wait for the root task and exit with its status)',
    )
    .option('--pidfile <file>', 'write the root task pid to FILE (relative to the work dir)')
    .option(
      '--tcp-established',
      'restore established TCP connections (accepted: the images say which there are)',
    )
    .option(
      '--network-lock <method>',
      "unlock the connections with nftables, iptables or skip (default: the dump's, from inventory.img)",
    )
    .option('-l, --file-locks', 'restore file locks (accepted: the images say which there are)')
    .option('--shell-job', 'restore a process started from a shell: it joins this session and process group')
    .option(
      '--restore-sibling',
      "restore the root task as criu-ts's sibling: the child of criu-ts's parent, which waits for it (implies -d)",
    )
    .option('--verbosity <n>', 'log level: 0 none, 1 errors, 2 warnings, 3 info, 4 debug (-v0..-v4)', '2')
    .option('-o, --log-file <file>', 'log file name (relative to the work dir)')
    .option('--display-stats', 'print restore statistics at the end')
    .action(async (f: RestoreFlags) => {
      const networkLock = f.networkLock === undefined ? undefined : networkLockOf(f.networkLock);
      const imagesDir = resolve(f.imagesDir ?? '.');
      const workDir = resolve(f.workDir ?? imagesDir);
      const log = makeLogger({
        verbosity: Number(f.verbosity),
        workDir,
        ...(f.logFile ? { logFile: f.logFile } : {}),
      });
      const api = await loadRestore();
      // CRIU refuses to overwrite a pidfile; found out before anything is created.
      let pidfd: number | undefined;
      if (f.pidfile) {
        const path = resolve(workDir, f.pidfile);
        try {
          pidfd = openSync(path, 'wx', 0o600);
        } catch (e) {
          throw new api.RestoreError(
            `cannot create pidfile ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`,
          );
        }
      }
      let root: number;
      try {
        log.info({ imagesDir }, 'restore starts');
        const result = api.restore({
          imagesDir,
          shellJob: f.shellJob === true,
          sibling: f.restoreSibling === true,
          ...(networkLock ? { networkLock } : {}),
          log: {
            debug: (m) => log.debug(m),
            info: (m) => log.info(m),
            warn: (m) => log.warn(m),
          },
        });
        root = result.root;
        log.info({ root, tasks: result.pids.length }, 'restore finished');
        if (pidfd !== undefined) writeSync(pidfd, String(root));
        if (f.displayStats) printStats(result.stats);
      } catch (e) {
        if (pidfd !== undefined) {
          closeSync(pidfd);
          pidfd = undefined;
          rmSync(resolve(workDir, f.pidfile as string), { force: true });
        }
        throw e;
      } finally {
        if (pidfd !== undefined) closeSync(pidfd);
        log.flush();
      }
      // criu-ts's exit code is the root task's. A sibling root is not ours to wait for: criu-ts's
      // parent gets it (CRIU: --restore-sibling only makes sense with -d).
      if (!f.restoreDetached && !f.restoreSibling) exitWith(api.waitForRoot(root));
    });
}

function printStats(s: RestoreStatsEntry): void {
  const n = (v: bigint) => `${v} (0x${v.toString(16)})`;
  const lines = [
    'Displaying restore stats:',
    `Pages compared: ${n(s.pages_compared)}`,
    `Pages skipped COW: ${n(s.pages_skipped_cow)}`,
  ];
  if (s.pages_restored !== undefined) lines.push(`Pages restored: ${n(s.pages_restored)}`);
  lines.push(`Restore time: ${s.restore_time} us`, `Forking time: ${s.forking_time} us`, '');
  process.stdout.write(lines.join('\n'));
}
