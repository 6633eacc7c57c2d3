import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageError } from '@criu-ts/images';

/**
 * crit reads stdin when -i is not given. Image readers work on regular files, so standard
 * input (or a pipe given with -i) is copied to a private temporary file first; `use` gets
 * its path.
 */
export function withInputFile<T>(input: string | undefined, use: (path: string) => T): T {
  // Regular files are read in place; stdin, pipes and <(process substitution) are copied.
  if (input !== undefined && !isStream(input)) return use(input);
  const dir = mkdtempSync(join(tmpdir(), 'crit-ts-'));
  try {
    const path = join(dir, 'stdin.img');
    writeFileSync(path, readFileSync(input ?? 0), { mode: 0o600 });
    try {
      return use(path);
    } catch (err) {
      // Name what the user gave, not our temporary copy.
      if (err instanceof ImageError && err.file === path)
        throw new ImageError(input ?? '<stdin>', err.offset, err.reason);
      throw err;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function isStream(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFIFO() || st.isCharacterDevice() || st.isSocket();
  } catch {
    return false; // let the image reader report the missing file
  }
}

export function readText(input: string | undefined): string {
  return readFileSync(input ?? 0, 'utf8');
}

export function writeOut(output: string | undefined, text: string): void {
  if (output !== undefined) writeFileSync(output, text);
  else process.stdout.write(text);
}
