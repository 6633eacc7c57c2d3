// Our proto/ schemas against the schemas Debian's crit 3.17 (pycriu) was built from.
//
// For every message, enum and extension crit knows, ours must have the same field numbers,
// names, types, labels, defaults, packed-ness and (criu).* options, and the same enum values.
// What is only in ours (CRIU 3.18 .. 4.2 additions) is allowed, but it must be exactly the list
// in NEWER_THAN_CRIT below, so a typo'd or stray field cannot hide there.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');
const protoDir = path.join(repoRoot, 'proto');
const imagesDir = path.join(protoDir, 'images');
const dumper = path.join(repoRoot, 'tools/crit-compat/dump_descriptors.py');
const CRIT = '/usr/bin/crit';
const PYTHON = '/usr/bin/python3';
const haveCrit = existsSync(CRIT) && existsSync(PYTHON);

// ---- what crit 3.17 knows (tools/crit-compat/dump_descriptors.py) ----------------------------

interface CritField {
  name: string;
  number: number;
  type: string;
  label: 'optional' | 'required' | 'repeated';
  type_name: string | null;
  default: string | null;
  packed: boolean;
  criu: Record<string, string | boolean>;
}
interface CritExtension extends CritField {
  file: string;
  extendee: string;
}
interface CritDump {
  protobuf: string;
  files: Record<string, string>;
  messages: Record<string, { file: string; fields: CritField[] }>;
  enums: Record<string, { file: string; values: Record<string, number> }>;
  extensions: Record<string, CritExtension>;
}

// ---- known differences --------------------------------------------------------------------------

// Fields that CRIU renamed after 3.17, keeping the number and type: "message.number" -> [crit, ours].
const RENAMED: Record<string, [string, string]> = {
  'pagemap_entry.2': ['nr_pages', 'compat_nr_pages'],
};

// Defaults that CRIU changed after 3.17: "message.number" -> [crit, ours].
const REDEFAULTED: Record<string, [string | null, string | null]> = {
  'criu_opts.1': [null, '-1'], // images_dir_fd; -1 means "use images_dir" (4.x)
};

// Everything in our schemas that crit 3.17 does not have. Sorted; kept in sync with proto/README.md.
const NEWER_THAN_CRIT = {
  files: ['core-loongarch64.proto', 'core-riscv64.proto', 'pidfd.proto'],
  messages: [
    'pac_address_keys',
    'pac_generic_keys',
    'pac_keys',
    'pidfd_entry',
    'plugins_entry',
    'tcp_opts_entry',
    'thread_info_loongarch64',
    'thread_info_riscv64',
    'user_loongarch64_fpregs_entry',
    'user_loongarch64_gpregs_entry',
    'user_riscv64_d_ext_entry',
    'user_riscv64_regs_entry',
    'user_x86_cet_entry',
  ],
  enums: [] as string[],
  fields: [
    'cg_controller_entry.is_threaded = 3',
    'core_entry.ti_loongarch64 = 12',
    'core_entry.ti_riscv64 = 13',
    'creds_entry.cap_amb = 19',
    'creds_entry.no_new_privs = 18',
    'criu_opts.display_stats = 70',
    'criu_opts.images_dir = 68',
    'criu_opts.leave_stopped = 69',
    'criu_opts.log_to_stderr = 71',
    'criu_opts.skip_file_rwx_check = 66',
    'criu_opts.unprivileged = 67',
    'file_entry.pidfd = 22',
    'inet_sk_entry.tcp_opts = 20',
    'inventory_entry.allow_uprobes = 14',
    'inventory_entry.dump_criu_run_id = 13',
    'inventory_entry.plugins_entry = 12',
    'ip_opts_entry.pktinfo = 5',
    'ip_opts_entry.tos = 6',
    'ip_opts_entry.ttl = 7',
    'memfd_inode_entry.mode = 9',
    'netns_entry.ipv4_sysctl = 10',
    'pagemap_entry.nr_pages = 5',
    'task_core_entry.membarrier_registration_mask = 22',
    'task_core_entry.stop_signo = 21',
    'thread_core_entry.cg_set = 16',
    'thread_info_aarch64.pac_keys = 5',
    'user_x86_xsave_entry.cet = 9',
  ],
  enumValues: [
    'core_entry.march.LOONGARCH64 = 7',
    'core_entry.march.RISCV64 = 8',
    'criu_network_lock_method.SKIP = 3',
    'fd_types.PIDFD = 20',
  ],
};

// ---- our schemas, loaded the way the runtime does -----------------------------------------------

