// The README's example and examples/dump-restore.ts, type-checked against the built .d.ts and run with
// tsx as a user would run them, against BINARY (see helpers.ts): an example that rots fails here.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ReadmeBlock,
  readmeBlocks,
  runExample,
  typecheckExample,
} from '../../../tools/readme/examples.mjs';
import { BINARY, buildWorkloads, cleanup, track } from './helpers.js';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const blocks = readmeBlocks(path.join(pkgDir, 'README.md'), 'ts', 'Example');
const exampleFile = path.join(pkgDir, 'examples', 'dump-restore.ts');
const example: ReadmeBlock = {
  code: readFileSync(exampleFile, 'utf8'),
  line: 1,
  section: 'examples/dump-restore.ts',
};

beforeAll(async () => {
  await buildWorkloads();
});
// The restored processes the examples killed are re-parented to this subreaper: reaped here.
afterEach(() => cleanup());

describe('README.md', () => {
  it('has one TypeScript example', () => {
    expect(blocks).toHaveLength(1);
  });

  it('example type-checks against the published types', () => {
    expect(typecheckExample(pkgDir, blocks[0]!)).toEqual([]);
  });

  it('example dumps a sleep and restores it with the same pid', async () => {
    const r = await runExample(pkgDir, blocks[0]!, { args: [BINARY], timeoutMs: 120_000 });
    const m = /^sleep (\d+) restored \(same pid: true\)$/m.exec(r.stdout);
    if (m) track(Number(m[1]));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^server \d+\.\d+\npost-dump: images written, sleep still frozen\nsleep \d+ restored \(same pid: true\)\n$/,
    );
  });

  it('ships the root LICENSE', () => {
    const root = path.join(pkgDir, '..', '..');
    expect(readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(path.join(root, 'LICENSE'), 'utf8'),
    );
  });
});

describe('examples/dump-restore.ts', () => {
  it('type-checks against the published types', () => {
    expect(typecheckExample(pkgDir, example)).toEqual([]);
  });

  it('dumps a counting process and restores it counting on, every stage printed in order', async () => {
    const r = await runExample(pkgDir, example, { args: ['--binary', BINARY], timeoutMs: 120_000 });
    const m = /^restored pid (\d+); counter now (\d+)$/m.exec(r.stdout);
    if (m) track(Number(m[1]));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const stages = [...r.stdout.matchAll(/^ +\d+ ms {2}(\S+)/gm)].map((s) => s[1]);
    expect(stages.indexOf('pre-dump')).toBeLessThan(stages.indexOf('post-dump'));
    expect(stages.indexOf('post-dump')).toBeLessThan(stages.indexOf('pre-restore'));
    expect(stages.indexOf('pre-restore')).toBeLessThan(stages.indexOf('post-resume'));
    const stopped = Number(/counter stopped at (\d+)/.exec(r.stdout)?.[1]);
    expect(Number(m?.[2])).toBeGreaterThan(stopped);
  });
});
