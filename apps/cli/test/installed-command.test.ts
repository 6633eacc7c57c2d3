// The installed command, bin/criu-ts (what npm links onto PATH), and the bundle loader under it:
// the version it prints is the package's, node starts without NODE_EXTRA_CA_CERTS and the programs
// criu-ts starts get it back, and the V8 code caches are per command, per bundle, and never read
// half written.
import { execFile } from 'node:child_process';
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '..');
const INSTALLED = path.join(CLI, 'bin/criu-ts');
const tmp = mkdtempSync(path.join(tmpdir(), 'criu-ts-installed-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { HOME: tmp, ...env } }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

/** PATH with node's own directory, and `dir` first. */
const pathWith = (dir: string) => `${dir}:${path.dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`;

describe('bin/criu-ts, the installed command', () => {
  it("prints the package's version", async () => {
    const { version } = JSON.parse(readFileSync(path.join(CLI, 'package.json'), 'utf8'));
    const r = await run(INSTALLED, ['--version'], { PATH: pathWith(tmp) });
    expect(r).toMatchObject({ code: 0, stdout: `Version: ${version}\n` });
  });

  it('starts node without NODE_EXTRA_CA_CERTS, and gives it back to the programs criu-ts starts', async () => {
    // `check --feature has_ipt_legacy` runs `iptables-save --version` (and ip6tables-save) from PATH:
    // stand-ins record the environment they were given.
    const bin = mkdtempSync(path.join(tmp, 'path-'));
    const seen = path.join(bin, 'seen');
    for (const tool of ['iptables-save', 'ip6tables-save']) {
      writeFileSync(
        path.join(bin, tool),
        `#!/bin/sh\necho "extra=\${NODE_EXTRA_CA_CERTS-unset} saved=\${CRIU_TS_NODE_EXTRA_CA_CERTS-unset}" >> ${seen}\necho '${tool} v1.8.9 (legacy)'\n`,
      );
      chmodSync(path.join(bin, tool), 0o755);
    }
    // A file that does not exist: node itself would warn about it on stderr at start-up.
    const certs = path.join(tmp, 'no-such-bundle.pem');
    const r = await run(INSTALLED, ['check', '--feature', 'has_ipt_legacy'], {
      PATH: pathWith(bin),
      NODE_EXTRA_CA_CERTS: certs,
    });
    expect(r.stderr).not.toContain('NODE_EXTRA_CA_CERTS');
    expect(r.stderr).not.toContain(certs);
    expect(r).toMatchObject({ code: 0, stdout: 'has_ipt_legacy is supported\n' });
    expect(readFileSync(seen, 'utf8').trim().split('\n')).toEqual([
      `extra=${certs} saved=unset`,
      `extra=${certs} saved=unset`,
    ]);
  });

  it('runs node through a symlink to it, as npm links it', async () => {
    const link = path.join(tmp, 'criu-ts-link');
    symlinkSync(INSTALLED, link);
    const r = await run(link, ['--version'], { PATH: pathWith(tmp) });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Version: \d+\.\d+\.\d+/);
  });
});

describe('the bundle loader (bin/load-bundle.cjs)', () => {
  const cacheDir = path.join(CLI, 'dist/cache');
  const loader = path.join(CLI, 'bin/criu-ts.cjs');
  const bundleId = () =>
    /criu-ts-bundle-id=([0-9a-f]+)/.exec(
      readFileSync(path.join(CLI, 'dist/criu-ts.bundle.cjs'), 'latin1'),
    )?.[1];

  it('ends each bundle with its id, and keeps one code cache per command named after it', async () => {
    const id = bundleId();
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    const r = await run(process.execPath, [loader, '--help'], { PATH: pathWith(tmp) });
    expect(r.code).toBe(0);
    expect(readdirSync(cacheDir)).toContain(`criu-ts-other-${id}.v8`);
  });

  it('a cache V8 refuses (garbage in its place) is not used, and is written anew after the run', async () => {
    const id = bundleId();
    const file = path.join(cacheDir, `criu-ts-other-${id}.v8`);
    writeFileSync(file, Buffer.alloc(4096, 0x5a));
    const r = await run(process.execPath, [loader, '--version'], { PATH: pathWith(tmp) });
    expect(r).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Version: /) });
    const rewritten = readFileSync(file);
    expect(rewritten.equals(Buffer.alloc(4096, 0x5a))).toBe(false);
    expect(readdirSync(cacheDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it("a cache of another bundle (another id) is not read, and goes once this bundle's is written", async () => {
    const id = bundleId();
    const stale = path.join(cacheDir, 'criu-ts-other-0000000000000000.v8');
    writeFileSync(stale, Buffer.alloc(1024, 1));
    rmSync(path.join(cacheDir, `criu-ts-other-${id}.v8`), { force: true });
    const r = await run(process.execPath, [loader, '--version'], { PATH: pathWith(tmp) });
    expect(r.code).toBe(0);
    const files = readdirSync(cacheDir);
    expect(files).toContain(`criu-ts-other-${id}.v8`);
    expect(files).not.toContain('criu-ts-other-0000000000000000.v8');
  });
});
