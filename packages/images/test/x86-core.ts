// Sample messages shared by the tests and the images benchmark (tools/bench/images/run.ts).
import type { CoreEntry } from '../src/index.js';

export const range = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

/**
 * A realistic x86-64 core_entry, as criu dump writes for a thread blocked in a syscall: gpregs, fpregs
 * with xsave, TLS, tc with timers and rlimits, thread_core with creds and sigmask; its addresses and
 * comm vary with `tid`.
 */
export function x86Core(tid: number): CoreEntry {
  const itimer = { isec: 0n, iusec: 0n, vsec: 0n, vusec: 0n };
  return {
    mtype: 1, // X86_64
    thread_info: {
      clear_tid_addr: 0x7f3a5c1d2a10n + BigInt(tid),
      gpregs: {
        r15: 0n,
        r14: 0x7ffd1c2b3a40n,
        r13: 0x55d0c0ffee00n,
        r12: 1n,
        bp: 0x7ffd1c2b3960n,
        bx: 0n,
        r11: 0x246n,
        r10: 0n,
        r9: 0n,
        r8: 0n,
        ax: 0xfffffffffffffdfcn,
        cx: 0x7f3a5c0e6b3an,
        dx: 0n,
        si: 0x80n,
        di: 0x3n,
        orig_ax: 0xe6n,
        ip: 0x7f3a5c0e6b3an,
        cs: 0x33n,
        flags: 0x246n,
        sp: 0x7ffd1c2b3900n - BigInt(tid * 0x100),
        ss: 0x2bn,
        fs_base: 0x7f3a5c1d2740n,
        gs_base: 0n,
        ds: 0n,
        es: 0n,
        fs: 0n,
        gs: 0n,
        mode: 1,
      },
      fpregs: {
        cwd: 0x37f,
        swd: 0,
        twd: 0,
        fop: 0,
        rip: 0n,
        rdp: 0n,
        mxcsr: 0x1f80,
        mxcsr_mask: 0x2ffff,
        st_space: range(32, (i) => (i * 0x01010101) >>> 0),
        xmm_space: range(64, (i) => (i % 3 === 0 ? 0 : (0xdeadbeef ^ i) >>> 0)),
        padding: range(24, () => 0),
        xsave: { xstate_bv: 7n, ymmh_space: range(64, (i) => (i % 5 === 0 ? 0 : i * 0x10001)) },
      },
      tls: range(3, (i) => ({
        entry_number: 12 + i,
        base_addr: 0,
        limit: 0xfffff,
        seg_32bit: true,
        contents_h: false,
        contents_l: false,
        read_exec_only: true,
        limit_in_pages: true,
        seg_not_present: true,
        usable: false,
      })),
    },
    tc: {
      task_state: 1,
      exit_code: 0,
      personality: 0,
      flags: 0x400100,
      blk_sigset: 0n,
      comm: 'bash',
      timers: { real: itimer, virt: itimer, prof: itimer },
      rlimits: { rlimits: range(16, (i) => ({ cur: BigInt(i * 1024), max: 0xffffffffffffffffn })) },
      cg_set: 1,
      loginuid: 1000,
      oom_score_adj: 0,
      child_subreaper: false,
    },
    thread_core: {
      futex_rla: 0x7f3a5c1d2a20n,
      futex_rla_len: 24,
      sched_nice: 0,
      sched_policy: 0,
      blk_sigset: 0x10000n,
      sas: { ss_sp: 0n, ss_size: 0n, ss_flags: 2 },
      pdeath_sig: 0,
      creds: {
        uid: 1000,
        gid: 1000,
        euid: 1000,
        egid: 1000,
        suid: 1000,
        sgid: 1000,
        fsuid: 1000,
        fsgid: 1000,
        cap_inh: [0, 0],
        cap_prm: [0, 0],
        cap_eff: [0, 0],
        cap_bnd: [0xffffffff, 0x1ff],
        secbits: 0,
        groups: [4, 24, 27, 1000],
        no_new_privs: 0,
      },
      comm: `worker-${tid}`,
    },
  };
}
