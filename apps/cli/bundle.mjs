// Bundles each command into one ES module (dist/<name>.bundle.mjs) so that a run loads one file
// instead of resolving and compiling about a hundred: start-up is most of a small dump or restore.
// koffi stays outside (a native addon found at run time); CommonJS dependencies get a `require`.
import { build } from 'esbuild';

const banner =
  "import { createRequire as __criuTsRequire } from 'node:module';\nconst require = __criuTsRequire(import.meta.url);";

for (const name of ['criu-ts', 'crit-ts']) {
  await build({
    entryPoints: [`dist/${name}.js`],
    outfile: `dist/${name}.bundle.mjs`,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['koffi'],
    banner: { js: banner },
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}

// cli-progress, for the line a long dump or restore shows on a terminal (src/criu/progress.ts): a file
// of its own, required only when that line is about to show, so that no command pays for it at start-up.
await build({
  stdin: { contents: "module.exports = require('cli-progress');", resolveDir: '.', loader: 'js' },
  outfile: 'dist/cli-progress.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'warning',
});
