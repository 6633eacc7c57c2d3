// /proc/PID/maps, /proc/PID/smaps and /proc/PID/smaps_rollup (fs/proc/task_mmu.c).

import { PROT_EXEC, PROT_READ, PROT_WRITE } from '@criu-ts/sys';
import { append, CH_COLON, CH_MINUS, CH_NL, CH_SPACE, CH_TAB, hexDigit, setKey } from './cursor.js';
import { KeyTable } from './keys.js';
import { VM_FLAG_CODE, VM_FLAG_VALUE } from './vmflags.js';

// mmap(2) protections are sys's; bfd re-exports them with the maps parser that reports them.
export { PROT_EXEC, PROT_READ, PROT_WRITE };

/** One line of /proc/PID/maps (also the header of an smaps block). */
export interface MapsEntry {
  start: bigint;
  /** exclusive */
  end: bigint;
  /** PROT_READ | PROT_WRITE | PROT_EXEC */
  prot: number;
  /** 's' (VM_MAYSHARE) rather than 'p' */
  shared: boolean;
  /** file offset in bytes */
  pgoff: bigint;
  major: number;
  minor: number;
  ino: bigint;
  /**
   * File path or pseudo name ("[heap]", "[stack]", "[vdso]", "[vvar]", "[vvar_vclock]",
   * "[anon:name]" ...), '' for anonymous memory. A " (deleted)" suffix is removed and reported in
   * `deleted`. Newlines in file names appear as the kernel prints them ("\012").
   */
  path: string;
  deleted: boolean;
}

/** The kB counters of an smaps block or of smaps_rollup. */
export interface SmapsCounters {
  size: number;
  kernelPageSize: number;
  mmuPageSize: number;
  rss: number;
  pss: number;
  pssDirty: number;
  /** smaps_rollup only */
  pssAnon: number;
  /** smaps_rollup only */
  pssFile: number;
  /** smaps_rollup only */
  pssShmem: number;
  sharedClean: number;
  sharedDirty: number;
  privateClean: number;
  privateDirty: number;
  referenced: number;
  anonymous: number;
  ksm: number;
  lazyFree: number;
  anonHugePages: number;
  shmemPmdMapped: number;
  filePmdMapped: number;
  sharedHugetlb: number;
  privateHugetlb: number;
  swap: number;
  swapPss: number;
  locked: number;
  /** counters this parser does not know, by their key */
  other: Record<string, number> | undefined;
}

export interface SmapsEntry extends MapsEntry, SmapsCounters {
  /** THPeligible: 0 or 1 */
  thpEligible: number;
  /** ProtectionKey (x86 pkeys); -1 where not printed */
  protectionKey: number;
  /** VmFlags as a mask of VmFlag bits; see hasVmFlag() / vmFlagNames() */
  vmFlags: number;
  /** VmFlags mnemonics this parser does not know */
  vmFlagsUnknown: string[] | undefined;
}

export interface SmapsRollup extends SmapsCounters {
  /** lowest VMA start */
  start: bigint;
  /** highest VMA end */
  end: bigint;
}

const SMAPS_KEYS = [
  'Size', // 0
  'KernelPageSize',
  'MMUPageSize',
  'Rss',
  'Pss',
  'Pss_Dirty', // 5
  'Shared_Clean',
  'Shared_Dirty',
  'Private_Clean',
  'Private_Dirty',
  'Referenced', // 10
  'Anonymous',
  'KSM',
  'LazyFree',
  'AnonHugePages',
  'ShmemPmdMapped', // 15
  'FilePmdMapped',
  'Shared_Hugetlb',
  'Private_Hugetlb',
  'Swap',
  'SwapPss', // 20
  'Locked',
  'THPeligible',
  'ProtectionKey',
  'VmFlags',
  'Pss_Anon', // 25
  'Pss_File',
  'Pss_Shmem',
] as const;
const K_THP = 22;
const K_PKEY = 23;
const K_VMFLAGS = 24;

const smapsKeys = new KeyTable(SMAPS_KEYS);

/** A VMA header line is hex digits then '-'; counter lines start with a key such as "Rss". */
function isHeaderAt(b: Buffer, p: number, len: number): boolean {
  const c = b[p]!;
  if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  let q = p + 1;
  while (q < len && hexDigit(b[q]!) >= 0) q++;
  return q < len && b[q] === CH_MINUS;
}

const DELETED = Buffer.from(' (deleted)', 'latin1');

function endsWithDeleted(b: Buffer, s: number, e: number): boolean {
  const n = DELETED.length;
  if (e - s < n) return false;
  for (let i = 0; i < n; i++) if (b[e - n + i] !== DELETED[i]) return false;
  return true;
}

// Parse state shared by the header parser and its callers (one parse at a time: JS is single threaded).
let P = 0;

