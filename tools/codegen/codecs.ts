// Writes codecs.ts: one decode and one encode function per message type, as plain TypeScript,
// so that reading or writing an image needs neither a protobufjs Root nor code generated at
// run time. The wire primitives are in packages/images/src/schema/wire.ts (WireReader/Writer).
//
// The functions keep exactly what protobufjs 8 did with CRIU's proto2 schemas, since images,
// tests and crit's JSON depend on it:
//   decode  64-bit integers as bigint (int64/sint64/sfixed64 signed), enums as numbers, bytes
//           as views of the input, repeated fields always arrays, optional fields absent when
//           not on the wire, keys in field-number order (repeated fields first); enums are
//           closed (proto2): a value the enum does not know is dropped; a non-repeated message
//           field seen twice is merged; a field with an unexpected wire type is skipped like
//           an unknown one; a missing required field throws "missing required 'name'".
//   encode  fields in field-number order; values converted as protobufjs's fromObject did
//           (x|0, x>>>0, Boolean, String, Number, long.js rules for 64-bit, enum names or
//           known numbers only); a required field left out is written with its default.
// Maps, oneofs and groups do not occur in CRIU's schemas: the generator refuses them.

const LONG = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const WIRE = {
  int32: 0,
  uint32: 0,
  sint32: 0,
  int64: 0,
  uint64: 0,
  sint64: 0,
  bool: 0,
  fixed64: 1,
  sfixed64: 1,
  double: 1,
  string: 2,
  bytes: 2,
  fixed32: 5,
  sfixed32: 5,
  float: 5,
};
/** protobufjs's fromObject conversion of one scalar value, as an expression on `x`. */
const CONVERT = {
  int32: (x) => `${x} | 0`,
  sint32: (x) => `${x} | 0`,
  sfixed32: (x) => `${x} | 0`,
  uint32: (x) => `${x} >>> 0`,
  fixed32: (x) => `${x} >>> 0`,
  bool: (x) => `Boolean(${x})`,
  float: (x) => `Number(${x})`,
  double: (x) => `Number(${x})`,
  string: (x) => `String(${x})`,
};
/** The conversion of field f's values; 64-bit values and bytes go to the writer as given. */
const convert = (f) => CONVERT[f.type] ?? ((x) => x);

/** The identifier part of a type's generated names: .criu_opts.foo -> criu_opts__foo */
const ident = (t) => t.fullName.replace(/^\./, '').replace(/\./g, '__');
const tagOf = (f, wireType) => ((f.id << 3) | wireType) >>> 0;
// By shape rather than instanceof: protobufjs is the caller's copy, not imported here.
const isEnum = (f) => f.resolvedType != null && 'valuesById' in f.resolvedType;
const isMessage = (f) => f.resolvedType != null && 'fieldsArray' in f.resolvedType;
/** Wire scalar type of a non-message field: enums travel as int32. */
const scalarOf = (f) => (isEnum(f) ? 'int32' : f.type);
const packable = (f) => !isMessage(f) && f.type !== 'string' && f.type !== 'bytes';

function refuseUnsupported(t, f) {
  const why = f.map
    ? 'a map'
    : f.partOf
      ? 'in a oneof'
      : f.delimited
        ? 'a group'
        : !f.repeated && !f.hasPresence
          ? 'without presence (proto3)'
          : isEnum(f) && f.resolvedType._features.enum_type !== 'CLOSED'
            ? 'an open enum'
            : null;
  if (why) throw new Error(`codecs: ${t.fullName}.${f.name} is ${why}, which the generator does not support`);
}

// --- decoding ----------------------------------------------------------------------------------

/** The switch cases that read one field (two for a packable repeated field: packed and not). */
function decodeCases(f) {
  const v = `f_${f.name}`;
  if (isMessage(f)) {
    const d = `d_${ident(f.resolvedType)}`;
    const into = f.repeated ? `${v}.push(${d}(r, depth + 1))` : `${v} = ${d}(r, depth + 1, ${v})`;
    return [`case ${tagOf(f, 2)}: { const o = r.enter(depth + 1); ${into}; r.leave(o); continue; }`];
  }
  const type = scalarOf(f);
  const read = `r.${type}()`;
  if (isEnum(f)) {
    const known = `E_${ident(f.resolvedType)}`;
    if (!f.repeated)
      return [`case ${tagOf(f, 0)}: { const v = ${read}; if (${known}.has(v)) ${v} = v; continue; }`];
    return [
      `case ${tagOf(f, 0)}: { const v = ${read}; if (${known}.has(v)) ${v}.push(v); continue; }`,
      `case ${tagOf(f, 2)}: { const vs: number[] = []; r.packed(read.int32, vs); for (const v of vs) if (${known}.has(v)) ${v}.push(v); continue; }`,
    ];
  }
  if (!f.repeated) return [`case ${tagOf(f, WIRE[type])}: ${v} = ${read}; continue;`];
  const cases = [`case ${tagOf(f, WIRE[type])}: ${v}.push(${read}); continue;`];
  // Both forms are accepted whatever the .proto says, as protobuf requires of parsers.
  if (packable(f)) cases.push(`case ${tagOf(f, 2)}: r.packed(read.${type}, ${v}); continue;`);
  return cases;
}

