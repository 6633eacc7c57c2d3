import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  __WALL,
  CLD_KILLED,
  close,
  fstat,
  getFdOfProcess,
  getpid,
  isSyscallStop,
  KCMP_FILE,
  KCMP_VM,
  kcmp,
  kill,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  mmap,
  munmap,
  O_CLOEXEC,
  O_RDONLY,
  open,
  P_PID,
  PROT_READ,
  PROT_WRITE,
  PTRACE_EVENT_FORK,
  PTRACE_EVENT_STOP,
  PTRACE_O_TRACEFORK,
  PTRACE_O_TRACESYSGOOD,
  PTRACE_SYSCALL_INFO_ENTRY,
  PTRACE_SYSCALL_INFO_EXIT,
  PTRACE_SYSCALL_INFO_NONE,
  pidfdGetfd,
  pidfdOpen,
  pidfdSendSignal,
  pread,
  processVmReadv,
  processVmWritev,
  ptraceCont,
  ptraceDetach,
  ptraceGetEventMsg,
  ptraceGetFpregs,
  ptraceGetRegs,
  ptraceGetRseqConfiguration,
  ptraceGetSiginfo,
  ptraceGetSigmask,
  ptraceGetSyscallInfo,
  ptraceGetThreadArea,
  ptraceGetXstate,
  ptraceInterrupt,
  ptraceListen,
  ptracePeekData,
  ptracePeekSiginfo,
  ptracePokeData,
  ptraceSeccompGetFilter,
  ptraceSeize,
  ptraceSetOptions,
  ptraceSetRegs,
  ptraceSetSigmask,
  ptraceSetXstate,
  ptraceSyscall,
  SIGKILL,
  SIGSTOP,
  SIGTRAP,
  SIGUSR1,
  SIGUSR2,
  SysError,
  sigmaskBit,
  tgkill,
  UserRegs,
  type VmIovec,
  vmRead,
  vmWrite,
  type WaitStatus,
  WEXITED,
  waitid,
  waitpid,
  waitpidNoHang,
} from '../src/index.js';
import {
  cleanup,
  cleanupProcesses,
  compileFixture,
  forget,
  makeTempDir,
  patternByte,
  procState,
  startReadyTarget,
  type TargetInfo,
  trackPid,
  waitFor,
} from './helpers.js';

let dir: string;
let bin: string;

beforeAll(() => {
  dir = makeTempDir();
  bin = compileFixture('target', dir);
});
afterEach(cleanupProcesses);
afterAll(cleanup);

async function target(extra: string[] = []): Promise<TargetInfo> {
  return startReadyTarget(bin, dir, extra);
}

/** Seize and interrupt; returns the PTRACE_EVENT_STOP status. */
function seizeStopped(pid: number, options = 0): WaitStatus {
  ptraceSeize(pid, options);
  ptraceInterrupt(pid);
  const st = waitpid(pid);
  if (!st) throw new Error('no status');
  return st;
}

function procMem(pid: number, addr: bigint, len: number): Buffer {
  const fd = open(`/proc/${pid}/mem`, O_RDONLY | O_CLOEXEC);
  try {
    const b = Buffer.alloc(len);
    expect(pread(fd, b, len, addr)).toBe(len);
    return b;
  } finally {
    close(fd);
  }
}

function mapsOf(pid: number): { start: bigint; end: bigint; perms: string; name: string }[] {
  return fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [range, perms, , , , name] = line.split(/\s+/);
      const [s, e] = (range ?? '').split('-');
      return { start: BigInt(`0x${s}`), end: BigInt(`0x${e}`), perms: perms ?? '', name: name ?? '' };
    });
}

