// What random entries of crit-known fields do not reach:
//   - images that use CRIU 4.2's newer fields: crit 3.17 decodes them and leaves those fields out;
//   - pagemap entries with nr_pages (field 5), which crit 3.17 does not know;
//   - ipadd lists of 2, 3 or 5 words;
//   - unix socket names with mixed line ends, which quopri does not keep;
//   - hand-written JSON (hex and underscored numbers, flag and dict names, devices, addresses,
//     sloppy base64 and quoted-printable, wrong blobs): crit encode and our critToImage must write
//     the same bytes, or both refuse it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  critToImage,
  IMAGE_KINDS,
  imageToCrit,
  type MagicName,
  messageType,
  type PyJson,
  pyDumps,
  pyParse,
  writeImage,
} from '../../src/index.js';
import { type Entry, MessageArbs, sampleOne } from './arbitrary.js';
import {
  type CritJob,
  type CritKnown,
  type CritResult,
  haveCrit,
  loadCritKnown,
  readText,
  runBatch,
  skipReason,
  tempDir,
} from './crit.js';

const SEED = Number(process.env.CRIT_COMPAT_SEED ?? 0x5eed2025);
type Dict = Record<string, PyJson>;

/** Our JSON of an entry as crit 3.17 shows it: without the fields it does not know. */
function stripNewer(type: protobuf.Type, d: Dict, known: CritKnown): Dict {
  const fields = known.fields.get(type.fullName.replace(/^\./, ''))!;
  const out: Dict = {};
  for (const [key, v] of Object.entries(d)) {
    const f = type.fields[key];
    if (f && !fields.has(f.id)) continue;
    const rt = f?.resolvedType;
    // crit 3.17 calls pagemap_entry field 2 nr_pages.
    const name = type.name === 'pagemap_entry' && key === 'compat_nr_pages' ? 'nr_pages' : key;
    if (rt instanceof protobuf.Type) {
      out[name] = Array.isArray(v)
        ? v.map((x) => stripNewer(rt, x as Dict, known))
        : stripNewer(rt, v as Dict, known);
    } else {
      out[name] = v;
    }
  }
  return out;
}

/** The entry types of an image of `magic`, entry by entry. */
function entryType(magic: MagicName, index: number): protobuf.Type {
  const kind = IMAGE_KINDS[magic]!;
  if (index === 0) return messageType(kind.message);
  if (kind.layout === 'pagemap') return messageType('pagemap_entry');
  if (kind.layout === 'ghost') return messageType('ghost_chunk_entry');
  return messageType(kind.message);
}

/** The smallest valid crit JSON of a message: every required field at its zero. */
function minimal(type: protobuf.Type): Dict {
  const out: Dict = {};
  for (const f of type.fieldsArray) {
    if (!f.required) continue;
    f.resolve();
    const rt = f.resolvedType;
    if (rt instanceof protobuf.Type) out[f.name] = minimal(rt);
    else if (rt instanceof protobuf.Enum) out[f.name] = Object.keys(rt.values)[0]!;
    else if (f.type === 'string' || f.type === 'bytes') out[f.name] = '';
    else if (f.type === 'bool') out[f.name] = false;
    else out[f.name] = 0;
  }
  return out;
}

/** The same, decoded: what our ImageWriter takes. */
function minimalMessage(type: string): Record<string, unknown> {
  const walk = (t: protobuf.Type): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const f of t.fieldsArray) {
      f.resolve();
      if (!f.required) {
        if (f.repeated) out[f.name] = [];
        continue;
      }
      const rt = f.resolvedType;
      if (rt instanceof protobuf.Type) out[f.name] = walk(rt);
      else if (rt instanceof protobuf.Enum) out[f.name] = Object.values(rt.values)[0];
      else if (f.type === 'string') out[f.name] = '';
      else if (f.type === 'bytes') out[f.name] = Buffer.alloc(0);
      else if (f.type === 'bool') out[f.name] = false;
      else if (f.type.endsWith('64')) out[f.name] = 0n;
      else out[f.name] = 0;
    }
    return out;
  };
  return walk(messageType(type));
}

// ---- hand-written JSON --------------------------------------------------------------------------

interface EncodeCase {
  title: string;
  magic: MagicName;
  /** Merged into the minimal entry; `undefined` deletes a field. */
  fields?: Record<string, PyJson | undefined>;
  /** The entry's "extra"; `undefined` leaves it out. */
  extra?: PyJson;
  /** More entries after the first (ghost chunks). */
  more?: Dict[];
}

