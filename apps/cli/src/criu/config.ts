/**
 * CRIU's configuration files: each line is an option's long name without the dashes, then maybe
 * one value (in double quotes if it holds spaces; `\"` for a quote); `#` starts a comment.
 * They are read in CRIU's order, each one an argument list that comes before the command line:
 * /etc/criu/default.conf and $HOME/.criu/default.conf (neither with --no-default-config or
 * --config), then $CRIU_CONFIG_FILE, then --config FILE.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './getopt.js';

export interface ConfigSource {
  /** The file, for messages. */
  file: string;
  argv: string[];
}

export const GLOBAL_CONFIG = '/etc/criu/default.conf';
export const USER_CONFIG = '.criu/default.conf';

/** The configuration files that apply to this command line, read, in the order CRIU reads them. */
export function configSources(argv: readonly string[], env: NodeJS.ProcessEnv): ConfigSource[] {
  let noDefault = false;
  let explicit: string | undefined;
  argv.forEach((a, i) => {
    if (a === '--no-default-config') noDefault = true;
    else if (a === '--config') explicit = argv[i + 1];
    else if (a.startsWith('--config=')) explicit = a.slice('--config='.length);
  });
  if (explicit !== undefined) noDefault = true;
  const out: ConfigSource[] = [];
  if (!noDefault) {
    out.push(...readIfThere(GLOBAL_CONFIG));
    if (env.HOME) out.push(...readIfThere(join(env.HOME, USER_CONFIG)));
  }
  if (env.CRIU_CONFIG_FILE) out.push(read(env.CRIU_CONFIG_FILE, 'CRIU_CONFIG_FILE'));
  if (explicit !== undefined) out.push(read(explicit, '--config'));
  return out;
}

function readIfThere(file: string): ConfigSource[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return []; // the default files are optional
  }
  return [{ file, argv: parseConfig(text, file) }];
}

function read(file: string, from: string): ConfigSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(
      `cannot read the configuration file ${file} (${from}): ${(e as NodeJS.ErrnoException).code}`,
    );
  }
  return { file, argv: parseConfig(text, file) };
}

/** One configuration file's text as the argument list it stands for. */
export function parseConfig(text: string, file: string): string[] {
  const argv: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const bad = (why: string) => new UsageError(`${file}:${index + 1}: ${why}`);
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    const m = /^(\S+)(?:[ \t]+(.*))?$/.exec(line);
    if (!m) return;
    // The value joins its option (`--name=value`): an option whose value is optional on the command
    // line (`verbosity 4`) takes it here too, and one that takes none is told so.
    const name = `--${m[1]}`;
    const rest = (m[2] ?? '').trim();
    if (rest === '' || rest.startsWith('#')) {
      argv.push(name);
      return;
    }
    if (rest.startsWith('"')) {
      const close = closingQuote(rest);
      if (close < 0) throw bad('a quoted value has no closing quote');
      const after = rest
        .slice(close + 1)
        .replace(/#.*$/, '')
        .trim();
      if (after !== '') throw bad(`one value per option, found more after ${rest.slice(0, close + 1)}`);
      argv.push(`${name}=${rest.slice(1, close).replaceAll('\\"', '"')}`);
      return;
    }
    const value = rest.replace(/#.*$/, '').trimEnd();
    if (/\s/.test(value)) throw bad(`one value per option (use double quotes for spaces): ${value}`);
    argv.push(`${name}=${value.replaceAll('\\"', '"')}`);
  });
  return argv;
}

function closingQuote(s: string): number {
  for (let i = 1; i < s.length; i++) if (s[i] === '"' && s[i - 1] !== '\\') return i;
  return -1;
}