// The last address converted, so that a VMA starting where the previous one ended shares its
// bigint instead of allocating another one (a value cache: always correct, whatever the input).
let lastAddrNum = -1;
let lastAddrBig = 0n;

/** Hex at P as a bigint; `cache` reuses the bigint of the previous address of the same value. */
function hexBigAt(b: Buffer, end: number, cache = false): bigint {
  let p = P;
  const s = p;
  let v = 0;
  while (p < end) {
    const d = hexDigit(b[p]!);
    if (d < 0) break;
    v = v * 16 + d;
    p++;
  }
  P = p;
  if (p - s <= 13) {
    if (v === 0) return 0n;
    if (!cache) return BigInt(v);
    if (v !== lastAddrNum) {
      lastAddrNum = v;
      lastAddrBig = BigInt(v);
    }
    return lastAddrBig;
  }
  let hi = 0;
  let i = s;
  for (; i < p - 8; i++) hi = hi * 16 + hexDigit(b[i]!);
  let lo = 0;
  for (; i < p; i++) lo = lo * 16 + hexDigit(b[i]!);
  return p - s <= 21 ? (BigInt(hi) << 32n) | BigInt(lo) : BigInt(`0x${b.toString('latin1', s, p)}`);
}

function hexNumAt(b: Buffer, end: number): number {
  let p = P;
  let v = 0;
  while (p < end) {
    const d = hexDigit(b[p]!);
    if (d < 0) break;
    v = v * 16 + d;
    p++;
  }
  P = p;
  return v;
}

// The fields of the last header scanned (scalars, so smaps builds its entry without an
// intermediate object).
let hStart = 0n;
let hEnd = 0n;
let hProt = 0;
let hShared = false;
let hPgoff = 0n;
let hMajor = 0;
let hMinor = 0;
let hIno = 0n;
let hPath = '';
let hDeleted = false;

/** Scan one VMA header line starting at P, ending at le (the '\n' or the end), into h*. */
function scanHeader(b: Buffer, le: number): void {
  hStart = hexBigAt(b, le, true);
  P++; // '-'
  hEnd = hexBigAt(b, le, true);
  P++; // ' '
  let prot = 0;
  if (b[P] === 0x72) prot |= PROT_READ;
  if (b[P + 1] === 0x77) prot |= PROT_WRITE;
  if (b[P + 2] === 0x78) prot |= PROT_EXEC;
  hProt = prot;
  hShared = b[P + 3] === 0x73;
  P += 5;
  hPgoff = hexBigAt(b, le);
  P++;
  hMajor = hexNumAt(b, le);
  P++; // ':'
  hMinor = hexNumAt(b, le);
  P++;
  // inode, decimal: exact as a number up to 15 digits, otherwise through a string
  let p = P;
  const is = p;
  let iv = 0;
  while (p < le) {
    const d = b[p]! - 0x30;
    if (d < 0 || d > 9) break;
    iv = iv * 10 + d;
    p++;
  }
  hIno = iv === 0 ? 0n : p - is <= 15 ? BigInt(iv) : BigInt(b.toString('latin1', is, p));
  while (p < le && (b[p] === CH_SPACE || b[p] === CH_TAB)) p++;
  hPath = '';
  hDeleted = false;
  if (p < le) {
    let pe = le;
    if (endsWithDeleted(b, p, pe)) {
      hDeleted = true;
      pe -= DELETED.length;
    }
    hPath = b.toString('utf8', p, pe);
  }
  P = le + 1;
}

function parseHeader(b: Buffer, le: number): MapsEntry {
  scanHeader(b, le);
  return {
    start: hStart,
    end: hEnd,
    prot: hProt,
    shared: hShared,
    pgoff: hPgoff,
    major: hMajor,
    minor: hMinor,
    ino: hIno,
    path: hPath,
    deleted: hDeleted,
  };
}

function lineEndFrom(b: Buffer, p: number, len: number): number {
  const i = b.indexOf(CH_NL, p);
  return i < 0 || i > len ? len : i;
}

/** Parse the bytes [0, len) of a maps file. */
export function parseMaps(buf: Buffer, len = buf.length): MapsEntry[] {
  const out: MapsEntry[] = [];
  P = 0;
  while (P < len) {
    const le = lineEndFrom(buf, P, len);
    if (le === P) {
      P++;
      continue;
    }
    out.push(parseHeader(buf, le));
  }
  return out;
}