function protoFiles(): string[] {
  const images = readdirSync(imagesDir)
    .filter((f) => f.endsWith('.proto'))
    .sort()
    .map((f) => path.join(imagesDir, f));
  return [...images, path.join(protoDir, 'rpc', 'rpc.proto')];
}

function loadOurs(): protobuf.Root {
  const require = createRequire(import.meta.url);
  const pbDir = path.dirname(require.resolve('protobufjs/package.json'));
  const root = new protobuf.Root();
  // CRIU's imports are bare file names ("opts.proto"); descriptor.proto comes with protobufjs.
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    if (target.startsWith('google/protobuf/')) return path.join(pbDir, target);
    return path.join(imagesDir, target);
  };
  root.loadSync(protoFiles(), { keepCase: true });
  root.resolveAll();
  return root;
}

const bare = (fullName: string) => fullName.replace(/^\./, '');
const isGoogle = (fullName: string) => bare(fullName).startsWith('google.');

// Walks every type, enum and extension field we define (skipping google.protobuf.*).
function collect(root: protobuf.Root) {
  const types = new Map<string, protobuf.Type>();
  const enums = new Map<string, protobuf.Enum>();
  const extensions = new Map<string, protobuf.Field>();
  const walk = (ns: protobuf.NamespaceBase) => {
    for (const obj of ns.nestedArray) {
      if (isGoogle(obj.fullName)) continue;
      if (obj instanceof protobuf.Type) types.set(bare(obj.fullName), obj);
      else if (obj instanceof protobuf.Enum) enums.set(bare(obj.fullName), obj);
      else if (obj instanceof protobuf.Field && obj.extend !== undefined)
        extensions.set(bare(obj.fullName), obj);
      if (obj instanceof protobuf.Namespace || obj instanceof protobuf.Type) walk(obj);
    }
  };
  walk(root);
  return { types, enums, extensions };
}

// A field of ours in the same shape as the crit dump.
function describeOurs(f: protobuf.Field): CritField {
  const rt = f.resolvedType;
  const type = rt instanceof protobuf.Type ? 'message' : rt instanceof protobuf.Enum ? 'enum' : f.type;
  const label: CritField['label'] = f.repeated ? 'repeated' : f.required ? 'required' : 'optional';
  const opts = (f.options ?? {}) as Record<string, unknown>;
  const def = opts.default;
  const criu: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(opts)) {
    if (k.startsWith('(criu).')) criu[k.slice('(criu).'.length)] = v as string | boolean;
  }
  return {
    name: f.name,
    number: f.id,
    type,
    label,
    type_name: rt ? bare(rt.fullName) : null,
    default: def === undefined ? null : String(def),
    packed: f.repeated ? f.packed : false,
    criu,
  };
}

const fileOf = (obj: protobuf.ReflectionObject) => (obj.filename ? path.basename(obj.filename) : undefined);

// ---- the comparison ------------------------------------------------------------------------------

