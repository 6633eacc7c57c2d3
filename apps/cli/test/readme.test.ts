// The README's example, run with bash as a user would run it, with the workspace's criu-ts and crit-ts
// on PATH (node_modules/.bin, as after `npm install -g`): a README whose example rots fails here.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readmeBlocks, runExample } from '../../../tools/readme/examples.mjs';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const root = path.join(pkgDir, '..', '..');
const blocks = readmeBlocks(path.join(pkgDir, 'README.md'), 'sh', 'Example');

describe('README.md', () => {
  it('has one shell example', () => {
    expect(blocks).toHaveLength(1);
  });

  it('example checks, dumps, restores, explores and ends a sleep', async () => {
    const bin = path.join(root, 'node_modules', '.bin');
    const r = await runExample(pkgDir, blocks[0]!, {
      lang: 'sh',
      env: { PATH: `${bin}:${process.env.PATH}` },
      timeoutMs: 120_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = /^sleep (\d+) restored$/m.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const pid = m![1];
    expect(r.stdout.startsWith('Looks good.\n')).toBe(true);
    expect(r.stdout).toMatch(new RegExp(`^ +${pid} +${pid} +${pid} +sleep$`, 'm')); // crit-ts x ps
    expect(r.stdout).toContain('"magic": "PSTREE"'); // crit-ts decode --pretty
    // The example killed the restored sleep; whoever reaps it (init) does so soon.
    for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await delay(10);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });

  it('ships the root LICENSE', () => {
    expect(readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(path.join(root, 'LICENSE'), 'utf8'),
    );
  });
});
