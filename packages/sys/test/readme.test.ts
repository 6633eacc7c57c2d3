// The README's example, type-checked against the built .d.ts and run with tsx as a user would run it,
// on a counting workload that must count on afterwards: a README whose example rots fails here.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlocks, runExample, typecheckExample } from '../../../tools/readme/examples.mjs';
import { buildWorkloads, workloadPath } from '../../../tools/workloads/index.js';
import { readLines, waitForLine } from '../../../tools/workloads/report.js';
import { cleanup, makeTempDir, startTarget } from './helpers.js';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const blocks = readmeBlocks(path.join(pkgDir, 'README.md'), 'ts', 'Example');

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

describe('README.md', () => {
  it('has one TypeScript example', () => {
    expect(blocks).toHaveLength(1);
  });

  it('example type-checks against the published types', () => {
    expect(typecheckExample(pkgDir, blocks[0]!)).toEqual([]);
  });

  it('example seizes a process, reads it and lets it go', async () => {
    const report = path.join(makeTempDir(), 'counter.out');
    const pid = startTarget([workloadPath('counter'), report]);
    await waitForLine(report, /^2$/, { pid });
    const r = await runExample(pkgDir, blocks[0]!, { args: [String(pid)] });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^stopped true signal 5$/m);
    expect(r.stdout).toMatch(/^rip [0-9a-f]+ syscall \d+n$/m);
    expect(r.stdout).toMatch(/^read 4096 bytes of its stack$/m);
    expect(r.stdout).toMatch(/^its fd 1: \/dev\/null inode \d+n$/m);
    expect(r.stdout).toMatch(/ESRCH/);
    // Detached, it counts on.
    const n = readLines(report).length;
    await waitForLine(report, (_line, i) => i >= n + 2, { pid });
    expect(readLines(report).filter((l) => l.startsWith('FAIL'))).toEqual([]);
  });

  it('ships the root LICENSE', () => {
    const root = path.join(pkgDir, '..', '..');
    expect(readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(path.join(root, 'LICENSE'), 'utf8'),
    );
  });
});
