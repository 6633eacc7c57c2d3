import { mkdtempSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { critToImage, ImageError, ImageReader, imageToCrit, pyDumps, pyParse } from '@criu-ts/images';
import { Command, CommanderError } from 'commander';
import { explore } from './crit/explore.js';
import { readText, regularInput, withInputFile, writeOut } from './crit/io.js';

/**
 * crit-ts: CRIU's image tool, same commands, options and JSON as crit.
 * Errors are one line on stderr and exit code 1; -v adds the stack trace.
 */
function program(): Command {
  const cmd = new Command('crit-ts')
    .description('CRiu Image Tool (criu-ts)')
    .option('-v, --verbose', 'print stack traces of errors')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  cmd
    .command('decode')
    .description('convert criu image from binary type to json')
    .option('--pretty', 'multiline with indents and some numerical fields in field-specific format')
    .option('-i, --in <file>', 'criu image in binary format to be decoded (stdin by default)')
    .option('-o, --out <file>', 'where to put criu image in json format (stdout by default)')
    .action((o: { pretty?: boolean; in?: string; out?: string }) => {
      const img = withInputFile(o.in, (path) => imageToCrit(path, { pretty: o.pretty === true }));
      const text = pyDumps(img, o.pretty ? 4 : undefined);
      writeOut(o.out, o.out === undefined ? `${text}\n` : text);
    });

  cmd
    .command('encode')
    .description('convert criu image from json type to binary')
    .option('-i, --in <file>', 'criu image in json format to be encoded (stdin by default)')
    .option('-o, --out <file>', 'where to put criu image in binary format (stdout by default)')
    .action((o: { in?: string; out?: string }) => {
      const what = o.in ?? '<stdin>';
      let json: ReturnType<typeof pyParse>;
      try {
        json = pyParse(readText(o.in));
      } catch (err) {
        throw new ImageError(what, 0, `cannot read JSON: ${(err as Error).message}`);
      }
      if (o.out !== undefined) critToImage(json, o.out);
      else withStdoutFile((path) => critToImage(json, path));
    });

  cmd
    .command('info')
    .description('show info about image')
    .argument('<in>')
    .action((input: string) => {
      const r = ImageReader.open(regularInput(input));
      let count = 0;
      try {
        for (const _ of r.entries()) count++;
      } finally {
        r.close();
      }
      if (r.kind.layout === 'pagemap') count--;
      process.stdout.write(`${pyDumps({ magic: r.magic, count }, 4)}\n`);
    });

  cmd
    .command('x')
    .description('explore image dir')
    .argument('<dir>')
    .argument('<what>', 'ps, fds, mems or rss')
    .action((dir: string, what: string) => explore(dir, what, (l) => process.stdout.write(`${l}\n`)));

  cmd
    .command('show')
    .description('convert criu image from binary to human-readable json')
    .argument('<in>')
    .option('--nopl', 'do not show entry payload (if exists)')
    .action((input: string, o: { nopl?: boolean }) => {
      const img = imageToCrit(regularInput(input), { pretty: true, noPayload: o.nopl === true });
      process.stdout.write(`${pyDumps(img, 4)}\n`);
    });
  return cmd;
}

/** Binary output to stdout: written to a temporary file first, then copied out whole. */
function withStdoutFile(write: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'crit-ts-'));
  try {
    const path = join(dir, 'out.img');
    write(path);
    writeSync(1, readFileSync(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(argv: string[]): Promise<number> {
  const cmd = program();
  const verbose = argv.includes('-v') || argv.includes('--verbose');
  try {
    await cmd.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`crit-ts: ${msg}\n`);
    if (verbose && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
