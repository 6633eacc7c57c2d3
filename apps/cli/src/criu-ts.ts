import { Command, CommanderError } from 'commander';
import { addDumpCommand } from './criu/dump-command.js';
import { normalizeVerbosity } from './criu/log.js';
import { addRestoreCommand } from './criu/restore-command.js';

/** criu-ts: the checkpoint/restore command, with criu's commands and options. */
export async function main(argv: string[]): Promise<number> {
  const cmd = new Command('criu-ts')
    .description('checkpoint/restore in userspace, in TypeScript')
    .version('0.1.0', '-V, --version')
    .exitOverride();
  // An action that has a status of its own to exit with (restore without -d: the root task's) sets it.
  let status = 0;
  addDumpCommand(cmd);
  addRestoreCommand(cmd, (code) => {
    status = code;
  });
  try {
    await cmd.parseAsync(normalizeVerbosity(argv), { from: 'user' });
    return status;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    process.stderr.write(`criu-ts: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.CRIU_TS_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