const cases: EncodeCase[] = [];
const add = (
  magic: MagicName,
  field: string,
  values: Array<PyJson | undefined>,
  more: Partial<EncodeCase> = {},
) => {
  for (const v of values) {
    cases.push({
      title: `${magic} ${field} = ${pyDumps(v ?? null)}`,
      magic,
      fields: { [field]: v },
      ...more,
    });
  }
};

// uint32 from strings: Python's int(s, 0) rules, and range checks.
add('PSTREE', 'pid', [
  '0x1F',
  '0X1f',
  '0o17',
  '0O17',
  '0b101',
  '1_000',
  ' 42 ',
  '\t42\n',
  '+7',
  '-0',
  '010',
  '00',
  '0_0',
  '_1',
  '1_',
  '1__0',
  '0x_1f',
  '0x',
  '',
  'abc',
  '1e3',
  '٣',
  1.5,
  true,
  false,
  4294967295,
  4294967296,
  -1,
  '4294967296',
  '-0x1',
]);
// int32 / int64 ranges.
add('FILE_LOCKS', 'pid', [
  -2147483648,
  2147483647,
  2147483648,
  -2147483649,
  '-0x80000000',
  '-0x80000001',
  -1.9,
]);
add('FILE_LOCKS', 'start', [
  -(2n ** 63n),
  2n ** 63n - 1n,
  2n ** 63n,
  -(2n ** 63n) - 1n,
  '-0x5',
  '0x7fffffffffffffff',
]);
add('RLIMIT', 'cur', [2n ** 64n - 1n, 2n ** 64n, -1, '0xffffffffffffffff', '0x1_0000_0000_0000_0000']);
// bool and enum.
add('INVENTORY', 'fdinfo_per_id', [0, 1, 2, '', 'false', [], [0], {}, null]);
add('INVENTORY', 'lsmtype', ['SELINUX', 'APPARMOR', 1, 'bogus', '']);
// flags, hex.
add('VMAS', 'prot', [
  'PROT_READ | PROT_WRITE',
  'PROT_READ|PROT_EXEC',
  '',
  ' ',
  '0x7',
  'PROT_READ | 0x10',
  'PROT_READ | 16',
  'PROT_READ | PROT_READ',
  'PROT_BOGUS',
  ' PROT_READ ',
  'PROT_READ |',
  3,
]);
add('VMAS', 'status', ['VMA_AREA_NONE', 'VMA_AREA_REGULAR | VMA_UNSUPP', '0x80000000 | VMA_UNSUPP']);
add('VMAS', 'start', ['0x7fff0000', '0xFFFFFFFFFFFFFFFF', '0x10000000000000000', '7fff0000', '-0x1']);
// dict.
add('INETSK', 'family', ['INET6', '0xa', '10', 'BOGUS', 10, 'inet6']);
add('INETSK', 'state', ['LISTEN', 'ESTABLISHED', '12']);
// ipadd.
add('INETSK', 'src_addr', [
  ['10.0.0.1'],
  ['255.255.255.255'],
  ['::1'],
  ['::'],
  ['1::'],
  ['::ffff:1.2.3.4'],
  ['::1.2.3.4'],
  ['fe80::1:2:3:4:5:6'],
  ['1:2:3:4:5:6:7:8'],
  ['1:2:3:4:5:6:7::'],
  ['::1', '10.0.0.1'],
  ['1.2.3'],
  ['256.1.1.1'],
  ['010.1.1.1'],
  ['1.2.3.4.5'],
  ['1:2:3:4:5:6:7:8:9'],
  ['1::2::3'],
  ['12345::'],
  [1, 2],
  [],
]);
// dev (kernel 20-bit minor) and odev (glibc makedev).
add('INOTIFY_WD', 's_dev', [
  '8:1',
  '8 : 1',
  '0x8:1',
  '8',
  '8:1:2',
  '4095:1048575',
  '4096:0',
  '1:1048576',
  '-1:0',
  '+8:1',
]);
add('IRMAP_CACHE', 'dev', ['8:1', '4095:1048575', '259:65536', '4096:0', '0:4294967295']);
// quoted-printable unix names.
add('UNIXSK', 'name', [
  '==41',
  '=4',
  'abc=',
  '=\r\nx',
  '=\rx\ny',
  '=3d',
  '=0A',
  '=0a=0D',
  'a=\nb',
  'é',
  '=\n',
]);
// base64 blobs and wrong blobs.
for (const extra of [
  'QQ',
  'QQ=',
  'QQ==QQ==',
  'Q Q = =',
  'QUJD\nREVG\n',
  '!!!',
  '',
  'QUJDRA=',
  'QUJDRA===',
  'Q',
  5,
]) {
  cases.push({ title: `GHOST_FILE extra = ${pyDumps(extra)}`, magic: 'GHOST_FILE', extra });
}
cases.push({ title: 'GHOST_FILE without extra', magic: 'GHOST_FILE' });
cases.push({
  title: 'GHOST_FILE chunked, a chunk without extra',
  magic: 'GHOST_FILE',
  fields: { chunks: true },
  more: [{ len: 1, off: 0 }],
});
cases.push({
  title: 'GHOST_FILE chunked',
  magic: 'GHOST_FILE',
  fields: { chunks: true },
  more: [
    { len: 3, off: 0, extra: 'QUJD\n' },
    { len: 0, off: 9, extra: '' },
  ],
});
add('PIPES_DATA', 'bytes', [3], { extra: 'QUJD\n' });
add('PIPES_DATA', 'bytes', [5], { extra: 'QUJD\n' });
add('PIPES_DATA', 'bytes', [0]);
cases.push({
  title: 'TCP_STREAM queues',
  magic: 'TCP_STREAM',
  fields: { inq_len: 1 },
  extra: { inq: 'QQ==', outq: '' },
});
cases.push({ title: 'TCP_STREAM without extra', magic: 'TCP_STREAM' });
cases.push({ title: 'TCP_STREAM without outq', magic: 'TCP_STREAM', extra: { inq: 'QQ==' } });
add('IPCNS_SEM', 'nsems', [2], { extra: [1, 2] });
add('IPCNS_SEM', 'nsems', [2], { extra: [1] });
add('IPCNS_SEM', 'nsems', [1], { extra: [70000] });
add('IPCNS_SEM', 'nsems', [0]);
add('IPCNS_MSG', 'qnum', [1], { extra: [{ mtype: 1, msize: 3 }, 'QUJD'] });
add('IPCNS_MSG', 'qnum', [1], { extra: [{ mtype: 1, msize: 5 }, 'QUJD'] });
add('IPCNS_MSG', 'qnum', [2], { extra: [{ mtype: 1, msize: 1 }, 'QQ==', { mtype: 2, msize: 0 }, ''] });
add('IPCNS_MSG', 'qnum', [0]);
// structure.
add('PSTREE', 'bogus', [1]);
add('PSTREE', 'pid', [undefined]);
add('PSTREE', 'threads', [[1, 2], [], ['0x10', 5]]);
add('INVENTORY', 'root_ids', ['x', {}, { vm_id: 1 }]);
add('STATS', 'dump', [
  { freezing_time: 1, frozen_time: 2, memdump_time: 3, memwrite_time: 4, pages_scanned: 5 },
]);

