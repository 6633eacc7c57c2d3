import { checkCommand } from './criu/check-command.js';
import { cpuinfoCommand } from './criu/cpuinfo-command.js';
import { dedupCommand } from './criu/dedup-command.js';
import { dumpCommand } from './criu/dump-command.js';
import { UsageError } from './criu/getopt.js';
import { type CriuOptions, optionHelp, parseCommandLine } from './criu/options.js';
import { pageServerCommand } from './criu/page-server-command.js';
import { preDumpCommand } from './criu/pre-dump-command.js';
import { restoreCommand } from './criu/restore-command.js';
import { writeText } from './criu/write.js';

// The package's version, put in by the bundler (bundle.mjs) from package.json.
declare const CRIU_TS_VERSION: string | undefined;
const VERSION = typeof CRIU_TS_VERSION === 'string' ? CRIU_TS_VERSION : 'unknown';

/** CRIU's commands that criu-ts does not have yet, and why, so that each is refused by name. */
const NOT_YET: Record<string, string> = {
  'lazy-pages': 'lazy pages are not in criu-ts yet',
  exec: 'CRIU removed exec; criu-ts does not have it',
  show: 'CRIU removed show; use crit-ts show',
};

const USAGE = `Usage:
  criu-ts dump|pre-dump -t PID [<options>]
  criu-ts restore [<options>]
  criu-ts check [--feature FEAT]
  criu-ts cpuinfo dump|check [-D DIR] [--cpu-cap CAP]
  criu-ts dedup -D DIR
  criu-ts service [--address SOCK] [-d] [--pidfile FILE]
  criu-ts page-server -D DIR [--address ADDR] [--port PORT] [-d] [--status-fd FD]
  criu-ts swrk <fd>

Commands:
  dump      checkpoint a process tree identified by pid
  pre-dump  pre-dump task(s) minimizing their frozen time
  restore   restore a process tree
  check     checks whether the kernel and criu-ts support the features they need
  cpuinfo dump   writes this CPU's description into cpuinfo.img
  cpuinfo check  checks that this CPU can run what cpuinfo.img's CPU ran
  dedup     punch the pages DIR holds out of its parent images (incremental dumps)
  page-server  receive one dump's memory over TCP (criu dump --page-server) into DIR
  service   serve CRIU's RPC on a unix socket (default ./criu_service.socket)
  swrk      serve CRIU's RPC on the socket fd a client passes (runc, pycriu, go-criu)

Options (CRIU's; also read from /etc/criu/default.conf, ~/.criu/default.conf,
$CRIU_CONFIG_FILE and --config FILE, unless --no-default-config):
`;

/**
 * The RPC commands (`swrk`, `service`), from @criu-ts/service. They live in a bundle of their own
 * (criu-ts-service.ts, bin/load-bundle.cjs picks it for these commands), so that no other command
 * loads them.
 */
export interface ServiceCommands {
  swrk(o: CriuOptions, version: string): Promise<number>;
  service(o: CriuOptions, version: string): Promise<number>;
}

/** criu-ts: the checkpoint/restore command, with criu's commands and options. */
export async function main(argv: string[], services?: ServiceCommands): Promise<number> {
  const out = (s: string) => writeText(1, s);
  const err = (s: string) => writeText(2, s);
  try {
    const o = parseCommandLine(argv);
    if (o.version) {
      out(`Version: ${VERSION}\n`);
      return 0;
    }
    if (o.help || o.command === undefined) {
      (o.help ? out : err)(`${USAGE}${optionHelp()}\n`);
      return o.help ? 0 : 1;
    }
    switch (o.command) {
      case 'dump':
        return await dumpCommand(o, VERSION);
      case 'restore':
        return await restoreCommand(o, VERSION);
      case 'pre-dump':
        return await preDumpCommand(o, VERSION);
      case 'check':
        return checkCommand(o, out, err);
      case 'cpuinfo':
        return cpuinfoCommand(o, err);
      case 'dedup':
        return dedupCommand(o);
      case 'page-server':
        return await pageServerCommand(o);
      case 'swrk':
      case 'service':
        if (!services)
          throw new UsageError(
            `${o.command}: give the command before its options' values (criu-ts ${o.command} ...)`,
          );
        return await services[o.command](o, VERSION);
    }
    const why = NOT_YET[o.command];
    throw new UsageError(why ? `${o.command} is not supported: ${why}` : `unknown command: ${o.command}`);
  } catch (e) {
    err(`criu-ts: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.CRIU_TS_DEBUG && e instanceof Error) err(`${e.stack}\n`);
    return 1;
  }
}
