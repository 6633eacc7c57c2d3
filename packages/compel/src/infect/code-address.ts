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

/** Where the text patch goes: its address, and whether a patch left there by a killed tracer was found. */
export interface Padding {
  addr: bigint;
  /** The bytes hold a text patch a killed tracer left (they were zero before it: restore zeros). */
  stale: boolean;
}

/**
 * An address of `size` bytes in the task's text that it never executes: the zero padding at the end of
 * an executable file mapping (past the last section of its segment; compilers emit no run of zero bytes
 * as code), else at the end of the [vdso] image. Padding that holds a text patch (`signature`: its first
 * bytes) left there by a tracer that was killed counts too. Undefined when there is none. 8-byte aligned.
 */
export function findPadding(
  pid: number,
  maps: readonly MapsEntry[],
  size: number,
  signature: Buffer,
): Padding | undefined {
  const margin = 64;
  const want = size + margin;
  const usable = (m: MapsEntry) =>
    (m.prot & PROT_EXEC) !== 0 && m.end - m.start >= BigInt(want) && !NEVER.has(m.path);
  const candidates = [
    ...maps.filter((m) => usable(m) && m.path.startsWith('/')),
    ...maps.filter((m) => usable(m) && m.path === '[vdso]'),
  ];
  for (const m of candidates) {
    const addr = (m.end - BigInt(size)) & ~7n;
    const at = addr - BigInt(margin);
    const buf = Buffer.alloc(Number(m.end - at));
    try {
      if (readProcMem(pid, at, buf) !== buf.length) continue;
    } catch {
      continue;
    }
    if (!buf.subarray(0, margin).every((b) => b === 0)) continue;
    const rest = buf.subarray(margin);
    if (rest.every((b) => b === 0)) return { addr, stale: false };
    if (rest.subarray(0, signature.length).equals(signature)) return { addr, stale: true };
  }
  return undefined;
}
