// Encoders and decoders against the kernel's own UAPI headers, compiled with gcc on this machine.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLONE_ARGS_SIZE_VER2,
  CLONE_CLEAR_SIGHAND,
  CLONE_INTO_CGROUP,
  CLONE_PARENT,
  CLONE_PIDFD,
  CLONE_VM,
  decodeCloneArgs,
  encodeCloneArgs,
  encodeSockDiagRequest,
  IPPROTO_TCP,
  SIGCHLD,
  SIGRTMIN,
  SYS,
  signalName,
  signalNumber,
  syscallName,
  USER_REGS_NAMES,
  USER_REGS_SIZE,
  UserRegs,
} from '../src/index.js';
import { cleanup, compileFixture, makeTempDir } from './helpers.js';

let layout: Record<string, number>;

beforeAll(() => {
  const bin = compileFixture('layout', makeTempDir());
  layout = JSON.parse(execFileSync(bin, { encoding: 'utf8' })) as Record<string, number>;
});
afterAll(cleanup);

describe('clone3 arguments', () => {
  it('match struct clone_args field by field', () => {
    expect(layout['sizeof clone_args']).toBe(CLONE_ARGS_SIZE_VER2);
    const b = encodeCloneArgs(
      {
        flags: CLONE_PIDFD | CLONE_PARENT | CLONE_CLEAR_SIGHAND,
        pidfd: 0x1111n,
        childTid: 0x2222n,
        parentTid: 0x3333n,
        exitSignal: SIGCHLD,
        stack: 0x4444n,
        stackSize: 0x5555,
        tls: 0x6666n,
        cgroup: 9,
      },
      { base: 0x7000n },
    );
    expect(b.length).toBe(88);
    const at = (f: string) => b.readBigUInt64LE(layout[`clone_args.${f}`] as number);
    expect(at('flags')).toBe(CLONE_PIDFD | CLONE_PARENT | CLONE_CLEAR_SIGHAND);
    expect(at('pidfd')).toBe(0x1111n);
    expect(at('child_tid')).toBe(0x2222n);
    expect(at('parent_tid')).toBe(0x3333n);
    expect(at('exit_signal')).toBe(17n);
    expect(at('stack')).toBe(0x4444n);
    expect(at('stack_size')).toBe(0x5555n);
    expect(at('tls')).toBe(0x6666n);
    expect(at('set_tid')).toBe(0n);
    expect(at('set_tid_size')).toBe(0n);
    expect(at('cgroup')).toBe(9n);
  });

  it('lays the set_tid array out after the struct, addressed from `base`', () => {
    const b = encodeCloneArgs(
      { flags: CLONE_VM | CLONE_INTO_CGROUP, setTid: [4242, 17, 1] },
      { base: 0x10000n },
    );
    expect(b.length).toBe(88 + 12);
    const d = decodeCloneArgs(b);
    expect(d.flags).toBe(CLONE_VM | CLONE_INTO_CGROUP);
    expect(d.setTidAddress).toBe(0x10000n + 88n);
    expect(d.setTidSize).toBe(3);
    expect([b.readInt32LE(88), b.readInt32LE(92), b.readInt32LE(96)]).toEqual([4242, 17, 1]);
    // Without base the pointer is the Buffer's own address + 88 (for a local clone3).
    const local = encodeCloneArgs({ setTid: [5] });
    expect(decodeCloneArgs(local).setTidAddress).toBeGreaterThan(88n);
    // A caller-placed array.
    const placed = decodeCloneArgs(encodeCloneArgs({ setTidAddress: 0xabc000n, setTidSize: 2 }));
    expect([placed.setTidAddress, placed.setTidSize]).toEqual([0xabc000n, 2]);
    expect(() => encodeCloneArgs({ setTid: [1], setTidAddress: 1n })).toThrow(TypeError);
  });
});

