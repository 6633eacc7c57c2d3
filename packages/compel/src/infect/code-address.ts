// Where to run a syscall in a task before compel has a code page of its own there: the first bytes of an
// executable mapping of the task (normally the start of its program's text). Not wherever rip points:
// rip may be in the vDSO, at the end of a mapping, or in code another stopped thread is about to run.
import type { MapsEntry } from '@criu-ts/bfd';
import { PROT_EXEC } from '@criu-ts/sys';
import { CompelError } from '../errors.js';
import { readProcMem } from '../memory/index.js';
import { mapsOf } from '../util/proc.js';

// Special mappings that are executable but not ordinary memory of the task: [vsyscall] cannot be written
// at all; [vdso] and [uprobes] are kernel-provided and only a last resort.
const NEVER = new Set(['[vsyscall]']);
const LAST_RESORT = new Set(['[vdso]', '[uprobes]']);

/** Start of the task's first executable mapping that is not [vsyscall] (nor, if avoidable, [vdso]). */
export function findCodeAddress(pid: number, maps: readonly MapsEntry[] = mapsOf(pid)): bigint {
  let fallback: bigint | undefined;
  for (const m of maps) {
    if ((m.prot & PROT_EXEC) === 0 || NEVER.has(m.path)) continue;
    if (LAST_RESORT.has(m.path)) {
      fallback ??= m.start;
      continue;
    }
    return m.start;
  }
  if (fallback !== undefined) return fallback;
  throw new CompelError(`task ${pid} has no executable mapping to run a syscall from`, pid);
}

/**
 * An address of `size` bytes in the task's text that it never executes: the zero padding at the end of
 * an executable file mapping (past the last section of its segment; compilers emit no run of zero bytes
 * as code). Undefined when no mapping has such padding. 8-byte aligned.
 */
export function findPadding(pid: number, maps: readonly MapsEntry[], size: number): bigint | undefined {
  const margin = 64;
  const want = size + margin;
  for (const m of maps) {
    if ((m.prot & PROT_EXEC) === 0 || !m.path.startsWith('/')) continue;
    if (m.end - m.start < BigInt(want)) continue;
    const at = m.end - BigInt(want);
    const buf = Buffer.alloc(want);
    try {
      if (readProcMem(pid, at, buf) !== want) continue;
    } catch {
      continue;
    }
    if (buf.every((b) => b === 0)) return (m.end - BigInt(size)) & ~7n;
  }
  return undefined;
}
