/**
 * CRIU's command-line grammar, which is glibc's getopt_long: options and operands may be mixed
 * (operands are collected in order), `--` ends the options, a long option may be shortened to any
 * unambiguous prefix, `--name=value` or `--name value` for a required value but only `--name=value`
 * for an optional one, and short options cluster (`-Rt 42`, `-t42`, `-v4`, `-vvv`).
 * commander cannot express optional values that are taken only after `=`, nor several argument
 * streams (the configuration files) feeding one option set, so this small parser is ours.
 */

export type ArgKind = 'none' | 'required' | 'optional';

export interface GetoptSpec {
  long: string;
  short?: string;
  arg: ArgKind;
}

export interface ParsedOption<S extends GetoptSpec> {
  spec: S;
  /** The value, if the option took one. */
  value?: string;
  /** How it was written, for messages: `--ghost-limit`, `-t`. */
  as: string;
}

export class UsageError extends Error {}

export function getopt<S extends GetoptSpec>(
  argv: readonly string[],
  specs: readonly S[],
): { options: ParsedOption<S>[]; operands: string[] } {
  const options: ParsedOption<S>[] = [];
  const operands: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = findLong(name, specs);
      const as = `--${spec.long}`;
      if (eq >= 0) {
        if (spec.arg === 'none') throw new UsageError(`option '${as}' doesn't allow an argument`);
        options.push({ spec, value: a.slice(eq + 1), as });
      } else if (spec.arg === 'required') {
        if (i + 1 >= argv.length) throw new UsageError(`option '${as}' requires an argument`);
        options.push({ spec, value: argv[++i] as string, as });
      } else {
        options.push({ spec, as });
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j] as string;
        const spec = specs.find((s) => s.short === ch);
        if (!spec) throw new UsageError(`invalid option -- '${ch}'`);
        const as = `-${ch}`;
        const rest = a.slice(j + 1);
        if (spec.arg === 'none') {
          options.push({ spec, as });
          continue;
        }
        if (rest !== '') options.push({ spec, value: rest, as });
        else if (spec.arg === 'required') {
          if (i + 1 >= argv.length) throw new UsageError(`option requires an argument -- '${ch}'`);
          options.push({ spec, value: argv[++i] as string, as });
        } else options.push({ spec, as });
        break;
      }
      continue;
    }
    operands.push(a);
  }
  return { options, operands };
}

/** An exact name, or the one option that name is a prefix of. */
function findLong<S extends GetoptSpec>(name: string, specs: readonly S[]): S {
  const exact = specs.find((s) => s.long === name);
  if (exact) return exact;
  const candidates = name === '' ? [] : specs.filter((s) => s.long.startsWith(name));
  if (candidates.length === 1) return candidates[0] as S;
  if (candidates.length > 1) {
    const names = candidates.map((s) => `'--${s.long}'`).join(' ');
    throw new UsageError(`option '--${name}' is ambiguous; possibilities: ${names}`);
  }
  throw new UsageError(`unrecognized option '--${name}'`);
}
