// Shared ending of the dump and restore benchmarks: stop what they started, then print the
// table of figures and, as the last line, the JSON object that scripts read.
import { rmSync } from 'node:fs';

/** Kills and reaps every process a benchmark started (newest first) and removes its work dir. */
export function cleanUp(started, work, killAndReap) {
  for (const pid of [...started].reverse()) {
    try {
      killAndReap(pid);
    } catch (e) {
      console.error(`cleanup of ${pid}: ${e.message}`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}

/** rows: [what, value, unit, note] strings. */
export function printReport(title, rows, json) {
  const w0 = Math.max(...rows.map((r) => r[0].length), 10);
  const w1 = Math.max(...rows.map((r) => r[1].length), 5);
  console.log(title);
  console.log(`${'benchmark'.padEnd(w0)}  ${'value'.padStart(w1)}  unit      notes`);
  console.log(`${'-'.repeat(w0)}  ${'-'.repeat(w1)}  --------  -----`);
  for (const [what, value, unit, note] of rows) {
    console.log(`${what.padEnd(w0)}  ${value.padStart(w1)}  ${unit.padEnd(8)}  ${note}`);
  }
  console.log(JSON.stringify(json));
}
