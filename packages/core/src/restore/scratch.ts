// Placing the stub: start the stub ELF (the root's parent, or with --restore-sibling the root itself),
// map the scratch area into it (code page, syscall table, data) at an address no dumped VMA of any task
// and no mapping of the stub uses, so every task inherits it and none of their memory collides with it;
// block every signal but our int3's and reset every action to SIG_DFL, for the tasks to inherit.
import { ProcDir } from '@criu-ts/bfd';
import { codePage } from '@criu-ts/compel';
import {
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  ptraceSetSigmask,
  SIGTRAP,
  SYS,
  sigmaskBit,
  vmWrite,
} from '@criu-ts/sys';
import { RestoreError } from './errors.js';
import { DeathGuard } from './guard.js';
import { HelperProcesses } from './helpers.js';
import { type Call, Injector, type ScratchLayout } from './inject.js';
import type { RestoreRun } from './live.js';
import { type RestorePlan, VMA } from './plan.js';
import { STUB_SYSCALL, startStub, startStubAsSibling } from './stub.js';

const PAGE = BigInt(PAGE_SIZE);
const TABLE_ENTRIES = 1024;
const DATA_SIZE = 1024 * 1024;
const PLACE_FROM = 0x1_0000_0000n;
const USER_TOP = 0x7fff_ffff_f000n;
const STACK_GAP = 4n * 1024n * 1024n;
/** Every signal blocked but SIGTRAP (our int3) while we work. */
const ALL_BUT_TRAP = ~sigmaskBit(SIGTRAP) & 0xffff_ffff_ffff_ffffn;

const pageUp = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

/** Where a vDSO is parked while memory is restored (see mm/restore.ts): right after the scratch area. */
export const parkingOf = (s: ScratchLayout): bigint => s.base + BigInt(s.size) + PAGE;

export function placeStub(run: RestoreRun): void {
  const { plan } = run;
  const stub = run.sibling ? startStubAsSibling(plan.root.pid) : startStub(new Set(plan.ids));
  if (run.sibling) run.created.push(stub.pid);
  run.stub = stub;
  run.traced.add(stub.tid);
  // Its exec runs while the restore goes on; it is needed only at the end (finish.ts).
  run.guard = DeathGuard.start(new Set(plan.ids));
  const size = PAGE_SIZE + pageUp((TABLE_ENTRIES + 1) * 64) + DATA_SIZE;
  const base = chooseScratch(plan, stub.pid, BigInt(size));
  const s: ScratchLayout = {
    base,
    size,
    code: base,
    table: base + PAGE,
    tableEntries: TABLE_ENTRIES,
    data: base + PAGE + BigInt(pageUp((TABLE_ENTRIES + 1) * 64)),
    dataSize: DATA_SIZE,
  };
  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
  const m = stub.syscallAt(STUB_SYSCALL, SYS.mmap, [base, size, PROT_READ | PROT_WRITE, flags, -1, 0]);
  if (m !== base) throw new RestoreError(`cannot map the scratch area at 0x${base.toString(16)}: ${m}`);
  vmWrite(stub.tid, base, codePage(PAGE_SIZE));
  const p = stub.syscallAt(STUB_SYSCALL, SYS.mprotect, [base, PAGE_SIZE, PROT_READ | PROT_EXEC]);
  if (p !== 0n) throw new RestoreError(`cannot make the scratch code executable: errno ${-p}`);
  run.scratch = s;
  run.helpers = new HelperProcesses(stub, s, run.traced);
  // Everything the restored tasks inherit from the stub: no signal delivered while we work, every
  // action SIG_DFL (the shell that started the stub ignores SIGINT and SIGQUIT).
  ptraceSetSigmask(stub.tid, ALL_BUT_TRAP);
  const inj = new Injector(stub, s);
  const dfl = inj.put(Buffer.alloc(32));
  const calls: Call[] = [];
  for (let sig = 1; sig <= 64; sig++)
    if (sig !== 9 && sig !== 19) calls.push([SYS.rt_sigaction, sig, dfl, 0, 8]);
  inj.batch(calls, (i) => `rt_sigaction(${i + 1}) in the stub`);
  run.log.debug(`stub ${stub.pid}, scratch at 0x${base.toString(16)} (${size} bytes)`);
}

/** A hole for the scratch area that no dumped VMA (of any task) and no mapping of the stub uses. */
function chooseScratch(plan: RestorePlan, stubPid: number, size: bigint): bigint {
  const busy: Array<{ start: bigint; end: bigint }> = [];
  for (const t of plan.tasks) {
    for (const v of t.mm?.vmas ?? []) {
      if (v.status & VMA.AREA_VSYSCALL) continue;
      busy.push({ start: v.flags & 0x100 ? v.start - STACK_GAP : v.start, end: v.end });
    }
  }
  const d = ProcDir.open(stubPid);
  try {
    for (const m of d.maps()) if (m.path !== '[vsyscall]') busy.push({ start: m.start, end: m.end });
  } finally {
    d.close();
  }
  busy.sort((a, b) => (a.start < b.start ? -1 : 1));
  // Room for the scratch area and, after it, a parking place for the vDSO (see mm/restore.ts).
  const need = size + 4n * PAGE + 64n * PAGE;
  let lo = PLACE_FROM;
  for (const b of busy) {
    if (b.start > lo && b.start - lo >= need) return lo + PAGE;
    if (b.end > lo) lo = b.end;
  }
  if (USER_TOP - lo >= need) return lo + PAGE;
  throw new RestoreError('no free address range for the restore scratch area');
}
