import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * crit reads stdin when -i is not given. Image readers work on files, so standard input
 * is copied to a private temporary file first; `use` gets its path.
 */
export function withInputFile<T>(input: string | undefined, use: (path: string) => T): T {
  if (input !== undefined) return use(input);
  const dir = mkdtempSync(join(tmpdir(), 'crit-ts-'));
  try {
    const path = join(dir, 'stdin.img');
    writeFileSync(path, readFileSync(0), { mode: 0o600 });
    return use(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function readText(input: string | undefined): string {
  return readFileSync(input ?? 0, 'utf8');
}

export function writeOut(output: string | undefined, text: string): void {
  if (output !== undefined) writeFileSync(output, text);
  else process.stdout.write(text);
}