function emitDecoder(t) {
  const fields = t.fieldsArray;
  const byId = [...fields].sort((a, b) => a.id - b.id);
  const repeated = byId.filter((f) => f.repeated);
  const single = byId.filter((f) => !f.repeated);
  const lines = [`function d_${ident(t)}(r: WireReader, depth: number, prev?: any): any {`];
  for (const f of single) lines.push(`  let f_${f.name}: any;`);
  for (const f of repeated) lines.push(`  let f_${f.name}: any[] = [];`);
  if (fields.length > 0) {
    // A message field seen twice: the second one is merged into the first.
    lines.push('  if (prev !== undefined) {');
    for (const f of byId) lines.push(`    f_${f.name} = prev.${f.name};`);
    lines.push('  }');
  }
  lines.push('  while (r.pos < r.len) {', '    const t = r.tag();');
  if (fields.length > 0) {
    lines.push('    switch (t) {');
    for (const f of byId) for (const c of decodeCases(f)) lines.push(`      ${c}`);
    lines.push('    }');
  }
  lines.push('    r.skip(t, depth);', '  }');
  // protobufjs checks presence in declaration order: the first missing one is reported.
  for (const f of fields.filter((x) => x.required)) {
    lines.push(`  if (f_${f.name} === undefined) throw missingRequired(${JSON.stringify(f.name)});`);
  }
  // Built at the end so that keys come in protobufjs's toObject order.
  lines.push(`  const m: any = { ${repeated.map((f) => `${f.name}: f_${f.name}`).join(', ')} };`);
  for (const f of single) lines.push(`  if (f_${f.name} !== undefined) m.${f.name} = f_${f.name};`);
  lines.push('  return m;', '}', '');
  return lines;
}

// --- encoding ----------------------------------------------------------------------------------

/** What a required field is written as when it is left out (its prototype default in protobufjs). */
function defaultLiteral(f) {
  const d = f.typeDefault;
  if (LONG.has(f.type)) return `${BigInt(d.toString())}n`;
  if (f.type === 'bytes') return 'EMPTY';
  if (typeof d === 'number')
    return Object.is(d, -0) ? '-0' : Number.isFinite(d) ? String(d) : `Number(${JSON.stringify(String(d))})`;
  return JSON.stringify(d);
}

/** Statements writing the already converted value `x` of field f, tag included. */
function writeValue(f, x, indent) {
  if (isMessage(f)) {
    return [
      `${indent}w.uint32(${tagOf(f, 2)});`,
      `${indent}{ const s = w.fork(); e_${ident(f.resolvedType)}(w, ${x}, depth + 1); w.end(s); }`,
    ];
  }
  const type = scalarOf(f);
  return [`${indent}w.uint32(${tagOf(f, WIRE[type])});`, `${indent}w.${type}(${x});`];
}

/** When a value counts as given: fromObject dropped bytes that were neither text nor array-like. */
const given = (f, x) =>
  f.type === 'bytes' ? `${x} != null && (typeof ${x} === 'string' || ${x}.length >= 0)` : `${x} != null`;

function encodeSingle(f) {
  const full = JSON.stringify(f.fullName);
  if (isEnum(f)) {
    const get = `v = E_${ident(f.resolvedType)}.get(m.${f.name});`;
    if (f.required) return [`  ${get}`, ...writeValue(f, `v !== undefined ? v : ${defaultLiteral(f)}`, '  ')];
    return [`  ${get}`, '  if (v !== undefined) {', ...writeValue(f, 'v', '    '), '  }'];
  }
  if (isMessage(f)) {
    const check = `if (!isObject(v)) throw objectExpected(${full});`;
    if (f.required) return [`  v = m.${f.name};`, `  ${check}`, ...writeValue(f, 'v', '  ')];
    return [`  v = m.${f.name};`, '  if (v != null) {', `    ${check}`, ...writeValue(f, 'v', '    '), '  }'];
  }
  const value = convert(f)('v');
  if (f.required) {
    return [
      `  v = m.${f.name};`,
      ...writeValue(f, `${given(f, 'v')} ? ${value} : ${defaultLiteral(f)}`, '  '),
    ];
  }
  return [`  v = m.${f.name};`, `  if (${given(f, 'v')}) {`, ...writeValue(f, value, '    '), '  }'];
}

