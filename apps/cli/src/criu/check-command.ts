import { basicChecks, FEATURES, featureNamed } from '@criu-ts/core';
import type { CriuOptions } from './options.js';

/**
 * `criu-ts check`: with `--feature NAME` (or several), whether this kernel and criu-ts support it,
 * in CRIU's words and exit codes (0 supported, 1 not); `--feature list` names them. Without, the
 * mechanisms every dump and restore rests on, then `--extra`/`--experimental`/`--all` features.
 */
export function checkCommand(o: CriuOptions, out: (s: string) => void, err: (s: string) => void): number {
  if (o.features.includes('list')) {
    out(`${FEATURES.map((f) => f.name).join(' ')}\n`);
    return 0;
  }
  if (o.features.length > 0) {
    let status = 0;
    for (const name of o.features) {
      const feature = featureNamed(name);
      if (!feature) {
        err(`Error: unknown feature ${name}\n`);
        return 1;
      }
      const answer = feature.probe();
      if (answer.ok) out(`${name} is supported${answer.how ? ` (${answer.how})` : ''}\n`);
      else {
        err(`Error: ${name} is not supported: ${answer.why}\n`);
        status = 1;
      }
    }
    return status;
  }
  for (const { name, answer } of basicChecks()) {
    if (!answer.ok) {
      err(`Error: ${name}: ${answer.why}\n`);
      return 1;
    }
  }
  let missing = false;
  if (o.checkExtra || o.checkExperimental) {
    for (const f of FEATURES) {
      if (f.level === 'experimental' && !o.checkExperimental) continue;
      const answer = f.probe();
      if (!answer.ok) {
        missing = true;
        err(`Warn: ${f.name}: ${answer.why}\n`);
      }
    }
  }
  out(
    missing
      ? 'Looks good but some kernel features are missing\nwhich, depending on your process tree, may cause\ndump or restore failure.\n'
      : 'Looks good.\n',
  );
  return 0;
}