describe('struct sizes used by the bindings', () => {
  it('match the headers', () => {
    expect(layout['sizeof user_regs_struct']).toBe(USER_REGS_SIZE);
    expect(layout['user_regs_struct.orig_rax']).toBe(USER_REGS_NAMES.indexOf('orig_rax') * 8);
    expect(layout['user_regs_struct.rip']).toBe(USER_REGS_NAMES.indexOf('rip') * 8);
    expect(layout['user_regs_struct.fs_base']).toBe(USER_REGS_NAMES.indexOf('fs_base') * 8);
    expect(layout['sizeof stat']).toBe(144);
    expect(layout['stat.st_size']).toBe(48);
    expect(layout['stat.st_mtim']).toBe(88);
    expect(layout['sizeof statx']).toBe(256);
    expect(layout['statx.stx_mnt_id']).toBe(144);
    expect(layout['sizeof msghdr']).toBe(56);
    expect(layout['sizeof siginfo_t']).toBe(128);
    expect(layout['sizeof ptrace_syscall_info']).toBeLessThanOrEqual(128);
    expect(layout['ptrace_syscall_info.seccomp.ret_data']).toBe(80);
  });

  it('sock_diag requests have the header sizes and field offsets', () => {
    const unix = encodeSockDiagRequest({ family: 'unix', ino: 77, show: 5, states: 0x400 }, 9);
    expect(unix.length).toBe(16 + (layout['sizeof unix_diag_req'] as number));
    expect(unix.readUInt32LE(16 + (layout['unix_diag_req.udiag_ino'] as number))).toBe(77);
    expect(unix.readUInt32LE(16 + (layout['unix_diag_req.udiag_show'] as number))).toBe(5);
    expect(unix.readUInt32LE(16 + (layout['unix_diag_req.udiag_states'] as number))).toBe(0x400);
    expect(unix.readUInt32LE(8)).toBe(9);
    const inet = encodeSockDiagRequest({ family: 'inet', protocol: IPPROTO_TCP }, 1);
    expect(inet.length).toBe(16 + (layout['sizeof inet_diag_req_v2'] as number));
    expect(layout['sizeof inet_diag_msg']).toBe(72);
    expect(layout['inet_diag_msg.idiag_inode']).toBe(68);
  });
});

describe('UserRegs', () => {
  it('named accessors address the right slots', () => {
    const r = new UserRegs();
    USER_REGS_NAMES.forEach((n, i) => {
      r.set(n, BigInt(i + 1) * 0x0101010101n);
    });
    expect(r.rax).toBe(11n * 0x0101010101n);
    expect(r.buffer.readBigUInt64LE(layout['user_regs_struct.rip'] as number)).toBe(r.rip);
    r.orig_rax = -1n & 0xffffffffffffffffn;
    expect(r.getSigned('orig_rax')).toBe(-1n);
    r.set('rax', -38n);
    expect(r.rax).toBe(0xffffffffffffffdan);
    expect(r.clone().toObject()).toEqual(r.toObject());
    expect(r.toJSON().rip).toBe(`0x${r.rip.toString(16)}`);
    expect(() => new UserRegs(Buffer.alloc(8))).toThrow(RangeError);
  });
});

describe('tables', () => {
  const header = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
  it.skipIf(!fs.existsSync(header))('syscall numbers match asm/unistd_64.h', () => {
    const defs = [...fs.readFileSync(header, 'utf8').matchAll(/#define __NR_(\w+) (\d+)/g)];
    expect(defs.length).toBeGreaterThan(300);
    for (const [, name, nr] of defs) {
      expect((SYS as Record<string, number>)[name as string], name).toBe(Number(nr));
    }
    expect(SYS.clone3).toBe(435);
    expect(SYS.pidfd_getfd).toBe(438);
    expect(SYS.rseq).toBe(334);
    expect(syscallName(257)).toBe('openat');
    expect(syscallName(100000)).toBeUndefined();
  });

  it('signal names', () => {
    expect(signalName(9)).toBe('SIGKILL');
    expect(signalName(17)).toBe('SIGCHLD');
    expect(signalName(SIGRTMIN)).toBe('SIGRTMIN');
    expect(signalName(35)).toBe('SIGRTMIN+3');
    expect(signalName(64)).toBe('SIGRTMAX');
    expect(signalName(0)).toBe('SIG0');
    expect(signalNumber('SIGTERM')).toBe(15);
    expect(signalNumber('USR1')).toBe(10);
    expect(signalNumber('SIGRTMIN+3')).toBe(35);
    expect(signalNumber('SIGPOLL')).toBe(29);
    expect(signalNumber('SIGNOPE')).toBeUndefined();
    for (let s = 1; s <= 64; s++) expect(signalNumber(signalName(s))).toBe(s);
  });
});
