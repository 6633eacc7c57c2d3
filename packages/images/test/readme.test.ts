// The README's example, type-checked against the built .d.ts and run with tsx as a user would run it:
// a README whose example rots fails here.
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

  it('example runs and prints what the README says', async () => {
    const r = await runExample(pkgDir, blocks[0]!);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual([
      'task 42 threads [ 42 ]',
      'mm start code 400000',
      'page byte 171',
      'inventory.img INVENTORY',
      'mm-42.img MM',
      'pagemap-42.img PAGEMAP',
      'pages-1.img RAW',
      'pstree.img PSTREE',
      '{"magic": "PSTREE", "entries": [{"pid": 42, "ppid": 0, "pgid": 42, "sid": 42, "threads": [42]}]}',
    ]);
    // The README quotes the output: keep the quote true.
    const readme = readFileSync(path.join(pkgDir, 'README.md'), 'utf8').replace(/\s+/g, ' ');
    expect(readme).toContain(lines.at(-1));
  });

  it('ships the root LICENSE', () => {
    const root = path.join(pkgDir, '..', '..');
    expect(readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(path.join(root, 'LICENSE'), 'utf8'),
    );
  });
});
