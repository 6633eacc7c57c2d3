// The README's example, type-checked against the built .d.ts and run with tsx as a user would run it:
// a README whose example rots fails here.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readmeBlocks, runExample, typecheckExample } from '../../../tools/readme/examples.mjs';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const blocks = readmeBlocks(path.join(pkgDir, 'README.md'), 'ts', 'Example');

describe('README.md', () => {
  it('has one TypeScript example', () => {
    expect(blocks).toHaveLength(1);
  });

  it('example type-checks against the published types', () => {
    expect(typecheckExample(pkgDir, blocks[0]!)).toEqual([]);
  });

  it('example seizes, infects, runs syscalls in the task, cures and releases it', async () => {
    const r = await runExample(pkgDir, blocks[0]!);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = /^(\d+) running 1 threads\n\1n\nfalse 2 9 \[ \d+n, \d+n, -9n \]\n$/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(existsSync(`/proc/${m![1]}`)).toBe(false); // the example killed and reaped its sleep
  });

  it('ships the root LICENSE', () => {
    const root = path.join(pkgDir, '..', '..');
    expect(readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(path.join(root, 'LICENSE'), 'utf8'),
    );
  });
});