describe('seize / interrupt / registers', () => {
  it('stops a seized task with PTRACE_EVENT_STOP and reads its registers', async () => {
    const t = await target();
    const st = seizeStopped(t.pid);
    expect(st.stopped).toBe(true);
    expect(st.stopSignal).toBe(SIGTRAP);
    expect(st.event).toBe(PTRACE_EVENT_STOP);
    expect(procState(t.pid)).toBe('t');

    const regs = ptraceGetRegs(t.pid);
    expect(regs.cs).toBe(0x33n);
    expect(regs.ss).toBe(0x2bn);
    const maps = mapsOf(t.pid);
    const code = maps.find((m) => regs.rip >= m.start && regs.rip < m.end);
    expect(code?.perms).toContain('x');
    const stack = maps.find((m) => m.name === '[stack]');
    expect(stack && regs.rsp >= stack.start && regs.rsp < stack.end).toBe(true);
    expect(regs.fs_base).not.toBe(0n);

    // The same registers through GET_SYSCALL_INFO, and the siginfo of the event stop.
    const info = ptraceGetSyscallInfo(t.pid);
    expect(info.op).toBe(PTRACE_SYSCALL_INFO_NONE);
    expect(info.arch).toBe(0xc000003e);
    expect(info.instructionPointer).toBe(regs.rip);
    expect(info.stackPointer).toBe(regs.rsp);
    const si = ptraceGetSiginfo(t.pid);
    expect(si.signo).toBe(SIGTRAP);
    expect(si.code).toBe((PTRACE_EVENT_STOP << 8) | SIGTRAP);
    expect(si.raw.length).toBe(128);
  });

  it('SETREGSET round-trips, and a detached task runs on', async () => {
    const t = await target();
    seizeStopped(t.pid);
    const saved = ptraceGetRegs(t.pid);
    const changed = saved.clone().set('r15', 0x1122334455667788n).set('orig_rax', -1n);
    ptraceSetRegs(t.pid, changed);
    const back = ptraceGetRegs(t.pid, new UserRegs());
    expect(back.r15).toBe(0x1122334455667788n);
    expect(back.getSigned('orig_rax')).toBe(-1n);
    ptraceSetRegs(t.pid, saved);
    expect(ptraceGetRegs(t.pid).toObject()).toEqual(saved.toObject());

    const xs = ptraceGetXstate(t.pid);
    expect(xs.length).toBeGreaterThanOrEqual(576); // legacy area + XSAVE header
    expect(xs.readBigUInt64LE(464) & 3n).toBe(3n); // XCR0 (x87 | SSE) as ptrace reports it
    ptraceSetXstate(t.pid, xs);
    expect(ptraceGetXstate(t.pid).equals(xs)).toBe(true);
    expect(ptraceGetFpregs(t.pid).length).toBe(512);

    ptraceDetach(t.pid);
    await waitFor(() => procState(t.pid) === 'S' || procState(t.pid) === 'R', 'detached target to run');
    // It still works: its memory is still the pattern.
    expect(vmRead(t.pid, t.mem, Buffer.alloc(16))).toBe(16);
  });

  it('signal masks, pending signals, rseq and TLS descriptors', async () => {
    const t = await target();
    seizeStopped(t.pid);
    const mask = ptraceGetSigmask(t.pid);
    expect(mask & sigmaskBit(SIGUSR1)).toBe(sigmaskBit(SIGUSR1));
    ptraceSetSigmask(t.pid, mask | sigmaskBit(SIGUSR2));
    expect(ptraceGetSigmask(t.pid)).toBe(mask | sigmaskBit(SIGUSR2));
    ptraceSetSigmask(t.pid, mask);

    kill(t.pid, SIGUSR1); // blocked by the target: stays in the shared queue
    tgkill(t.pid, t.pid, SIGUSR1); // and one in the thread's private queue
    const shared = ptracePeekSiginfo(t.pid, { shared: true });
    expect(shared.map((s) => [s.signo, s.code, s.pid])).toEqual([[SIGUSR1, 0, getpid()]]);
    const priv = ptracePeekSiginfo(t.pid);
    expect(priv.map((s) => [s.signo, s.code, s.pid])).toEqual([[SIGUSR1, -6, getpid()]]); // SI_TKILL
    expect(ptracePeekSiginfo(t.pid, { shared: true, offset: 1 })).toEqual([]);

    const rseq = ptraceGetRseqConfiguration(t.pid);
    expect(rseq.rseqAbiPointer).not.toBe(0n); // glibc >= 2.35 registers rseq
    expect(rseq.signature).toBe(0x53053053);
    expect(rseq.rseqAbiSize).toBeGreaterThanOrEqual(20);

    const tls = ptraceGetThreadArea(t.pid, 12);
    expect(tls.entryNumber).toBe(12);
    expect(tls.raw.length).toBe(16);
  });

  it('PTRACE_SYSCALL stops at a syscall with TRACESYSGOOD', async () => {
    const t = await target();
    seizeStopped(t.pid);
    ptraceSetOptions(t.pid, PTRACE_O_TRACESYSGOOD);
    ptraceSyscall(t.pid);
    const st = waitpid(t.pid);
    expect(st && isSyscallStop(st)).toBe(true);
    const info = ptraceGetSyscallInfo(t.pid);
    expect([PTRACE_SYSCALL_INFO_ENTRY, PTRACE_SYSCALL_INFO_EXIT]).toContain(info.op);
    if (info.op === PTRACE_SYSCALL_INFO_ENTRY) {
      expect(info.nr).toBe(ptraceGetRegs(t.pid).orig_rax);
      expect(info.args).toHaveLength(6);
    }
  });

  it('fork events: GETEVENTMSG names the new child, auto-attached', async () => {
    const t = await target();
    seizeStopped(t.pid, PTRACE_O_TRACEFORK);
    ptraceCont(t.pid);
    kill(t.pid, SIGUSR2); // the target forks on SIGUSR2
    // First the signal-delivery stop for SIGUSR2 (pass it on), then the fork event.
    let st = waitpid(t.pid);
    while (st?.stopped && st.event === 0) {
      ptraceCont(t.pid, st.stopSignal);
      st = waitpid(t.pid);
    }
    expect(st?.event).toBe(PTRACE_EVENT_FORK);
    const child = Number(ptraceGetEventMsg(t.pid));
    trackPid(child);
    expect(child).toBeGreaterThan(0);
    const cst = waitpid(child);
    expect(cst?.stopped).toBe(true);
    expect(cst?.event).toBe(PTRACE_EVENT_STOP);
    expect(fs.readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]).toBe(String(t.pid));
  });

  it('LISTEN keeps a group-stopped task stopped but reporting', async () => {
    const t = await target();
    ptraceSeize(t.pid);
    kill(t.pid, SIGSTOP);
    let st = waitpid(t.pid); // signal-delivery stop of SIGSTOP
    expect(st?.stopSignal).toBe(SIGSTOP);
    expect(st?.event).toBe(0);
    ptraceCont(t.pid, SIGSTOP); // let it enter group-stop
    st = waitpid(t.pid);
    expect(st?.stopSignal).toBe(SIGSTOP);
    expect(st?.event).toBe(PTRACE_EVENT_STOP);
    ptraceListen(t.pid);
    expect(waitpidNoHang(t.pid)).toBeNull();
    kill(t.pid, 18); // SIGCONT wakes it: the tracer hears about it
    st = waitpid(t.pid);
    expect(st?.stopped).toBe(true);
  });
});

