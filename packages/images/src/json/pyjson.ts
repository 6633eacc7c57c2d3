/**
 * JSON text exactly as Python's json.dump writes it (crit is a Python program, and crit-ts
 * must print the same bytes): ensure_ascii escapes, ", " and ": " separators without
 * indent, "," and newline + indent with one, big integers printed in full.
 */
export type PyJson = null | boolean | number | bigint | string | PyJson[] | { [key: string]: PyJson };

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};

/** A character that pyString must escape: a control or non-ASCII character, `"` or `\`. */
const NEEDS_ESCAPE = /[^\x20\x21\x23-\x5b\x5d-\x7e]/;

export function pyString(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`; // field names, most values
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const code = s.charCodeAt(i);
    const short = SHORT_ESCAPES[ch];
    if (short) out += short;
    else if (code < 0x20 || code > 0x7e) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

export function pyDumps(value: PyJson, indent?: number): string {
  return write(value, indent, 0);
}

function write(v: PyJson, indent: number | undefined, depth: number): string {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'string') return pyString(v);
  const items: string[] = Array.isArray(v)
    ? v.map((x) => write(x, indent, depth + 1))
    : Object.entries(v).map(([k, x]) => `${pyString(k)}: ${write(x, indent, depth + 1)}`);
  const [open, close] = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
  if (items.length === 0) return open + close;
  if (indent === undefined) return open + items.join(', ') + close;
  const pad = `\n${' '.repeat(indent * (depth + 1))}`;
  return `${open}${pad}${items.join(`,${pad}`)}\n${' '.repeat(indent * depth)}${close}`;
}

/** Parses JSON keeping integers exact: integers beyond 2^53 become bigint. */
export function pyParse(text: string): PyJson {
  // Mark big integer literals so JSON.parse keeps their digits, then turn them into bigints.
  // The mark is written as a JSON escape: a raw control character is a JSON syntax error.
  const marked = text.replace(
    /("(?:[^"\\]|\\.)*")|(?<![.\d])(-?\d{16,})(?![.eE\d])/g,
    (_m, str: string | undefined, num) => (str !== undefined ? str : `"\\u0000big:${num}"`),
  );
  return JSON.parse(marked, (_k, v: unknown) =>
    typeof v === 'string' && BIG_MARK.test(v) ? BigInt(v.slice(5)) : v,
  ) as PyJson;
}

const BIG_MARK = /^\u0000big:-?\d{16,}$/;
