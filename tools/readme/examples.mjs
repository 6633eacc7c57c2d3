// The code blocks of a package's README, run for real, so that a README whose example rots fails CI.
//
//   import { readmeBlocks, runExample, typecheckExample } from '../../../tools/readme/examples.mjs';
//   const [block] = readmeBlocks(readme, 'ts', 'Example');
//   expect(typecheckExample(pkgDir, block)).toEqual([]);
//   const r = await runExample(pkgDir, block, { args: [...] });
//
// The ```ts and ```sh blocks under a README's "## Example" heading are examples and must run (others,
// such as `npm install`, are not run). A ts block is written into the package directory (so that it
// imports the package by its own name, through package.json "exports", as a user's code would: the
// built dist and its .d.ts) and run with tsx; a sh block runs in bash.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const require = createRequire(join(repo, 'package.json'));

/**
 * The fenced blocks of `lang` in a Markdown file, in order, only those under the heading `section` if
 * given: { code, line, section } (line: 1-based, of the fence; section: the heading above it).
 */
export function readmeBlocks(file, lang, section) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks = [];
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const h = /^#+\s+(.*)$/.exec(lines[i]);
    if (h) heading = h[1].trim();
    const open = /^(```+)\s*(\S*)/.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith(open[1]) && l.trim() === open[1]);
    if (end < 0) throw new Error(`${file}:${i + 1}: code block not closed`);
    if (open[2] === lang && (section === undefined || heading === section))
      blocks.push({ code: `${lines.slice(i + 1, end).join('\n')}\n`, line: i + 1, section: heading });
    i = end;
  }
  return blocks;
}

let seq = 0;

/** Writes the block next to the package's package.json under a unique name; returns its path. */
function place(pkgDir, block, ext) {
  const file = join(resolve(pkgDir), `.readme-example-${process.pid}-${seq++}.${ext}`);
  writeFileSync(file, `${ext === 'sh' ? '#' : '//'} README.md line ${block.line}\n${block.code}`);
  return file;
}

/**
 * Type errors of a ts block, checked against the package's published types (its dist .d.ts through
 * "exports") with the workspace's compiler options; [] when it checks.
 */
export function typecheckExample(pkgDir, block) {
  const ts = require('typescript');
  const file = place(pkgDir, block, 'ts');
  try {
    const base = ts.readConfigFile(join(repo, 'tsconfig.base.json'), ts.sys.readFile);
    const { options } = ts.parseJsonConfigFileContent(base.config, ts.sys, repo);
    const program = ts.createProgram([file], {
      ...options,
      noEmit: true,
      declaration: false,
      declarationMap: false,
    });
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (!d.file) return text;
      // The file is the block after one header line: its line L (0-based) is README line block.line + L.
      const line = d.file.getLineAndCharacterOfPosition(d.start ?? 0).line;
      return d.file.fileName === file
        ? `README.md:${block.line + line}: ${text}`
        : `${d.file.fileName}:${line + 1}: ${text}`;
    });
  } finally {
    rmSync(file, { force: true });
  }
}

/**
 * Runs a block ('ts' with tsx, 'sh' with bash) in the package directory; resolves to its exit code and
 * output. `args` go to the program (process.argv.slice(2), or "$@"); `env` is added to the environment.
 */
export async function runExample(
  pkgDir,
  block,
  { lang = 'ts', args = [], env = {}, timeoutMs = 60_000 } = {},
) {
  const file = place(pkgDir, block, lang === 'ts' ? 'ts' : 'sh');
  const argv =
    lang === 'ts'
      ? [process.execPath, ['--import', 'tsx', file, ...args]]
      : ['bash', ['-eo', 'pipefail', file, ...args]];
  try {
    return await new Promise((resolveRun, reject) => {
      const child = spawn(argv[0], argv[1], {
        cwd: resolve(pkgDir),
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => {
        stdout += d;
      });
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(
            `README example (line ${block.line}) still running after ${timeoutMs} ms:\n${stdout}${stderr}`,
          ),
        );
      }, timeoutMs);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolveRun({ code: code ?? -1, signal, stdout, stderr });
      });
    });
  } finally {
    rmSync(file, { force: true });
  }
}
