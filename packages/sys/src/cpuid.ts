// CPUID from JavaScript: a 27-byte function placed in an executable page of this process and
// called through koffi. Needed for facts only the CPU knows, such as where each XSAVE
// component sits (leaf 0xD): Intel and AMD lay the same features out differently.
import { mmap, mprotect } from './memory.js';
import { koffi, libc } from './native.js';

const CODE = Buffer.from([
  0x53, //             push rbx               ; cpuid clobbers rbx, which the ABI says we keep
  0x49,
  0x89,
  0xd0, // mov  r8, rdx          ; out pointer (3rd argument)
  0x89,
  0xf8, //       mov  eax, edi         ; leaf
  0x89,
  0xf1, //       mov  ecx, esi         ; sub-leaf
  0x0f,
  0xa2, //       cpuid
  0x41,
  0x89,
  0x00, // mov  [r8], eax
  0x41,
  0x89,
  0x58,
  0x04, // mov [r8+4], ebx
  0x41,
  0x89,
  0x48,
  0x08, // mov [r8+8], ecx
  0x41,
  0x89,
  0x50,
  0x0c, // mov [r8+12], edx
  0x5b, //             pop  rbx
  0xc3, //             ret
]);

const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;
const MAP_PRIVATE_ANON = 0x22;

let fn: { addr: bigint; proto: unknown } | undefined;

function cpuidFunction() {
  if (!fn) {
    const addr = mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE_ANON);
    const memcpy = libc().func('void *memcpy(uint64_t dst, const uint8_t *src, size_t n)');
    memcpy(addr, CODE, CODE.length);
    mprotect(addr, 4096, PROT_READ | PROT_EXEC);
    fn = {
      addr,
      proto: koffi().proto('void criu_ts_cpuid(uint32_t leaf, uint32_t sub, _Out_ uint8_t *out)'),
    };
  }
  return fn;
}

export interface CpuidResult {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** Executes CPUID with `leaf` in eax and `sub` in ecx. */
export function cpuid(leaf: number, sub = 0): CpuidResult {
  const f = cpuidFunction();
  const out = Buffer.alloc(16);
  koffi().call(f.addr, f.proto as never, leaf >>> 0, sub >>> 0, out);
  return {
    eax: out.readUInt32LE(0),
    ebx: out.readUInt32LE(4),
    ecx: out.readUInt32LE(8),
    edx: out.readUInt32LE(12),
  };
}

/** Size and offset of XSAVE component `n` in the standard (non-compacted) format. */
export function xsaveComponent(n: number): { size: number; offset: number } {
  const r = cpuid(0xd, n);
  return { size: r.eax, offset: r.ebx };
}
