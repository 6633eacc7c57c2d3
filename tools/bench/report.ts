// Shared ending of the dump, restore, compel and tcp benchmarks: stop what they started, then print the
// table of figures and, as the last line, the JSON object that scripts read.
import { rmSync } from 'node:fs';

/** Kills and reaps every process a benchmark started (newest first) and removes its work dir. */
export function cleanUp(started: Iterable<number>, work: string, killAndReap: (pid: number) => void): void {
  for (const pid of [...started].reverse()) {
    try {
      killAndReap(pid);
    } catch (e) {
      console.error(`cleanup of ${pid}: ${e.message}`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}

/** rows: [what, value, unit, note] strings; the title line is left out when `title` is null. */
export function printReport(title: string | null, rows: string[][], json: unknown): void {
  const w0 = Math.max(...rows.map((r) => r[0].length), 10);
  const w1 = Math.max(...rows.map((r) => r[1].length), 5);
  const w2 = Math.max(...rows.map((r) => r[2].length), 8);
  if (title !== null) console.log(title);
  console.log(`${'benchmark'.padEnd(w0)}  ${'value'.padStart(w1)}  ${'unit'.padEnd(w2)}  notes`);
  console.log(`${'-'.repeat(w0)}  ${'-'.repeat(w1)}  ${'-'.repeat(w2)}  -----`);
  for (const [what, value, unit, note] of rows) {
    console.log(`${what.padEnd(w0)}  ${value.padStart(w1)}  ${unit.padEnd(w2)}  ${note}`);
  }
  console.log(JSON.stringify(json));
}
