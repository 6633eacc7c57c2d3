'use strict';
// Starts one of the CLI bundles (dist/<name>.bundle.cjs) with a V8 code cache, so that a run does not
// parse and compile 1.2 MB of JavaScript first: on this kind of machine that is most of a small dump.
//
// The cache holds the bytecode of the bundle's top level and of every function the command ran, so it
// is kept per command and per bundle (dist/cache/<name>-<command>-<bundle id>.v8; bundle.mjs ends each
// bundle with its id, a hash of its content, because V8 checks a cache against the source's length
// only). It is written at the end of a successful run when there is none yet or V8 refused the one
// there (another node version, other V8 flags), through a temporary file renamed into place, so that
// concurrent runs never read half of one; the caches of older bundles go then. A cache that cannot be
// written (a read-only install) only costs the compile it would have saved.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');

/** The commands that get a cache of their own; any other run shares `other`. */
const CACHED_COMMANDS = new Set([
  'dump',
  'restore',
  'check',
  'swrk',
  'service',
  'decode',
  'encode',
  'show',
  'info',
  'x',
]);
/** The commands of criu-ts-service.bundle.cjs (criu-ts with the RPC service); criu-ts's others do without. */
const SERVICE_COMMANDS = new Set(['swrk', 'service']);

function commandOf(argv) {
  // Options may come first (`criu-ts -D d dump`): the first word that names a command is taken. A wrong
  // guess (a directory named `dump`) only picks a cache with less of the right code in it.
  return argv.find((a) => CACHED_COMMANDS.has(a)) ?? 'other';
}

function readCache(file) {
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined;
  }
}

function writeCache(dir, prefix, file, data) {
  const tmp = path.join(dir, `${file}.${process.pid}.tmp`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, path.join(dir, file));
    // The caches of older bundles, and what killed runs left half written.
    for (const old of fs.readdirSync(dir)) {
      if (old.startsWith(prefix) && old !== file) fs.rmSync(path.join(dir, old), { force: true });
    }
  } catch {
    fs.rmSync(tmp, { force: true });
  }
}

/** Runs `main(argv)` of dist/<name>.bundle.cjs and sets the exit code to what it returns. */
function run(name) {
  // bin/criu-ts started node without NODE_EXTRA_CA_CERTS (see there): the programs criu-ts starts get it.
  const saved = process.env.CRIU_TS_NODE_EXTRA_CA_CERTS;
  if (saved !== undefined) {
    process.env.NODE_EXTRA_CA_CERTS = saved;
    delete process.env.CRIU_TS_NODE_EXTRA_CA_CERTS;
  }
  const dist = path.join(__dirname, '..', 'dist');
  const argv = process.argv.slice(2);
  if (name === 'criu-ts' && SERVICE_COMMANDS.has(commandOf(argv))) name = 'criu-ts-service';
  const file = path.join(dist, `${name}.bundle.cjs`);
  // esbuild writes ASCII only (non-ASCII characters escaped), which latin1 reads fastest.
  const source = fs.readFileSync(file, 'latin1');
  const id = /criu-ts-bundle-id=([0-9a-f]+)/.exec(source.slice(-64))?.[1];
  const cacheDir = path.join(dist, 'cache');
  const prefix = `${name}-${commandOf(argv)}-`;
  const cacheFile = `${prefix}${id}.v8`;
  const cachedData = id === undefined ? undefined : readCache(path.join(cacheDir, cacheFile));
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    cachedData,
  });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, dist);
  const stale = id !== undefined && (cachedData === undefined || script.cachedDataRejected === true);
  mod.exports.main(argv).then(
    (code) => {
      process.exitCode = code;
      if (stale && code === 0)
        process.once('exit', () => writeCache(cacheDir, prefix, cacheFile, script.createCachedData()));
    },
    (e) => {
      process.stderr.write(`${name}: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}

module.exports = { run };