describe('memory', () => {
  it('process_vm_readv matches /proc/PID/mem and the known pattern', async () => {
    const t = await target();
    seizeStopped(t.pid);
    const len = 64 * 1024;
    const buf = Buffer.alloc(len);
    expect(vmRead(t.pid, t.mem + 4096n, buf)).toBe(len);
    expect(buf.equals(procMem(t.pid, t.mem + 4096n, len))).toBe(true);
    for (let i = 0; i < len; i += 997) expect(buf[i]).toBe(patternByte(4096 + i));
    const marker = Buffer.alloc(18);
    vmRead(t.pid, t.marker, marker);
    expect(marker.toString()).toBe('criu-ts-sys-marker');
    expect(ptracePeekData(t.pid, t.marker)).toBe(marker.readBigUInt64LE(0));
  });

  it('batches more than IOV_MAX iovecs', async () => {
    const t = await target();
    const n = 3000;
    const piece = 1000;
    const local = Buffer.alloc(n * piece);
    // Remote pieces in reverse order, each into its own slot of one local buffer.
    const iovs: VmIovec[] = Array.from({ length: n }, (_, i) => ({
      local,
      offset: i * piece,
      remote: t.mem + BigInt((n - 1 - i) * piece),
      len: piece,
    }));
    expect(processVmReadv(t.pid, iovs)).toBe(n * piece);
    const whole = procMem(t.pid, t.mem, n * piece);
    for (const i of [0, 1, 1023, 1024, 1025, 2047, 2048, 2999]) {
      const want = whole.subarray((n - 1 - i) * piece, (n - i) * piece);
      expect(local.subarray(i * piece, (i + 1) * piece).equals(want), `iovec ${i}`).toBe(true);
    }
  });

  it('reads into memory given by address (an mmap of this process)', async () => {
    const t = await target();
    const len = 8192;
    const addr = mmap(0n, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    try {
      expect(processVmReadv(t.pid, [{ local: addr, remote: t.mem, len }])).toBe(len);
      const copy = Buffer.alloc(len);
      expect(processVmReadv(process.pid, [{ local: copy, remote: addr }])).toBe(len);
      expect(copy.equals(procMem(t.pid, t.mem, len))).toBe(true);
      expect(() => processVmReadv(t.pid, [{ local: addr, remote: t.mem }])).toThrow(RangeError);
    } finally {
      munmap(addr, len);
    }
  });

  it('reports partial transfers and EFAULT', async () => {
    const t = await target();
    const a = Buffer.alloc(4096);
    const b = Buffer.alloc(4096);
    const unmapped = 0x1000n; // the zero page region is never mapped
    expect(
      processVmReadv(t.pid, [
        { local: a, remote: t.mem },
        { local: b, remote: unmapped },
      ]),
    ).toBe(4096);
    let err: unknown;
    try {
      processVmReadv(t.pid, [{ local: a, remote: unmapped }]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).code).toBe('EFAULT');
    expect((err as SysError).message).toBe(`process_vm_readv(pid ${t.pid}): EFAULT (Bad address)`);
  });

  it('process_vm_writev and POKEDATA write into the task', async () => {
    const t = await target();
    seizeStopped(t.pid);
    const data = Buffer.from('written by criu-ts through process_vm_writev');
    expect(vmWrite(t.pid, t.mem + 100n, data)).toBe(data.length);
    expect(procMem(t.pid, t.mem + 100n, data.length).equals(data)).toBe(true);
    expect(processVmWritev(t.pid, [{ local: data, offset: 8, len: 2, remote: t.mem }])).toBe(2);
    expect(procMem(t.pid, t.mem, 2).toString()).toBe('by');
    ptracePokeData(t.pid, t.mem + 8n, 0xfeedfacecafebeefn);
    expect(ptracePeekData(t.pid, t.mem + 8n)).toBe(0xfeedfacecafebeefn);
  });
});

describe('pidfd, kcmp, seccomp, waitid', () => {
  it('pidfd_getfd copies a known fd of the task', async () => {
    const t = await target();
    const fd = getFdOfProcess(t.pid, 7);
    try {
      const st = fstat(fd);
      const ref = fs.statSync(t.openFile, { bigint: true });
      expect(st.ino).toBe(ref.ino);
      expect(st.dev).toBe(ref.dev);
      expect(kcmp(t.pid, process.pid, KCMP_FILE, 7, fd)).toBe(0);
      expect(kcmp(t.pid, t.pid, KCMP_VM)).toBe(0);
      expect(kcmp(t.pid, process.pid, KCMP_VM)).not.toBe(0);
    } finally {
      close(fd);
    }
    const pidfd = pidfdOpen(t.pid);
    try {
      expect(() => pidfdGetfd(pidfd, 999)).toThrowError(/^pidfd_getfd\(pidfd \d+, fd 999\): EBADF/);
      pidfdSendSignal(pidfd, SIGKILL);
      const r = waitid(P_PID, t.pid, WEXITED | __WALL);
      forget(t.pid);
      expect(r?.pid).toBe(t.pid);
      expect(r?.code).toBe(CLD_KILLED);
      expect(r?.status).toBe(SIGKILL);
    } finally {
      close(pidfd);
    }
  });

  it('SECCOMP_GET_FILTER returns the installed BPF program', async () => {
    const t = await target(['seccomp']);
    seizeStopped(t.pid);
    const prog = ptraceSeccompGetFilter(t.pid, 0);
    const insns = Array.from({ length: prog.length / 8 }, (_, i) => [
      prog.readUInt16LE(i * 8),
      prog[i * 8 + 2],
      prog[i * 8 + 3],
      prog.readUInt32LE(i * 8 + 4),
    ]);
    expect(insns).toEqual([
      [0x20, 0, 0, 0], // ld [nr]
      [0x15, 0, 1, 999999], // jeq #999999
      [0x06, 0, 0, 0x00050001], // ret ERRNO(1)
      [0x06, 0, 0, 0x7fff0000], // ret ALLOW
    ]);
    expect(() => ptraceSeccompGetFilter(t.pid, 1)).toThrowError(/ENOENT/);
  });

  it('waitpid WNOHANG returns null while nothing changed', async () => {
    const t = await target();
    expect(waitpidNoHang(t.pid)).toBeNull();
  });
});