function encodeRepeated(f) {
  const full = JSON.stringify(f.fullName);
  const lines = [
    `  v = m.${f.name};`,
    '  if (v) {',
    `    if (!Array.isArray(v)) throw arrayExpected(${full});`,
  ];
  if (f.packed && packable(f)) {
    lines.push('    if (v.length) {', `      w.uint32(${tagOf(f, 2)});`, '      const s = w.fork();');
    lines.push(...packedElements(f), '      w.end(s);', '    }', '  }');
    return lines;
  }
  lines.push('    for (let i = 0; i < v.length; i++) {', '      const x = v[i];');
  if (isEnum(f)) {
    lines.push(`      const e = E_${ident(f.resolvedType)}.get(x);`, '      if (e === undefined) continue;');
    lines.push(...writeValue(f, 'e', '      '));
  } else if (isMessage(f)) {
    lines.push(`      if (!isObject(x)) throw objectExpected(${full});`, ...writeValue(f, 'x', '      '));
  } else {
    lines.push(...writeValue(f, convert(f)('x'), '      '));
  }
  lines.push('    }', '  }');
  return lines;
}

/** The values of a packed run, without tags. */
function packedElements(f) {
  const type = scalarOf(f);
  if (isEnum(f)) {
    return [
      `      for (const x of v) { const e = E_${ident(f.resolvedType)}.get(x); if (e !== undefined) w.int32(e); }`,
    ];
  }
  return [`      for (const x of v) w.${type}(${convert(f)('x')});`];
}

function emitEncoder(t) {
  const byId = [...t.fieldsArray].sort((a, b) => a.id - b.id);
  const lines = [`function e_${ident(t)}(w: WireWriter, m: any, depth: number): void {`];
  lines.push("  if (depth > MAX_DEPTH) throw new Error('max depth exceeded');");
  if (byId.length > 0) lines.push('  let v: any;');
  for (const f of byId) lines.push(...(f.repeated ? encodeRepeated(f) : encodeSingle(f)));
  lines.push('}', '');
  return lines;
}

// --- the file ----------------------------------------------------------------------------------

/**
 * Each enum as one Map: names and numbers to numbers. Decoding asks has(number) (is the value
 * known?), encoding get(value) (a name or a known number, as protobufjs's fromObject took).
 */
function emitEnum(e) {
  const entries = Object.entries(e.values).flatMap(([k, n]) => [
    `[${JSON.stringify(k)}, ${n}]`,
    `[${n}, ${n}]`,
  ]);
  return `const E_${ident(e)} = new Map<unknown, number>([${entries.join(', ')}]);`;
}

/** The TypeScript source of codecs.ts for every message and enum of `types`/`enums`. */
export function emitCodecs(types, enums, sourceNote, wireModule = '../schema/wire.js') {
  for (const t of types) for (const f of t.fieldsArray) refuseUnsupported(t, f.resolve());
  const lines = [
    `// Generated by tools/codegen/codecs.ts from ${sourceNote}. Do not edit.`,
    'import {',
    '  arrayExpected,',
    '  isObject,',
    '  MAX_DEPTH,',
    '  missingRequired,',
    '  objectExpected,',
    '  read,',
    '  type WireReader,',
    '  type WireWriter,',
    `} from '${wireModule}';`,
    '',
    'const EMPTY = new Uint8Array(0);',
    '',
    ...enums.map(emitEnum),
    '',
  ];
  for (const t of types) lines.push(...emitDecoder(t), ...emitEncoder(t));
  lines.push(
    "/** A message type's codec: decode reads up to r.len; encode appends to w. */",
    'export interface Codec {',
    '  decode(r: WireReader, depth: number, prev?: any): any;',
    '  encode(w: WireWriter, m: any, depth: number): void;',
    '}',
    '',
    '/** Every message type by its protobuf name. */',
    'export const codecs: { readonly [name: string]: Codec | undefined } = {',
    ...types.map(
      (t) => `  ${JSON.stringify(t.fullName.slice(1))}: { decode: d_${ident(t)}, encode: e_${ident(t)} },`,
    ),
    '};',
    '',
  );
  return lines.join('\n');
}
