// The two-letter VmFlags mnemonics of /proc/PID/smaps (fs/proc/task_mmu.c show_smap_vma_flags).
//
// A VMA's flags are returned as a `number` bitmask built from the stable bit order below (not
// the kernel's VM_* bit numbers, which move between versions and architectures). The mask is
// exact up to 53 flags. The first 31 can be tested with `&`; for any flag use hasVmFlag().

/** Known mnemonics; the index is the bit number in a VmFlags mask. */
export const VM_FLAG_NAMES = [
  'rd', // 0 readable
  'wr', // 1 writable
  'ex', // 2 executable
  'sh', // 3 shared
  'mr', // 4 may read
  'mw', // 5 may write
  'me', // 6 may execute
  'ms', // 7 may share
  'gd', // 8 stack grows down
  'pf', // 9 pure PFN range
  'dw', // 10 disabled write to the mapped file (old kernels)
  'lo', // 11 locked
  'io', // 12 memory-mapped I/O
  'sr', // 13 sequential read advice
  'rr', // 14 random read advice
  'dc', // 15 do not copy on fork
  'de', // 16 do not expand on mremap
  'ac', // 17 accountable
  'nr', // 18 swap space not reserved
  'ht', // 19 hugetlb
  'sf', // 20 synchronous page faults
  'nl', // 21 non-linear (old kernels)
  'ar', // 22 architecture specific
  'wf', // 23 wipe on fork
  'dd', // 24 do not dump
  'sd', // 25 soft-dirty
  'mm', // 26 mixed map
  'hg', // 27 MADV_HUGEPAGE
  'nh', // 28 MADV_NOHUGEPAGE
  'mg', // 29 MADV_MERGEABLE
  'um', // 30 userfaultfd missing tracking
  'uw', // 31 userfaultfd write-protect tracking
  'ui', // 32 userfaultfd minor fault tracking
  'ss', // 33 shadow stack
  'sl', // 34 sealed
  'bt', // 35 arm64 BTI guarded
  'mt', // 36 arm64 MTE tags enabled
  'lf', // 37 lock on fault
  'dp', // 38 droppable
  'gu', // 39 may contain guard regions
  'mp', // 40 x86 MPX bounds tables (old kernels)
] as const;

export type VmFlagName = (typeof VM_FLAG_NAMES)[number];

/** name -> mask bit value (a power of two, as a number). */
export const VmFlag: Readonly<Record<VmFlagName, number>> = Object.freeze(
  Object.fromEntries(VM_FLAG_NAMES.map((n, i) => [n, 2 ** i])) as Record<VmFlagName, number>,
);

/** (byte0 << 8 | byte1) -> bit index + 1 (0 = unknown). */
export const VM_FLAG_CODE = new Uint8Array(65536);
/** bit index -> 2 ** index */
export const VM_FLAG_VALUE = new Float64Array(64);
VM_FLAG_NAMES.forEach((n, i) => {
  VM_FLAG_CODE[(n.charCodeAt(0) << 8) | n.charCodeAt(1)] = i + 1;
  VM_FLAG_VALUE[i] = 2 ** i;
});

export function hasVmFlag(mask: number, flag: VmFlagName): boolean {
  const bit = VM_FLAG_NAMES.indexOf(flag);
  return bit >= 0 && Math.floor(mask / 2 ** bit) % 2 === 1;
}

/** The mnemonics set in `mask`, in bit order. */
export function vmFlagNames(mask: number): VmFlagName[] {
  const out: VmFlagName[] = [];
  for (let i = 0; i < VM_FLAG_NAMES.length; i++) {
    if (Math.floor(mask / 2 ** i) % 2 === 1) out.push(VM_FLAG_NAMES[i]!);
  }
  return out;
}

/** Mask from mnemonics (unknown names are ignored). */
export function vmFlagMask(names: Iterable<string>): number {
  let m = 0;
  const seen = new Set<number>();
  for (const n of names) {
    const bit = (VM_FLAG_NAMES as readonly string[]).indexOf(n);
    if (bit >= 0 && !seen.has(bit)) {
      seen.add(bit);
      m += 2 ** bit;
    }
  }
  return m;
}
