// Builds the C test workloads: every src/<name>.c -> bin/<name>.
//
//   pnpm workloads      (or: pnpm exec tsx tools/workloads/build.ts)
//
// A program is (re)compiled only when its binary is missing or older than
// its .c file or any src/*.h header.  Each binary is compiled to a
// temporary name and rename()d into place, so several test processes may
// build concurrently and nobody ever executes a half-written file.
// Prints one line per program built; exits non-zero with gcc's message if
// a compile fails.
import { execFile } from 'node:child_process';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const srcDir = fileURLToPath(new URL('./src/', import.meta.url));
export const binDir = fileURLToPath(new URL('./bin/', import.meta.url));

export const CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror', '-pthread'];

async function mtimeMs(path: string): Promise<number | null> {
  try {
    return (await stat(path)).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function gcc(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('gcc', args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const msg = `${stdout}${stderr}`.trim() || err.message;
        reject(new Error(`gcc ${args.join(' ')} failed:\n${msg}`));
      } else {
        resolve();
      }
    });
  });
}

/** Compile every out-of-date workload; `log` gets one `built <name>` line per program compiled. */
export async function build(
  opts: { log?: (line: string) => void } = {},
): Promise<{ binDir: string; built: string[] }> {
  const log = opts.log ?? (() => {});
  const files = (await readdir(srcDir)).sort();
  const headers = files.filter((f) => f.endsWith('.h'));
  const sources = files.filter((f) => f.endsWith('.c'));
  let newestHeader = 0;
  for (const h of headers) newestHeader = Math.max(newestHeader, (await mtimeMs(join(srcDir, h))) ?? 0);

  await mkdir(binDir, { recursive: true });
  const built: string[] = [];
  const results = await Promise.allSettled(
    sources.map(async (file) => {
      const name = file.slice(0, -2);
      const src = join(srcDir, file);
      const out = join(binDir, name);
      const binTime = await mtimeMs(out);
      const srcTime = Math.max((await mtimeMs(src)) ?? 0, newestHeader);
      if (binTime !== null && binTime >= srcTime) return;
      const tmp = join(binDir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2)}`);
      try {
        await gcc([...CFLAGS, '-o', tmp, src]);
        await rename(tmp, out);
      } finally {
        await rm(tmp, { force: true });
      }
      built.push(name);
    }),
  );
  built.sort();
  for (const name of built) log(`built ${name}`);
  const failures = results
    .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    .map((r) => (r.reason as Error).message);
  if (failures.length > 0) throw new Error(failures.join('\n\n'));
  return { binDir, built };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  build({ log: (line) => console.log(line) }).catch((err: Error) => {
    console.error(err.message);
    process.exitCode = 1;
  });
}
