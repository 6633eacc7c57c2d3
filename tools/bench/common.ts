// Shared start of the benchmarks that run processes: where the repository is, its packages' built code
// (checked before it is imported, so a missing build is one line and not a stack trace), and the small
// helpers the dump, restore, compel and vs-criu benchmarks all need.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository's root. */
export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The criu-ts command as pnpm installs it in the repository. */
export const CLI = join(repo, 'node_modules/.bin/criu-ts');
export const PYTHON = '/usr/bin/python3';

/** packages/<pkg>/dist/<file>, for a module named `pkg` (its index.js) or `pkg/file`. */
function builtPath(module: string): string {
  const [pkg, ...file] = module.split('/');
  return join(repo, 'packages', pkg as string, 'dist', file.length > 0 ? file.join('/') : 'index.js');
}

/**
 * Ends the process (exit 1) with one line naming the first of `modules` ('core', 'core/restore/index.js')
 * that is not built; `prefix` starts that line.
 */
export function requireBuilt(modules: string[], prefix = ''): void {
  for (const m of modules) {
    if (!existsSync(builtPath(m))) {
      console.error(
        `${prefix}${builtPath(m).slice(repo.length + 1)} is missing: run \`pnpm run build\` first`,
      );
      process.exit(1);
    }
  }
}

/** The built module `module` ('core', 'core/restore/index.js'): check it with requireBuilt first. */
export function importBuilt(module: string): Promise<any> {
  return import(pathToFileURL(builtPath(module)).href);
}

/** The median of `values` (the mean of the middle two for an even count); undefined when there are none. */
export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : ((s[h - 1] as number) + (s[h] as number)) / 2;
}

/** A table of figures for printReport: each row [what, value, unit, note]. */
export function table(): {
  rows: string[][];
  row: (what: string, value: unknown, unit: string, note?: string) => void;
} {
  const rows: string[][] = [];
  return { rows, row: (what, value, unit, note = '') => rows.push([what, String(value), unit, note]) };
}

/**
 * Starts `argv` with only fds 0-2 (a python3 trampoline closes the rest), in its own session, through
 * `startTraceable` (compel's); `track` is given the pid at once. Resolves to the pid once the command runs.
 */
export async function startClean(
  argv: string[],
  startTraceable: (argv: string[], opts: { setsid: boolean }) => number,
  track: (pid: number) => void,
): Promise<number> {
  const pid = startTraceable(
    [PYTHON, '-c', 'import os, sys; os.closerange(3, 65536); os.execv(sys.argv[1], sys.argv[1:])', ...argv],
    { setsid: true },
  );
  track(pid);
  const want = `${argv.join('\0')}\0`;
  const deadline = Date.now() + 10_000;
  while (readFileSync(`/proc/${pid}/cmdline`, 'utf8') !== want) {
    if (Date.now() > deadline) throw new Error(`${argv[0]} did not start`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return pid;
}

/** Runs the criu-ts CLI with `args` in the repository; rejects with its stderr when it fails. */
export function runCli(args: string[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    execFile(CLI, args, { cwd: repo }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`criu-ts ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}
