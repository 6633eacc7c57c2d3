// The README's example, type-checked against the built .d.ts and run with tsx as a user would run it
// (on itself, then on a sleeping workload): a README whose example rots fails here.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlocks, runExample, typecheckExample } from '../../../tools/readme/examples.mjs';
import { buildWorkloads, workloadPath } from '../../../tools/workloads/index.js';
import { waitForLine } from '../../../tools/workloads/report.js';
import { killStarted, start } from './helpers.js';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const blocks = readmeBlocks(path.join(pkgDir, 'README.md'), 'ts', 'Example');
let tmp = '';

beforeAll(async () => {
  await buildWorkloads();
  tmp = mkdtempSync(path.join(tmpdir(), 'bfd-readme-'));
});
afterEach(() => killStarted());
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('README.md', () => {
  it('has one TypeScript example', () => {
    expect(blocks).toHaveLength(1);
  });

  it('example type-checks against the published types', () => {
    expect(typecheckExample(pkgDir, blocks[0]!)).toEqual([]);
  });

  it('example runs on itself', async () => {
    const r = await runExample(pkgDir, blocks[0]!);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\d+ node [RS] uid \d+\n/);
    expect(r.stdout).toMatch(/^present bytes [1-9]\d*n$/m);
    expect(r.stdout).toMatch(/^self node$/m);
  });

  it('example runs on another process', async () => {
    const report = path.join(tmp, 'counter.out');
    const child = start(workloadPath('counter'), [report], { stdio: 'ignore' });
    await waitForLine(report, /^READY /, { pid: child.pid });
    const r = await runExample(pkgDir, blocks[0]!, { args: [String(child.pid)] });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${child.pid} counter [RS] uid \\d+\\n`));
    expect(r.stdout).toContain(`thread ${child.pid} `);
    expect(r.stdout).toContain(`fd 3 ${report} pos `);
  });

  it('ships the root LICENSE', () => {
    const root = path.join(pkgDir, '..', '..');
    expect(readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(path.join(root, 'LICENSE'), 'utf8'),
    );
  });
});