describe.skipIf(!haveCrit)('proto/ schemas vs crit 3.17', () => {
  let crit: CritDump;
  let root: protobuf.Root;
  let ours: ReturnType<typeof collect>;

  beforeAll(() => {
    const out = execFileSync(PYTHON, [dumper], { encoding: 'utf8', maxBuffer: 64 << 20 });
    crit = JSON.parse(out) as CritDump;
    root = loadOurs();
    ours = collect(root);
  });

  it('loads every proto file, with imports resolved inside proto/images', () => {
    expect(protoFiles().length).toBeGreaterThan(70);
    expect(ours.types.size).toBeGreaterThan(Object.keys(crit.messages).length - 1);
    // The (criu) options survive as plain option keys.
    const start = root.lookupType('vma_entry').fields.start!;
    expect(start.options).toMatchObject({ '(criu).hex': true });
    const dev = root.lookupType('irmap_cache_entry').fields.dev!;
    expect(dev.options).toMatchObject({ '(criu).dev': true, '(criu).odev': true });
  });

  it('has every message crit knows, with identical fields', () => {
    const problems: string[] = [];
    for (const [name, cm] of Object.entries(crit.messages)) {
      const t = ours.types.get(name);
      if (!t) {
        problems.push(`missing message ${name}`);
        continue;
      }
      if (fileOf(t) !== cm.file) problems.push(`${name}: in ${fileOf(t)}, crit has it in ${cm.file}`);
      for (const cf of cm.fields) {
        const f = t.fieldsById[cf.number];
        if (!f) {
          problems.push(`${name}: missing field ${cf.name} = ${cf.number}`);
          continue;
        }
        const o = describeOurs(f);
        const renamed = RENAMED[`${name}.${cf.number}`];
        const expectName = renamed && renamed[0] === cf.name ? renamed[1] : cf.name;
        const redefault = REDEFAULTED[`${name}.${cf.number}`];
        const expectDefault = redefault && redefault[0] === cf.default ? redefault[1] : cf.default;
        const want = { ...cf, name: expectName, default: expectDefault };
        expect.soft(o, `${name}.${cf.name} = ${cf.number}`).toEqual(want);
      }
    }
    expect(problems).toEqual([]);
  });

  it('has every enum crit knows, with identical values', () => {
    const problems: string[] = [];
    for (const [name, ce] of Object.entries(crit.enums)) {
      const e = ours.enums.get(name);
      if (!e) {
        problems.push(`missing enum ${name}`);
        continue;
      }
      if (fileOf(e) !== ce.file) problems.push(`${name}: in ${fileOf(e)}, crit has it in ${ce.file}`);
      for (const [vname, num] of Object.entries(ce.values)) {
        if (e.values[vname] !== num) problems.push(`${name}.${vname}: ours ${e.values[vname]}, crit ${num}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('declares the (criu) FieldOptions extension like crit', () => {
    for (const [name, cx] of Object.entries(crit.extensions)) {
      const x = ours.extensions.get(name);
      expect(x, `extension ${name}`).toBeDefined();
      if (!x) continue;
      expect(bare(x.extend ?? '')).toBe(cx.extendee);
      expect(fileOf(x)).toBe(cx.file);
      const { file: _file, extendee: _extendee, ...want } = cx;
      expect(describeOurs(x)).toEqual(want);
    }
    // protobufjs also adds a sister field, named ".criu", to FieldOptions itself.
    expect(root.lookupType('google.protobuf.FieldOptions').fieldsById[1018]?.name).toBe('.criu');
  });

  it('adds only the known CRIU 3.18..4.2 additions on top of crit 3.17', () => {
    const critFiles = new Set(Object.keys(crit.files));
    const extra = {
      files: protoFiles()
        .map((f) => path.basename(f))
        .filter((f) => !critFiles.has(f))
        .sort(),
      messages: [...ours.types.keys()].filter((n) => !(n in crit.messages)).sort(),
      enums: [...ours.enums.keys()].filter((n) => !(n in crit.enums)).sort(),
      fields: [] as string[],
      enumValues: [] as string[],
    };
    for (const [name, t] of ours.types) {
      const cm = crit.messages[name];
      if (!cm) continue;
      const known = new Set(cm.fields.map((f) => f.number));
      for (const f of t.fieldsArray) if (!known.has(f.id)) extra.fields.push(`${name}.${f.name} = ${f.id}`);
    }
    for (const [name, e] of ours.enums) {
      const ce = crit.enums[name];
      if (!ce) continue;
      for (const [vname, num] of Object.entries(e.values)) {
        if (!(vname in ce.values)) extra.enumValues.push(`${name}.${vname} = ${num}`);
      }
    }
    extra.fields.sort();
    extra.enumValues.sort();

    const summary = [
      `crit 3.17 (python protobuf ${crit.protobuf}): ${Object.keys(crit.files).length} files, ` +
        `${Object.keys(crit.messages).length} messages, ${Object.keys(crit.enums).length} enums`,
      `ours: ${protoFiles().length} files, ${ours.types.size} messages, ${ours.enums.size} enums`,
      `renamed since 3.17: ${Object.entries(RENAMED)
        .map(([k, [a, b]]) => `${k} ${a} -> ${b}`)
        .join(', ')}`,
      `default changed since 3.17: ${Object.entries(REDEFAULTED)
        .map(([k, [a, b]]) => `${k} ${a ?? '(none)'} -> ${b ?? '(none)'}`)
        .join(', ')}`,
      `only in ours: ${extra.files.length} files, ${extra.messages.length} messages, ` +
        `${extra.enums.length} enums, ${extra.fields.length} fields in crit-known messages, ` +
        `${extra.enumValues.length} enum values`,
      ...extra.files.map((x) => `  file       ${x}`),
      ...extra.messages.map((x) => `  message    ${x}`),
      ...extra.enums.map((x) => `  enum       ${x}`),
      ...extra.fields.map((x) => `  field      ${x}`),
      ...extra.enumValues.map((x) => `  enum value ${x}`),
    ];
    console.log(summary.join('\n'));

    expect(extra).toEqual(NEWER_THAN_CRIT);
  });
});

if (!haveCrit) {
  describe('proto/ schemas vs crit 3.17', () => {
    it.skip(`skipped: ${CRIT} (Debian's crit) or ${PYTHON} is not installed`, () => {});
  });
}
