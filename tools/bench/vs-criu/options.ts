// The pure part of the vs-criu bench: its command line, the rows it knows, and the statistics
// (medians, per-round ratios). No processes here, so it can be checked without root (options.check.ts).
import { median } from '../common.js';

export interface RowInfo {
  /** What --rows takes. */
  id: string;
  /** The workload as the table names it. */
  label: string;
}

/** Every row, in the order of the table (and of the output). */
export const ROWS: readonly RowInfo[] = [
  { id: 'sleep', label: '`sleep`' },
  { id: 'mem64', label: '64 MiB of anonymous memory' },
  { id: 'mem512', label: '512 MiB' },
  { id: 'mem2g', label: '2 GiB' },
  { id: 'http', label: '`python3 -m http.server`' },
  { id: 'threads', label: '4 threads' },
  { id: 'tree', label: 'sh + 3 sleeps (4 tasks)' },
  { id: 'tcp', label: 'TCP connections, nftables lock' },
];

export interface Options {
  rounds: number;
  warmup: number;
  rows: string[];
  /** The criu-ts command (a file to execute). */
  criuTs: string;
  /** CRIU's binary, or undefined to measure criu-ts alone. */
  criu?: string;
  json: boolean;
  /** Connections of the tcp row. */
  conns: number;
  help: boolean;
}

export const USAGE = `usage: pnpm bench:vs-criu [options]      (as root, after \`pnpm run build\`)
  --criu PATH       CRIU binary to compare with (without it, or if PATH does not exist: criu-ts alone)
  --criu-ts PATH    criu-ts command (default: the repo's apps/cli/bin/criu-ts, the command npm installs)
  --rounds N        measured rounds per row and tool (default 7)
  --warmup N        uncounted rounds per row before them (default 1)
  --rows A,B,...    rows to run (default all): ${ROWS.map((r) => r.id).join(', ')}
  --conns N         connections of the tcp row (default 500)
  --json            print one JSON object as the last line
  -h, --help        this text`;

function int(name: string, v: string | undefined, min: number, max: number): number {
  if (v === undefined || !/^\d+$/.test(v)) throw new Error(`${name} wants a number, got ${v ?? 'nothing'}`);
  const n = Number(v);
  if (n < min || n > max) throw new Error(`${name} wants ${min}..${max}, got ${n}`);
  return n;
}

/** Parse argv (without node and the script). Throws an Error with a one-line message on bad input. */
export function parseArgs(argv: readonly string[], defaults: { criuTs: string }): Options {
  const o: Options = {
    rounds: 7,
    warmup: 1,
    rows: ROWS.map((r) => r.id),
    criuTs: defaults.criuTs,
    criu: undefined,
    json: false,
    conns: 500,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i] as string;
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = () => {
      if (value !== undefined) return value;
      i++;
      if (i >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[i] as string;
    };
    switch (arg) {
      case '--rounds':
        o.rounds = int(arg, next(), 1, 1000);
        break;
      case '--warmup':
        o.warmup = int(arg, next(), 0, 100);
        break;
      case '--rows':
        o.rows = selectRows(next());
        break;
      case '--criu-ts':
        o.criuTs = next();
        break;
      case '--criu':
        o.criu = next();
        break;
      case '--conns':
        o.conns = int(arg, next(), 1, 20000);
        break;
      case '--json':
        if (value !== undefined) throw new Error('--json takes no value');
        o.json = true;
        break;
      case '-h':
      case '--help':
        o.help = true;
        break;
      default:
        throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return o;
}

/** `--rows a,b`: known ids only, no repeats, in the table's order whatever the order given. */
export function selectRows(spec: string): string[] {
  const want = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (want.length === 0) throw new Error('--rows: no row given');
  const known = new Set(ROWS.map((r) => r.id));
  for (const id of want) {
    if (!known.has(id)) throw new Error(`--rows: unknown row ${id} (known: ${[...known].join(', ')})`);
  }
  return ROWS.map((r) => r.id).filter((id) => want.includes(id));
}

export { median };

/**
 * criu-ts / CRIU for one phase: the median of the per-round ratios (rounds where both tools have a
 * figure; `undefined` marks a round without one) and the ratio of the two medians.
 */
export function ratios(
  criuTs: readonly (number | undefined)[],
  criu: readonly (number | undefined)[],
): { medianOfRatios?: number; ratioOfMedians?: number; pairs: number } {
  const perRound: number[] = [];
  for (let i = 0; i < Math.min(criuTs.length, criu.length); i++) {
    const a = criuTs[i];
    const b = criu[i];
    if (a !== undefined && b !== undefined && b > 0) perRound.push(a / b);
  }
  const ma = median(criuTs.filter((v): v is number => v !== undefined));
  const mb = median(criu.filter((v): v is number => v !== undefined));
  return {
    medianOfRatios: median(perRound),
    ratioOfMedians: ma !== undefined && mb !== undefined && mb > 0 ? ma / mb : undefined,
    pairs: perRound.length,
  };
}

/** The first line of a tool's stderr or log worth showing as its failure (an error line first). */
export function firstErrorLine(text: string): string | undefined {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.find((l) => /\berror\b/i.test(l)) ?? lines[0];
}

/** `/usr/bin/time -f '%e %U %S %M'` output: its last line (a killed command adds one before it). */
export function parseTimeOutput(text: string): { userSysMs: number; maxRssKiB: number } | undefined {
  const last = text.trim().split('\n').at(-1) ?? '';
  const m = /^(\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\d+)$/.exec(last.trim());
  if (!m) return undefined;
  return {
    userSysMs: Math.round((Number(m[2]) + Number(m[3])) * 1000),
    maxRssKiB: Number(m[4]),
  };
}