/**
 * Where we deliberately differ: title -> what crit does. Each must still happen exactly so.
 * - crit 3.17 bug: dict2pb() reads value[0] of every repeated field, so an empty list ("[]")
 *   crashes crit encode with IndexError; we write no element, as crit itself never prints "[]".
 * - Python's int() takes any Unicode decimal digit ("٣" is 3); we take ASCII digits only.
 */
const ACCEPTED: Record<string, RegExp | 'ok'> = {
  'PSTREE threads = []': /^IndexError/,
  'INETSK src_addr = []': /^IndexError/,
  'PSTREE pid = "\\u0663"': 'ok',
};

// ---- the tests ------------------------------------------------------------------------------------

describe.skipIf(!haveCrit)('crit 3.17 and us on what random entries do not reach', () => {
  let tmp: ReturnType<typeof tempDir> | undefined;
  let known: CritKnown;
  const res = new Map<string, CritResult>();
  const file = (name: string) => path.join(tmp!.path, name);
  const jobs: CritJob[] = [];
  const job = (name: string, j: CritJob) => {
    jobs.push({ ...j });
    return name;
  };
  const names: string[] = [];

  // Images that use everything CRIU 4.2 has (enum values crit knows), one per kind crit reads.
  const newer = new Map<MagicName, Entry[]>();
  const kinds = (Object.keys(IMAGE_KINDS) as MagicName[]).filter(
    (k) => !['BINFMT_MISC', 'PIDFD', 'SIGNAL'].includes(k),
  );

  beforeAll(() => {
    tmp = tempDir('crit-compat-edges-');
    known = loadCritKnown();
    const arbs = new MessageArbs({ known, newerFields: true });
    for (const [k, magic] of kinds.sort().entries()) {
      const entries = sampleOne(arbs.entries(IMAGE_KINDS[magic]!, 4, 2), SEED + 7 * k);
      // Whatever the sample, some 4.2-only fields for sure.
      if (magic === 'PAGEMAP') {
        for (const e of entries.slice(1))
          e.message.nr_pages ??= 2n ** 32n + BigInt(Number(e.message.compat_nr_pages));
      }
      if (magic === 'CREDS') Object.assign(entries[0]!.message, { no_new_privs: true, cap_amb: [0, 0x1ff] });
      if (magic === 'CORE') {
        const tc = entries[0]!.message.tc as Record<string, unknown> | undefined;
        if (tc) Object.assign(tc, { stop_signo: 19, membarrier_registration_mask: 3 });
      }
      writeImage(file(`new-${magic}.img`), magic, entries);
      newer.set(magic, entries);
      for (const pretty of [false, true]) {
        names.push(
          job(`new-${magic}-${pretty}`, {
            op: 'decode',
            in: file(`new-${magic}.img`),
            out: file(`new-${magic}-${pretty}.json`),
            pretty,
          }),
        );
      }
    }

    // ipadd lists of every length.
    const ipEntries = [0, 1, 2, 3, 4, 5].map((n) => ({
      message: {
        ...minimalMessage('inet_sk_entry'),
        src_addr: Array.from({ length: n }, (_, i) => (0x0100007f + i * 0x01020304) >>> 0),
        dst_addr: n === 4 ? [0, 0, 0xffff0000, 0x04030201] : [],
      },
    }));
    writeImage(file('ipadd.img'), 'INETSK', ipEntries);
    for (const n of [0, 1, 2, 3, 4, 5]) {
      writeImage(file(`ipadd-${n}.img`), 'INETSK', [ipEntries[n]!]);
      for (const pretty of [false, true]) {
        names.push(
          job(`ipadd-${n}-${pretty}`, {
            op: 'decode',
            in: file(`ipadd-${n}.img`),
            out: file(`ipadd-${n}-${pretty}.json`),
            pretty,
          }),
        );
      }
      names.push(
        job(`ipadd-${n}-enc`, {
          op: 'encode',
          in: file(`ipadd-${n}-false.json`),
          out: file(`ipadd-${n}-enc.img`),
        }),
      );
    }

    // Unix socket names that quopri does not keep.
    const lossy = ['a\nb\r\nc', 'a\r\nb\nc', '\n\r\n', 'x \r\ny\n'].map((s) => ({
      message: { ...minimalMessage('unix_sk_entry'), name: Buffer.from(s, 'latin1') },
    }));
    writeImage(file('qp-lossy.img'), 'UNIXSK', lossy);
    names.push(job('qp-lossy', { op: 'decode', in: file('qp-lossy.img'), out: file('qp-lossy.json') }));
    names.push(
      job('qp-lossy-enc', { op: 'encode', in: file('qp-lossy.json'), out: file('qp-lossy-enc.img') }),
    );

    // Hand-written JSON.
    for (const [i, c] of cases.entries()) {
      const entry: Dict = { ...minimal(entryType(c.magic, 0)) };
      for (const [k, v] of Object.entries(c.fields ?? {})) {
        if (v === undefined) delete entry[k];
        else entry[k] = v;
      }
      if (c.extra !== undefined) entry.extra = c.extra;
      const text = pyDumps({ magic: c.magic, entries: [entry, ...(c.more ?? [])] });
      writeFileSync(file(`case-${i}.json`), text);
      names.push(
        job(`case-${i}`, { op: 'encode', in: file(`case-${i}.json`), out: file(`case-${i}.crit.img`) }),
      );
    }

    const results = runBatch(jobs);
    for (const [i, name] of names.entries()) res.set(name, results[i]!);
  });

  afterAll(() => tmp?.remove());

  const ok = (name: string) => {
    const r = res.get(name)!;
    expect(r.ok, `crit ${name}: ${r.error}\n${r.stderr ?? ''}`).toBe(true);
  };

  it.each(kinds)("%s with CRIU 4.2's newer fields: crit decodes it and leaves them out", (magic) => {
    for (const pretty of [false, true]) {
      ok(`new-${magic}-${pretty}`);
      const ours = imageToCrit(file(`new-${magic}.img`), { pretty }) as { magic: string; entries: Dict[] };
      ours.entries = ours.entries.map((e, i) => stripNewer(entryType(magic, i), e, known));
      if (magic !== 'PAGEMAP') {
        for (const e of ours.entries) expect(e).not.toHaveProperty('nr_pages');
      }
      const crit = readText(file(`new-${magic}-${pretty}.json`));
      expect(pyDumps(ours, pretty ? 4 : undefined), `seed ${SEED}, ${magic}, pretty ${pretty}`).toBe(crit);
    }
  });

  it('generates the newer fields at all (pagemap nr_pages, creds cap_amb, ...)', () => {
    const has = (magic: MagicName, field: string) => newer.get(magic)!.some((e) => field in e.message);
    expect(has('PAGEMAP', 'nr_pages')).toBe(true);
    expect(has('CREDS', 'cap_amb') && has('CREDS', 'no_new_privs')).toBe(true);
    // And crit does not show them.
    expect(readText(file('new-CREDS-false.json'))).not.toMatch(/cap_amb|no_new_privs/);
    expect(readText(file('new-PAGEMAP-false.json'))).not.toMatch(/compat_nr_pages/);
  });

  it('ipadd with 0-5 words: plain decode and encode agree with crit', () => {
    for (const n of [0, 1, 2, 3, 4, 5]) {
      ok(`ipadd-${n}-false`);
      expect(pyDumps(imageToCrit(file(`ipadd-${n}.img`))), `${n} words`).toBe(
        readText(file(`ipadd-${n}-false.json`)),
      );
      ok(`ipadd-${n}-enc`);
      expect(readFileSync(file(`ipadd-${n}-enc.img`)).equals(readFileSync(file(`ipadd-${n}.img`)))).toBe(
        true,
      );
    }
  });

  it('ipadd with 0, 1, 4 and 5 words: --pretty agrees with crit (2 and 3 crash crit)', () => {
    for (const n of [0, 1, 4, 5]) {
      ok(`ipadd-${n}-true`);
      const ours = pyDumps(imageToCrit(file(`ipadd-${n}.img`), { pretty: true }), 4);
      expect(ours, `${n} words`).toBe(readText(file(`ipadd-${n}-true.json`)));
    }
    for (const n of [2, 3]) {
      // crit 3.17 bug: pb2dict reads value[0..3] of any ipadd list that is not 1 word long, so
      // `crit decode --pretty` of a 2- or 3-word list dies with IndexError; nothing to compare.
      expect(res.get(`ipadd-${n}-true`)!.error).toMatch(/^IndexError/);
    }
  });

  it('unix names with mixed line ends: we lose them the same way crit does', () => {
    ok('qp-lossy');
    expect(pyDumps(imageToCrit(file('qp-lossy.img')))).toBe(readText(file('qp-lossy.json')));
    ok('qp-lossy-enc');
    const critBytes = readFileSync(file('qp-lossy-enc.img'));
    expect(critBytes.equals(readFileSync(file('qp-lossy.img')))).toBe(false);
    critToImage(pyParse(readText(file('qp-lossy.json'))), file('qp-lossy-ours.img'));
    expect(readFileSync(file('qp-lossy-ours.img')).equals(critBytes)).toBe(true);
  });

  it(`hand-written JSON: crit encode and critToImage agree (${cases.length} cases)`, () => {
    const problems: string[] = [];
    let bothOk = 0;
    let bothFail = 0;
    for (const [i, c] of cases.entries()) {
      const crit = res.get(`case-${i}`)!;
      const out = file(`case-${i}.ours.img`);
      let ours: string | undefined;
      try {
        critToImage(pyParse(readText(file(`case-${i}.json`))), out);
      } catch (err) {
        ours = (err as Error).message;
      }
      const accepted = ACCEPTED[c.title];
      if (accepted !== undefined) {
        if (accepted === 'ok') {
          if (!crit.ok || ours === undefined)
            problems.push(`${c.title}: expected crit to take it and us not`);
        } else if (crit.ok || ours !== undefined || !accepted.test(crit.error ?? '')) {
          problems.push(`${c.title}: expected crit to fail with ${accepted} and us to take it`);
        }
        continue;
      }
      if (crit.ok && ours === undefined) {
        bothOk++;
        if (!readFileSync(out).equals(readFileSync(file(`case-${i}.crit.img`)))) {
          problems.push(`${c.title}: different bytes`);
        }
      } else if (!crit.ok && ours !== undefined) {
        bothFail++;
      } else if (crit.ok) {
        problems.push(`${c.title}: crit encodes it, we fail: ${ours}`);
      } else {
        const size = existsSync(out) ? readFileSync(out).length : 0;
        problems.push(`${c.title}: crit fails (${crit.error}), we write ${size} bytes`);
      }
    }
    console.log(`hand-written JSON: ${bothOk} encoded identically, ${bothFail} refused by both`);
    expect(problems).toEqual([]);
  });
});

if (!haveCrit) {
  describe('crit 3.17 and us on what random entries do not reach', () => {
    it.skip(skipReason, () => {});
  });
}
