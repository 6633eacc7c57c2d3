// The README's example, type-checked against the built .d.ts and run with tsx as a user would run it.
import { readFileSync } from 'node:fs';
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

  it('example sends a task its pages and reads them back', async () => {
    const r = await runExample(pkgDir, blocks[0]!, { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('2 pages in pages-65537.img (criu-4.2)\nbyte at 0x401000: 42\n');
  });

  it('ships the root LICENSE', () => {
    const root = path.join(pkgDir, '..', '..');
    expect(readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(path.join(root, 'LICENSE'), 'utf8'),
    );
  });
});
