// Sets of address ranges, [start, end) sorted and disjoint: what tracking and the parent chain answer.

export interface Range {
  start: bigint;
  end: bigint;
}

/** Sorted, disjoint, touching ranges merged. */
export function normalize(rs: Range[]): Range[] {
  // What PAGEMAP_SCAN gives is in order already: then no sort (bigint comparisons are slow).
  let sorted = true;
  for (let i = 1; i < rs.length && sorted; i++) if (rs[i]!.start < rs[i - 1]!.start) sorted = false;
  const s = sorted ? rs : [...rs].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Range[] = [];
  let last: Range | undefined;
  for (const r of s) {
    if (r.end <= r.start) continue;
    if (last && r.start <= last.end) {
      if (r.end > last.end) last.end = r.end;
    } else {
      last = { start: r.start, end: r.end };
      out.push(last);
    }
  }
  return out;
}

/** a ∩ b (both normalized). */
export function intersect(a: Range[], b: Range[]): Range[] {
  const out: Range[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const s = x.start > y.start ? x.start : y.start;
    const e = x.end < y.end ? x.end : y.end;
    if (s < e) out.push({ start: s, end: e });
    if (x.end < y.end) i++;
    else j++;
  }
  return out;
}

/** a \ b (both normalized). */
export function subtract(a: Range[], b: Range[]): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const x of a) {
    let cur = x.start;
    while (j < b.length && b[j]!.end <= cur) j++;
    let k = j;
    while (k < b.length && b[k]!.start < x.end) {
      const y = b[k]!;
      if (y.start > cur) out.push({ start: cur, end: y.start });
      if (y.end > cur) cur = y.end;
      if (cur >= x.end) break;
      k++;
    }
    if (cur < x.end) out.push({ start: cur, end: x.end });
  }
  return out;
}

/** a ∪ b. */
export const union = (a: Range[], b: Range[]): Range[] => normalize([...a, ...b]);

export const pagesIn = (rs: Range[], pageSize: bigint): bigint =>
  rs.reduce((n, r) => n + (r.end - r.start) / pageSize, 0n);
