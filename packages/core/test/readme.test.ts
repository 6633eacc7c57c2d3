// The README's example, type-checked against the built .d.ts and run with tsx as a user would run it
// (dump, restore, check, end) on a C counter: a README whose example rots fails here.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlocks, runExample, typecheckExample } from '../../../tools/readme/examples.mjs';
import { buildWorkloads, workloadPath } from '../../../tools/workloads/index.js';
import { readLines } from '../../../tools/workloads/report.js';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const blocks = readmeBlocks(path.join(pkgDir, 'README.md'), 'ts', 'Example');
let tmp = '';

beforeAll(async () => {
  await buildWorkloads();
  tmp = mkdtempSync(path.join(tmpdir(), 'core-readme-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('README.md', () => {
  it('has one TypeScript example', () => {
    expect(blocks).toHaveLength(1);
  });

  it('example type-checks against the published types', () => {
    expect(typecheckExample(pkgDir, blocks[0]!)).toEqual([]);
  });

  it('example dumps and restores a process, which ends up killed and reaped', async () => {
    const report = path.join(tmp, 'counter.out');
    const r = await runExample(pkgDir, blocks[0]!, { args: [workloadPath('counter'), report] });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = /^dumped 1 task\(s\), 1 thread\(s\), [1-9]\d* pages\nrestored pid (\d+) in \d+ ms\n$/.exec(
      r.stdout,
    );
    expect(m, r.stdout).not.toBeNull();
    expect(() => readFileSync(`/proc/${m![1]}/stat`)).toThrow();
    const lines = readLines(report);
    expect(lines[0]).toMatch(/^READY \d+$/);
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([]);
  });

  it('ships the root LICENSE', () => {
    const root = path.join(pkgDir, '..', '..');
    expect(readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(path.join(root, 'LICENSE'), 'utf8'),
    );
  });
});
