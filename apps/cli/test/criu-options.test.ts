// criu-ts's command line as CRIU's: getopt_long's grammar, CRIU's configuration files in CRIU's
// order, refused options named, and `check --feature` answering as CRIU does (bin/criu-ts.cjs).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/criu/config.js';
import { parseCommandLine } from '../src/criu/options.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, '../bin/criu-ts.cjs');
const tmp = mkdtempSync(path.join(tmpdir(), 'criu-ts-options-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** No configuration file of the machine's or the user's may leak into these tests. */
const cleanEnv = { HOME: tmp } as NodeJS.ProcessEnv;

function criuTs(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, HOME: tmp, ...env } },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

describe('getopt_long grammar', () => {
  it('options before and after the command, clustered short options, = and separate values', () => {
    const o = parseCommandLine(
      ['-v4', 'dump', '-Rt', '42', '--images-dir=/x', '-o', 'd.log', '--tcp-est'],
      cleanEnv,
    );
    expect(o).toMatchObject({
      command: 'dump',
      tree: 42,
      finalState: 'running',
      imagesDir: '/x',
      logFile: 'd.log',
      verbosity: 4,
      tcpEstablished: true,
    });
  });

  it("-v's forms: -v, -vvv, -v0, zdtm's -verbosity=0 (getopt reads it as -v with 'erbosity=0')", () => {
    expect(parseCommandLine(['check', '-v'], cleanEnv).verbosity).toBe(3);
    expect(parseCommandLine(['check', '-vvv'], cleanEnv).verbosity).toBe(5);
    expect(parseCommandLine(['check', '-v0'], cleanEnv).verbosity).toBe(0);
    expect(parseCommandLine(['check', '-verbosity=0'], cleanEnv).verbosity).toBe(0);
    expect(parseCommandLine(['check', '--verbosity=4'], cleanEnv).verbosity).toBe(4);
  });

  it('an optional value is taken only after =: --manage-cgroups dump keeps dump as the command', () => {
    const o = parseCommandLine(['--manage-cgroups', 'restore'], cleanEnv);
    expect(o).toMatchObject({ command: 'restore', manageCgroups: 'soft' });
    expect(parseCommandLine(['restore', '--manage-cgroups=ignore'], cleanEnv).manageCgroups).toBe('ignore');
    expect(parseCommandLine(['restore', '--manage-cgroups=full'], cleanEnv).manageCgroups).toBe('full');
  });

  it('--cgroup-root takes an optional controller before the first colon, and repeats', () => {
    const o = parseCommandLine(
      ['restore', '--cgroup-root', '/newroot', '--cgroup-root', 'name=zdtmtst:/prefix'],
      cleanEnv,
    );
    expect(o.cgroupRoots).toEqual([{ path: '/newroot' }, { controller: 'name=zdtmtst', path: '/prefix' }]);
  });

  it('--no- forms of booleans, -- ending the options', () => {
    const o = parseCommandLine(['dump', '--shell-job', '--no-shell-job', '--', '--not-an-option'], cleanEnv);
    expect(o.shellJob).toBe(false);
    expect(o.operands).toEqual(['--not-an-option']);
  });

  it.each([
    [['dump', '--frobnicate'], /unrecognized option '--frobnicate'/],
    [['dump', '--ghost'], /'--ghost' is ambiguous/],
    [['dump', '-t'], /requires an argument -- 't'/],
    [['dump', '-t', 'abc'], /invalid argument for --tree: abc/],
    [['dump', '--shell-job=yes'], /doesn't allow an argument/],
    [['restore', '--network-lock', 'pf'], /--network-lock: pf/],
    [['restore', '--manage-cgroups=fullest'], /unknown cgroups mode 'fullest' selected/],
    [['dump', '--lazy-pages'], /--lazy-pages is not supported: the page server/],
    [['restore', '--inherit-fd', 'fd[3]:pipe:[1]'], /--inherit-fd is not supported/],
    [['dump', '--pre-dump-mode', 'mmap'], /--pre-dump-mode: mmap/],
  ])('%j is refused, naming the option', (argv, message) => {
    expect(() => parseCommandLine(argv, cleanEnv)).toThrow(message);
  });
});

describe('configuration files', () => {
  it("CRIU's statements: booleans, values, quotes with escaped quotes, comments", () => {
    const text = [
      '# a comment',
      '  tcp-established',
      'log-file dump.log   # trailing comment',
      'lsm-profile "selinux:some thing"',
      'images-dir "a \\"quoted\\" dir"',
      '',
    ].join('\n');
    expect(parseConfig(text, 'f')).toEqual([
      '--tcp-established',
      '--log-file=dump.log',
      '--lsm-profile=selinux:some thing',
      '--images-dir=a "quoted" dir',
    ]);
  });

  it('two values on one line, or an unclosed quote, name the file and line', () => {
    expect(() => parseConfig('tcp-established\nlog-file a b\n', '/etc/x.conf')).toThrow(
      /^\/etc\/x.conf:2: one value/,
    );
    expect(() => parseConfig('log-file "a b\n', 'c.conf')).toThrow(/^c.conf:1: .*closing quote/);
  });

  it("CRIU's order: the user's default.conf, then CRIU_CONFIG_FILE, then --config, then the command line", () => {
    const home = mkdtempSync(path.join(tmp, 'home-'));
    const userConf = path.join(home, '.criu', 'default.conf');
    mkdirSync(path.dirname(userConf), { recursive: true });
    writeFileSync(userConf, 'log-file user.log\nshell-job\n');
    const envConf = path.join(tmp, 'env.conf');
    writeFileSync(envConf, 'log-file env.log\nverbosity 3\n');
    const cmdConf = path.join(tmp, 'cmd.conf');
    writeFileSync(cmdConf, 'verbosity 1\n');

    const env = { HOME: home };
    expect(parseCommandLine(['dump'], env)).toMatchObject({ logFile: 'user.log', shellJob: true });
    expect(parseCommandLine(['dump'], { ...env, CRIU_CONFIG_FILE: envConf })).toMatchObject({
      logFile: 'env.log',
      shellJob: true,
      verbosity: 3,
    });
    // --no-default-config drops the default files, not CRIU_CONFIG_FILE; --config drops them too.
    expect(
      parseCommandLine(['dump', '--no-default-config'], { ...env, CRIU_CONFIG_FILE: envConf }),
    ).toMatchObject({
      logFile: 'env.log',
      shellJob: false,
    });
    expect(
      parseCommandLine(['dump', '--config', cmdConf], { ...env, CRIU_CONFIG_FILE: envConf }),
    ).toMatchObject({
      logFile: 'env.log',
      shellJob: false,
      verbosity: 1,
    });
    expect(parseCommandLine(['dump', '--config', cmdConf, '-v4'], env).verbosity).toBe(4);
  });

  it('a value in a file goes with its option: verbosity 4 sets it; tcp-established yes is refused', () => {
    const conf = path.join(tmp, 'values.conf');
    writeFileSync(conf, 'verbosity 4\n');
    expect(parseCommandLine(['dump', '--config', conf], cleanEnv).verbosity).toBe(4);
    writeFileSync(conf, 'tcp-established yes\n');
    expect(() => parseCommandLine(['dump', '--config', conf], cleanEnv)).toThrow(
      `${conf}: option '--tcp-established' doesn't allow an argument`,
    );
  });

  it('a refused option in a file names the option and the file; a missing --config file is an error', () => {
    const conf = path.join(tmp, 'refused.conf');
    writeFileSync(conf, 'lazy-pages\n');
    expect(() => parseCommandLine(['restore', '--config', conf], cleanEnv)).toThrow(
      `--lazy-pages (in ${conf}) is not supported`,
    );
    expect(() => parseCommandLine(['restore', '--config', path.join(tmp, 'none.conf')], cleanEnv)).toThrow(
      /cannot read the configuration file .*none.conf \(--config\): ENOENT/,
    );
  });
});

describe('criu-ts check', () => {
  it('with no feature: "Looks good." and exit 0', async () => {
    expect(await criuTs(['check', '--no-default-config'])).toMatchObject({
      code: 0,
      stdout: 'Looks good.\n',
    });
  });

  it("--feature: CRIU's words and exit codes, as zdtm calls it", async () => {
    const yes = await criuTs(['check', '--no-default-config', '-verbosity=0', '--feature', 'fdinfo_lock']);
    expect(yes).toMatchObject({ code: 0, stdout: 'fdinfo_lock is supported\n' });
    // Time namespaces: the kernel has them, criu-ts does not restore them: not supported.
    const no = await criuTs(['check', '--no-default-config', '-verbosity=0', '--feature', 'timens']);
    expect(no.code).toBe(1);
    expect(no.stderr).toMatch(/timens is not supported: time namespaces/);
    const unknown = await criuTs(['check', '--feature', 'frobs']);
    expect(unknown).toMatchObject({ code: 1 });
    expect(unknown.stderr).toMatch(/unknown feature frobs/);
    const list = await criuTs(['check', '--feature', 'list']);
    expect(list.stdout.split(' ')).toEqual(
      expect.arrayContaining(['mnt_id', 'timens', 'network_lock_nftables']),
    );
  });

  it('commands criu-ts does not have are refused by name; no command prints the usage', async () => {
    const pre = await criuTs(['lazy-pages']);
    expect(pre).toMatchObject({
      code: 1,
      stderr: 'criu-ts: lazy-pages is not supported: lazy pages are not in criu-ts yet\n',
    });
    const none = await criuTs([]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^Usage:/);
    expect((await criuTs(['-V'])).stdout).toMatch(/^Version: /);
  });
});
