#!/usr/bin/env node
// Adds up the vitest JSON reports in a folder (one per package) and prints the totals as
// the last line, "N passed, N failed", so a run that executed nothing shows as 0 passed.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? '.reports';
let passed = 0;
let failed = 0;
let skipped = 0;
let files = [];
try {
  files = readdirSync(dir).filter((f) => f.endsWith('.json'));
} catch {}
for (const f of files.sort()) {
  const r = JSON.parse(readFileSync(join(dir, f), 'utf8'));
  // A test file that failed to load counts as a failure even if it ran no test.
  const broken = (r.testResults ?? []).filter(
    (t) => t.status === 'failed' && t.assertionResults?.length === 0,
  );
  const p = r.numPassedTests ?? 0;
  const x = (r.numFailedTests ?? 0) + broken.length;
  const s = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`${f.replace(/\.json$/, '').padEnd(14)} ${p} passed, ${x} failed, ${s} skipped`);
  for (const t of r.testResults ?? []) {
    for (const a of t.assertionResults ?? [])
      if (a.status === 'failed') {
        console.log(`  FAILED ${a.fullName}`);
        // The first lines of the error, without colours: enough to tell what broke from the summary.
        const why = (a.failureMessages ?? []).join('\n').replace(/\x1b\[[0-9;]*m/g, '');
        for (const l of why.split('\n').slice(0, 4)) console.log(`    ${l.slice(0, 200)}`);
      }
    if (t.status === 'failed' && !t.assertionResults?.length) console.log(`  FAILED ${t.name}: ${t.message}`);
  }
  passed += p;
  failed += x;
  skipped += s;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
