// Entry point for tests:
//
//   import { buildWorkloads, workloadPath } from '../../../tools/workloads/index.mjs';
//   await buildWorkloads();                 // e.g. in beforeAll
//   spawn(workloadPath('counter'), [reportFile]);
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { binDir, build, srcDir } from './build.mjs';

let pending = null;

/** Build out-of-date workloads (once per process); resolves to the bin dir. */
export function buildWorkloads() {
  if (!pending) {
    pending = build().then(
      (r) => r.binDir,
      (err) => {
        pending = null; // allow a retry after fixing the source
        throw err;
      },
    );
  }
  return pending;
}

/** Absolute path of a workload binary (throws for an unknown name). */
export function workloadPath(name) {
  if (!/^[a-z0-9_]+$/.test(name) || !existsSync(join(srcDir, `${name}.c`))) {
    throw new Error(`unknown workload '${name}' (no tools/workloads/src/${name}.c)`);
  }
  return join(binDir, name);
}
