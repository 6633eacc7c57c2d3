// /proc/PID/task/TID/children and numeric directory listings (task/, fd/, /proc itself).

import { CH_NL, CH_SPACE } from './cursor.js';

/** Parse a children file: pids separated by spaces (a trailing space, maybe a newline). */
export function parseChildren(buf: Buffer, len = buf.length): number[] {
  const out: number[] = [];
  let p = 0;
  while (p < len) {
    const c = buf[p]!;
    if (c === CH_SPACE || c === CH_NL) {
      p++;
      continue;
    }
    let v = 0;
    let digits = 0;
    while (p < len) {
      const d = buf[p]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      p++;
      digits++;
    }
    if (digits === 0) {
      p++;
      continue;
    }
    out.push(v);
  }
  return out;
}

/** The names of a directory listing that are non-negative decimal numbers, sorted ascending. */
export function numericNames(names: readonly string[]): number[] {
  const out: number[] = [];
  for (const n of names) {
    if (n.length === 0 || n.length > 15) continue;
    let v = 0;
    let ok = true;
    for (let i = 0; i < n.length; i++) {
      const d = n.charCodeAt(i) - 0x30;
      if (d < 0 || d > 9) {
        ok = false;
        break;
      }
      v = v * 10 + d;
    }
    if (ok) out.push(v);
  }
  return out.sort((a, b) => a - b);
}
