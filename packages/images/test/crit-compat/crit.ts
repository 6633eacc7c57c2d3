// Running Debian's crit 3.17 from tests: all work goes through tools/crit-compat/batch.py, one
// Python process per batch of jobs, because crit pays its start-up (Python + 70 pb2 modules) per run.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../../..');
export const CRIT = '/usr/bin/crit';
export const PYTHON = '/usr/bin/python3';
export const BATCH = path.join(repoRoot, 'tools/crit-compat/batch.py');
const DUMPER = path.join(repoRoot, 'tools/crit-compat/dump_descriptors.py');
export const CRIT_TS = path.join(repoRoot, 'node_modules/.bin/crit-ts');

export const haveCrit = existsSync(CRIT) && existsSync(PYTHON);
export const skipReason = `skipped: ${CRIT} (Debian's crit 3.17, package "crit") or ${PYTHON} is not installed`;

export type CritJob =
  | { op: 'decode'; in: string; out: string; pretty?: boolean; stdout?: boolean }
  | { op: 'show'; in: string; out: string; nopl?: boolean }
  | { op: 'encode'; in: string; out: string }
  | { op: 'info'; in: string; out: string }
  | { op: 'x'; dir: string; what: string; out: string }
  | { op: 'handlers'; out: string };

export interface CritResult {
  ok: boolean;
  exit?: number;
  error?: string;
  stderr?: string;
  trace?: string;
}

/** Runs the jobs in one crit (pycriu) process; results come back in job order. */
export function runBatch(jobs: CritJob[]): CritResult[] {
  const out = execFileSync(PYTHON, [BATCH], {
    input: JSON.stringify(jobs),
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  const results = JSON.parse(out) as CritResult[];
  if (results.length !== jobs.length)
    throw new Error(`batch.py answered ${results.length} of ${jobs.length}`);
  return results;
}

// ---- what crit 3.17 knows (tools/crit-compat/dump_descriptors.py) ----------------------------

interface CritDump {
  messages: Record<string, { fields: Array<{ name: string; number: number }> }>;
  enums: Record<string, { values: Record<string, number> }>;
}

/** The fields and enum values of crit 3.17's schemas, by full name without the leading dot. */
export interface CritKnown {
  fields: Map<string, Map<number, string>>;
  enumValues: Map<string, Set<number>>;
}

export function loadCritKnown(): CritKnown {
  const dump = JSON.parse(
    execFileSync(PYTHON, [DUMPER], { encoding: 'utf8', maxBuffer: 64 << 20 }),
  ) as CritDump;
  const fields = new Map<string, Map<number, string>>();
  for (const [name, m] of Object.entries(dump.messages)) {
    fields.set(name, new Map(m.fields.map((f) => [f.number, f.name])));
  }
  const enumValues = new Map<string, Set<number>>();
  for (const [name, e] of Object.entries(dump.enums)) enumValues.set(name, new Set(Object.values(e.values)));
  return { fields, enumValues };
}

// ---- temp dirs ---------------------------------------------------------------------------------

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const p = mkdtempSync(path.join(tmpdir(), prefix));
  return { path: p, remove: () => rmSync(p, { recursive: true, force: true }) };
}

export const readText = (file: string) => readFileSync(file, 'utf8');
