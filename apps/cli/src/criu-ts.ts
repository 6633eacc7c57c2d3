import { Command, CommanderError } from 'commander';

/**
 * criu-ts: the checkpoint/restore command, with criu's commands and options.
 * Dump and restore arrive with their issues; until then this knows its version and check.
 */
export async function main(argv: string[]): Promise<number> {
  const cmd = new Command('criu-ts')
    .description('checkpoint/restore in userspace, in TypeScript')
    .version('0.1.0', '-V, --version')
    .exitOverride();
  try {
    await cmd.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    process.stderr.write(`criu-ts: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