/** An smaps entry for the header just scanned, counters at 0. */
function newSmaps(): SmapsEntry {
  return {
    start: hStart,
    end: hEnd,
    prot: hProt,
    shared: hShared,
    pgoff: hPgoff,
    major: hMajor,
    minor: hMinor,
    ino: hIno,
    path: hPath,
    deleted: hDeleted,
    size: 0,
    kernelPageSize: 0,
    mmuPageSize: 0,
    rss: 0,
    pss: 0,
    pssDirty: 0,
    pssAnon: 0,
    pssFile: 0,
    pssShmem: 0,
    sharedClean: 0,
    sharedDirty: 0,
    privateClean: 0,
    privateDirty: 0,
    referenced: 0,
    anonymous: 0,
    ksm: 0,
    lazyFree: 0,
    anonHugePages: 0,
    shmemPmdMapped: 0,
    filePmdMapped: 0,
    sharedHugetlb: 0,
    privateHugetlb: 0,
    swap: 0,
    swapPss: 0,
    locked: 0,
    other: undefined,
    thpEligible: 0,
    protectionKey: -1,
    vmFlags: 0,
    vmFlagsUnknown: undefined,
  };
}

/** Store counter `k` (an index into SMAPS_KEYS other than THP/pkey/VmFlags). */
function setCounter(e: SmapsCounters, k: number, v: number): void {
  switch (k) {
    case 0:
      e.size = v;
      break;
    case 1:
      e.kernelPageSize = v;
      break;
    case 2:
      e.mmuPageSize = v;
      break;
    case 3:
      e.rss = v;
      break;
    case 4:
      e.pss = v;
      break;
    case 5:
      e.pssDirty = v;
      break;
    case 6:
      e.sharedClean = v;
      break;
    case 7:
      e.sharedDirty = v;
      break;
    case 8:
      e.privateClean = v;
      break;
    case 9:
      e.privateDirty = v;
      break;
    case 10:
      e.referenced = v;
      break;
    case 11:
      e.anonymous = v;
      break;
    case 12:
      e.ksm = v;
      break;
    case 13:
      e.lazyFree = v;
      break;
    case 14:
      e.anonHugePages = v;
      break;
    case 15:
      e.shmemPmdMapped = v;
      break;
    case 16:
      e.filePmdMapped = v;
      break;
    case 17:
      e.sharedHugetlb = v;
      break;
    case 18:
      e.privateHugetlb = v;
      break;
    case 19:
      e.swap = v;
      break;
    case 20:
      e.swapPss = v;
      break;
    case 21:
      e.locked = v;
      break;
    case 25:
      e.pssAnon = v;
      break;
    case 26:
      e.pssFile = v;
      break;
    case 27:
      e.pssShmem = v;
      break;
  }
}

/**
 * Counter lines are a 16-column label ("Rss:" padded with spaces) and the value right-aligned to
 * column 24: "Rss:                   8 kB". The padded label of each key as four little-endian u32
 * words (all zero for keys whose label is longer than 16 columns), for the fast path.
 */
const LABEL_COLS = 16;
const VALUE_END = 24;
const LABEL_WORDS = new Uint32Array(SMAPS_KEYS.length * 4);
SMAPS_KEYS.forEach((k, i) => {
  const label = `${k}:`.padEnd(LABEL_COLS, ' ');
  if (label.length !== LABEL_COLS) return;
  const bytes = Buffer.from(label, 'latin1');
  for (let w = 0; w < 4; w++) LABEL_WORDS[i * 4 + w] = bytes.readUInt32LE(w * 4);
});

function storeValue(e: SmapsCounters, vma: SmapsEntry | undefined, k: number, v: number): void {
  if (k === K_THP) {
    if (vma !== undefined) vma.thpEligible = v;
  } else if (k === K_PKEY) {
    if (vma !== undefined) vma.protectionKey = v;
  } else setCounter(e, k, v);
}

/**
 * Parse the "Key: value" lines from P up to the next VMA header (or len) into `e`.
 * `vma` is the SmapsEntry receiving THPeligible/ProtectionKey/VmFlags, or undefined (rollup).
 *
 * Fast path: the kernel prints keys in a fixed order with the value right-aligned to column 24,
 * so the expected key is compared in place and the value read backwards from column 23; any
 * other line (unknown key, other order, wider value) takes the general path.
 */
