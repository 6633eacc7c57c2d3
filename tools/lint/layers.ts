// Layer check, run by `pnpm run lint` after biome (biome 2 can restrict imports, but cannot compare a
// constant against another package's exports, so this is a small script over the TypeScript AST).
//
// 1. /proc only through @criu-ts/bfd: in packages/core/src and packages/compel/src, no string literal or
//    template that starts with "/proc" (bfd's procPath() spells the paths handed to the kernel, ProcDir
//    and the one-shot readers read the files), and no readFileSync/readdirSync/readlinkSync/existsSync/
//    writeFileSync of a procPath(). Documented exceptions are in PROC_ALLOWED below.
// 2. Constants only from @criu-ts/sys or the images' generated enums: in packages/core/src, no
//    `const NAME = <number>` of an UPPER_CASE name that sys defines, that an image enum has (FD_TYPE_REG
//    for FdTypes.REG, with the same value), or that is a page size (4096).
//
// Usage: tsx tools/lint/layers.ts [root]   (exit status 1 and one line per violation when it fails)
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const root = process.argv[2] ?? join(import.meta.dirname, '..', '..');

/** Literals starting with /proc that are not paths criu-ts opens or reads: each with why. */
const PROC_ALLOWED: Array<{ file: string; text: string; why: string }> = [
  {
    file: 'packages/core/src/check/features.ts',
    text: '/proc/PID/status has no NSpid line',
    why: 'a message naming the file, not a path',
  },
  {
    file: 'packages/core/src/mm/write.ts',
    text: '/proc mem read of ',
    why: 'a message, not a path',
  },
];

const PROC_DIRS = ['packages/core/src', 'packages/compel/src'];
const CONST_DIRS = ['packages/core/src'];
const READERS = new Set(['readFileSync', 'readdirSync', 'readlinkSync', 'existsSync', 'writeFileSync']);

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function parse(path: string): ts.SourceFile {
  return ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
}

function walk(node: ts.Node, fn: (n: ts.Node) => void): void {
  fn(node);
  node.forEachChild((c) => walk(c, fn));
}

/** Names sys defines as numeric constants (`export const NAME = ...` in packages/sys/src). */
function sysConstants(): Set<string> {
  const out = new Set<string>();
  for (const f of tsFiles(join(root, 'packages/sys/src'))) {
    for (const m of readFileSync(f, 'utf8').matchAll(/^export const ([A-Z_][A-Z0-9_]*)\s*[:=]/gm))
      out.add(m[1]!);
  }
  return out;
}

/** The images' enums: { FdTypes: { REG: 1, ... }, ... } from packages/images/src/gen/types.ts. */
function imageEnums(): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  const text = readFileSync(join(root, 'packages/images/src/gen/types.ts'), 'utf8');
  for (const m of text.matchAll(/^export const (\w+) = \{\n([^}]*)\}/gm)) {
    const values = new Map<string, number>();
    for (const v of m[2]!.matchAll(/^\s*'?(\w+)'?: (-?\d+),/gm)) values.set(v[1]!, Number(v[2]));
    out.set(m[1]!, values);
  }
  return out;
}

const words = (camel: string) =>
  camel
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .split('_');

/** The value of a numeric literal expression (1, 0o100, 4096n, -4, 1 << 31, 0o100 | 0o200), or undefined. */
function numericValue(e: ts.Expression): bigint | undefined {
  if (ts.isParenthesizedExpression(e)) return numericValue(e.expression);
  if (ts.isNumericLiteral(e)) return BigInt(Number(e.text));
  if (ts.isBigIntLiteral(e)) return BigInt(e.text.slice(0, -1));
  if (ts.isPrefixUnaryExpression(e) && e.operator === ts.SyntaxKind.MinusToken) {
    const v = numericValue(e.operand);
    return v === undefined ? undefined : -v;
  }
  if (ts.isBinaryExpression(e)) {
    const a = numericValue(e.left);
    const b = numericValue(e.right);
    if (a === undefined || b === undefined) return undefined;
    switch (e.operatorToken.kind) {
      case ts.SyntaxKind.BarToken:
        return a | b;
      case ts.SyntaxKind.LessThanLessThanToken:
        return BigInt.asIntN(32, a << b);
      case ts.SyntaxKind.AsteriskToken:
        return a * b;
      case ts.SyntaxKind.PlusToken:
        return a + b;
      default:
        return undefined;
    }
  }
  return undefined;
}

const problems: string[] = [];
const where = (sf: ts.SourceFile, n: ts.Node) => {
  const { line } = sf.getLineAndCharacterOfPosition(n.getStart(sf));
  return `${relative(root, sf.fileName)}:${line + 1}`;
};

// 1. /proc
for (const dir of PROC_DIRS) {
  for (const f of tsFiles(join(root, dir))) {
    const sf = parse(f);
    const rel = relative(root, f);
    walk(sf, (n) => {
      let text: string | undefined;
      if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) text = n.text;
      else if (ts.isTemplateExpression(n)) text = n.head.text;
      if (text !== undefined && /^\/proc(\/|$)/.test(text)) {
        if (!PROC_ALLOWED.some((a) => a.file === rel && text.startsWith(a.text)))
          problems.push(
            `${where(sf, n)}: '${text}...': /proc paths through @criu-ts/bfd (procPath, ProcDir, readStat...)`,
          );
      }
      if (ts.isCallExpression(n) && ts.isIdentifier(n.expression) && READERS.has(n.expression.text)) {
        const arg = n.arguments[0];
        if (
          arg &&
          ts.isCallExpression(arg) &&
          ts.isIdentifier(arg.expression) &&
          arg.expression.text === 'procPath'
        )
          problems.push(
            `${where(sf, n)}: ${n.expression.text}(procPath(...)): read /proc through @criu-ts/bfd`,
          );
      }
    });
  }
}

// 2. constants
const sys = sysConstants();
const enums = imageEnums();
for (const dir of CONST_DIRS) {
  for (const f of tsFiles(join(root, dir))) {
    const sf = parse(f);
    walk(sf, (n) => {
      if (!ts.isVariableDeclaration(n) || !ts.isIdentifier(n.name) || !n.initializer) return;
      if (!(n.parent.flags & ts.NodeFlags.Const)) return;
      const name = n.name.text;
      if (!/^[A-Z][A-Z0-9_]*$/.test(name)) return;
      const value = numericValue(n.initializer);
      if (value === undefined) return;
      if (sys.has(name)) {
        problems.push(`${where(sf, n)}: ${name}: @criu-ts/sys has it, import it from there`);
        return;
      }
      if (value === 4096n && name.includes('PAGE')) {
        problems.push(`${where(sf, n)}: ${name} = 4096: a page size, use PAGE_SIZE from @criu-ts/sys`);
        return;
      }
      const nameWords = new Set(name.split('_'));
      for (const [en, values] of enums) {
        const ew = words(en);
        for (const [key, v] of values) {
          if (BigInt(v) !== value) continue;
          if (name !== key && !(name.endsWith(`_${key}`) && ew.some((w) => nameWords.has(w)))) continue;
          problems.push(`${where(sf, n)}: ${name}: the images' ${en}.${key}, import it from @criu-ts/images`);
          return;
        }
      }
    });
  }
}

if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`layers: ${problems.length} problem(s) (tools/lint/layers.ts says why and what is allowed)`);
  process.exit(1);
}
console.log('layers: /proc through bfd, constants from sys and the image enums: ok');
