// Bundles each command into one CommonJS file (dist/<name>.bundle.cjs) so that a run loads one file
// instead of resolving and compiling about a hundred: start-up is most of a small dump or restore.
// CommonJS, because bin/load-bundle.cjs compiles it with vm.Script and a V8 code cache (node 20's ES
// module loader takes no cache). koffi, pino and protobufjs stay outside, loaded from node_modules
// when a run first needs them; `import.meta.url` becomes the bundle's own URL.
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { build } from 'esbuild';

const { version } = JSON.parse(readFileSync('package.json', 'utf8'));

// criu-ts-service: criu-ts with the RPC commands (swrk, service), run for those commands only.
for (const name of ['criu-ts', 'criu-ts-service', 'crit-ts']) {
  const outfile = `dist/${name}.bundle.cjs`;
  await build({
    entryPoints: [`dist/${name}.js`],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['koffi', 'pino', 'protobufjs', 'protobufjs/*'],
    define: { 'import.meta.url': '__criuTsBundleUrl', CRIU_TS_VERSION: JSON.stringify(version) },
    banner: { js: "const __criuTsBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    charset: 'ascii',
    // A third less to read at each start; names are kept, so stack traces still say which function.
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  // The loader reads the bundle as latin1: a byte beyond ASCII would come out as the wrong character.
  const bytes = readFileSync(outfile);
  const at = bytes.findIndex((b) => b > 127);
  if (at >= 0) throw new Error(`${outfile}: byte ${at} is not ASCII`);
  // The bundle's identity, which names its code caches: V8 checks a cache against the source's length
  // only, so a rebuilt bundle of the same length must not find the old bundle's cache.
  const id = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  appendFileSync(outfile, `\n//# criu-ts-bundle-id=${id}\n`);
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
