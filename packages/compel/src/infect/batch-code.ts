// The machine code compel places in a task: a loop that runs a table of syscalls, and a one-syscall stub.
// Hand-assembled x86-64, position independent (rel8 jumps only, no absolute address, no stack, no memory
// but the table). Checked against GNU as in test/batch-code.test.ts (BATCH_ASM below is the source).
//
// Table entry: 8 little-endian u64 = 64 bytes: { nr, a1, a2, a3, a4, a5, a6, result }. nr == -1 ends the
// table. The loop stops at the first result in [-4095, -1] (a failed syscall).
//
// Registers:  in:  rip = code + BATCH_ENTRY, rbx = &table[0], orig_rax = -1 (no syscall restart rewinds
//                  rip into the code on the way in)
//             out: int3 at DONE -> rip = code + BATCH_DONE_RIP, rbx = &terminator
//                  int3 at FAIL -> rip = code + BATCH_FAIL_RIP, rbx = &failing entry, rax = -errno (also in
//                  the entry's result)
// rbx carries the cursor because `syscall` clobbers only rax, rcx and r11, the arguments live in rdi, rsi,
// rdx, r10, r8, r9, and rbx as a base register needs neither a REX.B bit nor a SIB byte.
//
// A signal that interrupts a syscall of the loop is suppressed by the tracer; the kernel then restarts the
// syscall by itself (orig_rax is the real number inside the loop), rewinding rip to the `syscall` at 0x21,
// where rax is reloaded by the kernel from orig_rax and the argument registers are still intact.

import { PAGE_SIZE } from '@criu-ts/sys';

/** The batch loop, 55 bytes. */
// biome-ignore format: one instruction per line, with its offset and its meaning
export const BATCH_CODE = Buffer.from([
  //                                       loop:                         rbx -> current entry
  0x48, 0x8b, 0x03, //                     00: mov   rax, [rbx]          nr
  0x48, 0x83, 0xf8, 0xff, //               03: cmp   rax, -1             end of the table?
  0x74, 0x2c, //                           07: je    done                (0x09 + 0x2c = 0x35)
  0x48, 0x8b, 0x7b, 0x08, //               09: mov   rdi, [rbx+0x08]     a1
  0x48, 0x8b, 0x73, 0x10, //               0d: mov   rsi, [rbx+0x10]     a2
  0x48, 0x8b, 0x53, 0x18, //               11: mov   rdx, [rbx+0x18]     a3
  0x4c, 0x8b, 0x53, 0x20, //               15: mov   r10, [rbx+0x20]     a4
  0x4c, 0x8b, 0x43, 0x28, //               19: mov   r8,  [rbx+0x28]     a5
  0x4c, 0x8b, 0x4b, 0x30, //               1d: mov   r9,  [rbx+0x30]     a6
  0x0f, 0x05, //                           21: syscall                   clobbers rax, rcx, r11
  0x48, 0x89, 0x43, 0x38, //               23: mov   [rbx+0x38], rax     result
  0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, //   27: cmp   rax, -4095          imm32 sign-extended: 0xffff_ffff_ffff_f001
  0x73, 0x07, //                           2d: jae   fail                (0x2f + 0x07 = 0x36); unsigned rax >= -4095
  //                                                                     <=> rax in [-4095, -1]
  0x48, 0x83, 0xc3, 0x40, //               2f: add   rbx, 64             next entry
  0xeb, 0xcb, //                           33: jmp   loop                (0x35 - 0x35 = 0x00)
  //                                       done:
  0xcc, //                                 35: int3                      SIGTRAP, rip = 0x36
  //                                       fail:
  0xcc, //                                 36: int3                      SIGTRAP, rip = 0x37
]);

/** The one-syscall stub: `syscall; int3`. Also poked (as a word) over a task's own code. */
// biome-ignore format: one instruction per line
export const SYSCALL_STUB = Buffer.from([
  0x0f, 0x05, //                           00: syscall
  0xcc, //                                 02: int3                      SIGTRAP, rip = 0x03
]);

/** rip after the stub's int3, relative to where the stub starts. */
export const STUB_TRAP_RIP = 3;

/** Offset of the loop in the code page. */
export const BATCH_ENTRY = 0x00;
/** rip after the int3 at `done` / at `fail`. */
export const BATCH_DONE_RIP = 0x36;
export const BATCH_FAIL_RIP = 0x37;
/** Offset of the one-syscall stub in the code page (after the loop, 8-byte aligned). */
export const STUB_OFFSET = 0x38;

/** Bytes of a table entry and offset of its result. */
export const ENTRY_SIZE = 64;
export const RESULT_OFFSET = 56;

/** The whole code page image: loop at BATCH_ENTRY, stub at STUB_OFFSET, int3 everywhere else. */
export function codePage(pageSize = PAGE_SIZE): Buffer {
  const page = Buffer.alloc(pageSize, 0xcc);
  BATCH_CODE.copy(page, BATCH_ENTRY);
  SYSCALL_STUB.copy(page, STUB_OFFSET);
  return page;
}

/** GNU as source of BATCH_CODE (Intel syntax), for cross-checking the bytes. */
export const BATCH_ASM = `.intel_syntax noprefix
loop: mov rax, [rbx]
 cmp rax, -1
 je done
 mov rdi, [rbx+8]
 mov rsi, [rbx+16]
 mov rdx, [rbx+24]
 mov r10, [rbx+32]
 mov r8, [rbx+40]
 mov r9, [rbx+48]
 syscall
 mov [rbx+56], rax
 cmp rax, -4095
 jae fail
 add rbx, 64
 jmp loop
done: int3
fail: int3
`;