function parseCounters(
  b: Buffer,
  dv: DataView,
  len: number,
  e: SmapsCounters,
  vma: SmapsEntry | undefined,
): void {
  let p = P;
  let hint = 0;
  while (p < len) {
    // ---- fast path ----
    if (hint < K_VMFLAGS && p + VALUE_END + 1 < len) {
      const w = hint * 4;
      if (
        dv.getUint32(p, true) === LABEL_WORDS[w] &&
        dv.getUint32(p + 4, true) === LABEL_WORDS[w + 1] &&
        dv.getUint32(p + 8, true) === LABEL_WORDS[w + 2] &&
        dv.getUint32(p + 12, true) === LABEL_WORDS[w + 3]
      ) {
        const t = b[p + VALUE_END];
        if (t === CH_SPACE || t === CH_NL) {
          let q = p + VALUE_END - 1;
          let v = 0;
          let mul = 1;
          for (; q >= p + LABEL_COLS; q--) {
            const d = b[q]! - 0x30;
            if (d < 0 || d > 9) break;
            v += d * mul;
            mul *= 10;
          }
          if (q < p + VALUE_END - 1 && (q < p + LABEL_COLS || b[q] === CH_SPACE)) {
            let next = p + VALUE_END + 1;
            if (t === CH_SPACE) {
              // " kB\n"
              next = p + VALUE_END + 4;
              if (b[next - 1] !== CH_NL) next = lineEndFrom(b, p, len) + 1;
            }
            storeValue(e, vma, hint, v);
            hint++;
            p = next;
            continue;
          }
        }
      }
    }
    // ---- general path ----
    const c0 = b[p]!;
    if (c0 === CH_NL) {
      p++;
      continue;
    }
    if (isHeaderAt(b, p, len)) break;
    // key up to ':'
    const ks = p;
    while (p < len && b[p] !== CH_COLON && b[p] !== CH_NL) p++;
    if (p >= len || b[p] === CH_NL) {
      p++;
      continue;
    }
    const k = smapsKeys.lookup(b, ks, p, hint);
    p++; // ':'
    if (k === K_VMFLAGS) {
      let mask = 0;
      for (;;) {
        while (p < len && b[p] === CH_SPACE) p++;
        if (p + 1 >= len || b[p] === CH_NL) break;
        const code = (b[p]! << 8) | b[p + 1]!;
        const bit = VM_FLAG_CODE[code]!;
        const after = p + 2 >= len ? CH_NL : b[p + 2]!;
        if (bit !== 0 && (after === CH_SPACE || after === CH_NL)) {
          mask += VM_FLAG_VALUE[bit - 1]!;
          p += 2;
          continue;
        }
        // A mnemonic unknown to us: keep its text (up to the next space).
        let q = p;
        while (q < len && b[q] !== CH_SPACE && b[q] !== CH_NL) q++;
        if (vma !== undefined) vma.vmFlagsUnknown = append(vma.vmFlagsUnknown, b.toString('latin1', p, q));
        p = q;
      }
      if (vma !== undefined) vma.vmFlags = mask;
      hint = K_VMFLAGS + 1;
    } else {
      while (p < len && (b[p] === CH_SPACE || b[p] === CH_TAB)) p++;
      let v = 0;
      while (p < len) {
        const d = b[p]! - 0x30;
        if (d < 0 || d > 9) break;
        v = v * 10 + d;
        p++;
      }
      if (k >= 0) {
        hint = k + 1;
        storeValue(e, vma, k, v);
      } else {
        e.other = setKey(e.other, b.toString('latin1', ks, lineKeyEnd(b, ks)), v);
      }
    }
    // to the start of the next line (" kB\n" or "\n")
    while (p < len && b[p] !== CH_NL) p++;
    p++;
  }
  P = p;
}

function lineKeyEnd(b: Buffer, s: number): number {
  let p = s;
  while (b[p] !== CH_COLON) p++;
  return p;
}

/** Parse the bytes [0, len) of an smaps file. */
export function parseSmaps(buf: Buffer, len = buf.length): SmapsEntry[] {
  const out: SmapsEntry[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, len);
  P = 0;
  while (P < len) {
    if (!isHeaderAt(buf, P, len)) {
      // stray line (should not happen): skip it
      P = lineEndFrom(buf, P, len) + 1;
      continue;
    }
    const le = lineEndFrom(buf, P, len);
    scanHeader(buf, le);
    const e = newSmaps();
    parseCounters(buf, dv, len, e, e);
    out.push(e);
  }
  return out;
}

/** Parse the bytes [0, len) of smaps_rollup. */
export function parseSmapsRollup(buf: Buffer, len = buf.length): SmapsRollup {
  P = 0;
  const le = lineEndFrom(buf, 0, len);
  const h = parseHeader(buf, le);
  const r: SmapsRollup = {
    start: h.start,
    end: h.end,
    size: 0,
    kernelPageSize: 0,
    mmuPageSize: 0,
    rss: 0,
    pss: 0,
    pssDirty: 0,
    pssAnon: 0,
    pssFile: 0,
    pssShmem: 0,
    sharedClean: 0,
    sharedDirty: 0,
    privateClean: 0,
    privateDirty: 0,
    referenced: 0,
    anonymous: 0,
    ksm: 0,
    lazyFree: 0,
    anonHugePages: 0,
    shmemPmdMapped: 0,
    filePmdMapped: 0,
    sharedHugetlb: 0,
    privateHugetlb: 0,
    swap: 0,
    swapPss: 0,
    locked: 0,
    other: undefined,
  };
  parseCounters(buf, new DataView(buf.buffer, buf.byteOffset, len), len, r, undefined);
  return r;
}
