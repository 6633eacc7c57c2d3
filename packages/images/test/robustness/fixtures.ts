// Valid images of many kinds, written with ImageDir/ImageWriter, for the robustness tests to
// corrupt. Every fixture is read back once (readImage) so a broken fixture fails loudly.
import { join } from 'node:path';
import {
  type CoreEntry,
  ImageDir,
  ImageWriter,
  type IpcMessage,
  type MagicName,
  PAGE_SIZE,
  readImage,
} from '../../src/index.js';

export interface Fixture {
  /** What it is, for failure messages: "core", "pagemap", "ghost-chunked". */
  name: string;
  /** File name inside the fixture directory. */
  file: string;
  magic: MagicName;
  /** Byte offset of every entry's length word, from a read of the valid image. */
  entryOffsets: number[];
}

const range = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

/** A realistic x86-64 core_entry: gpregs, fpregs with xsave, TLS, tc with timers/rlimits, creds. */
export function x86Core(tid: number): CoreEntry {
  const itimer = { isec: 0n, iusec: 0n, vsec: 0n, vusec: 0n };
  return {
    mtype: 1, // X86_64
    thread_info: {
      clear_tid_addr: 0x7f3a5c1d2a10n,
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
        sp: 0x7ffd1c2b3900n,
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
        xsave: { xstate_bv: 7n, ymmh_space: range(64, (i) => i) },
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

const fown = { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 };
const desc = (id: number) => ({ key: 0x1234 + id, uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600, id });
const bytes = (n: number, seed: number) => Buffer.from(range(n, (i) => (i * 31 + seed) & 0xff));

/**
 * Writes one valid image of each kind into `dir` (which must exist) and returns them.
 * The pagemap's pages-1.img is written too (not a fixture: it has no magic).
 */
export function writeFixtures(path: string): Fixture[] {
  const dir = ImageDir.create(path);
  const out: Array<Omit<Fixture, 'entryOffsets'>> = [];
  const add = (name: string, pattern: string, id: number | undefined, magic: MagicName) =>
    out.push({ name, file: dir.fileName(pattern, id).slice(path.length + 1), magic });

  dir.write('inventory', undefined, [
    {
      img_version: 2,
      fdinfo_per_id: true,
      root_ids: { vm_id: 1, files_id: 1, fs_id: 1, sighand_id: 1, pid_ns_id: 2, net_ns_id: 3 },
      ns_per_id: true,
      root_cg_set: 1,
      lsmtype: 0,
      dump_uptime: 123456789n,
      tcp_close: false,
      network_lock_method: 1,
      plugins_entry: { plugins: ['amdgpu'] },
      dump_criu_run_id: 'a1b2c3',
    },
  ]);
  add('inventory', 'inventory', undefined, 'INVENTORY');

  dir.write('core-%u', 42, [x86Core(42)]);
  add('core', 'core-%u', 42, 'CORE');

  dir.write('mm-%u', 42, [
    {
      mm_start_code: 0x55d0c0000000n,
      mm_end_code: 0x55d0c00f0000n,
      mm_start_data: 0x55d0c0200000n,
      mm_end_data: 0x55d0c0210000n,
      mm_start_stack: 0x7ffd1c2b4000n,
      mm_start_brk: 0x55d0c1000000n,
      mm_brk: 0x55d0c1021000n,
      mm_arg_start: 0x7ffd1c2b5000n,
      mm_arg_end: 0x7ffd1c2b5010n,
      mm_env_start: 0x7ffd1c2b5010n,
      mm_env_end: 0x7ffd1c2b5ff0n,
      exe_file_id: 7,
      mm_saved_auxv: range(38, (i) => BigInt(i * 0x1000)),
      vmas: range(12, (i) => ({
        start: 0x7f0000000000n + BigInt(i) * 0x10000n,
        end: 0x7f0000000000n + BigInt(i) * 0x10000n + 0x8000n,
        pgoff: BigInt(i),
        shmid: 0n,
        prot: i % 4,
        flags: 0x22,
        status: i % 2 === 0 ? 0x201 : 0x41,
        fd: -1n,
        madv: 0n,
        fdflags: 0,
      })),
      dumpable: 1,
      thp_disabled: false,
    },
  ]);
  add('mm', 'mm-%u', 42, 'MM');

  dir.write(
    'pstree',
    undefined,
    range(20, (i) => ({ pid: 100 + i, ppid: i === 0 ? 0 : 100, pgid: 100, sid: 100, threads: [100 + i] })),
  );
  add('pstree', 'pstree', undefined, 'PSTREE');

  dir.write(
    'files',
    undefined,
    range(10, (i) => ({
      type: 1, // REG
      id: i + 1,
      reg: { id: i + 1, flags: 0o2, pos: BigInt(i * 100), fown, name: `/var/log/file-${i}.log`, mnt_id: 20 },
    })),
  );
  add('files', 'files', undefined, 'FILES');

  dir.write(
    'fdinfo-%u',
    2,
    range(5, (i) => ({ id: i + 1, flags: 0, type: 1, fd: i })),
  );
  add('fdinfo', 'fdinfo-%u', 2, 'FDINFO');

  const pm = dir.pageMapWriter(42, 1);
  for (let i = 0; i < 1000; i++) {
    const vaddr = 0x7f0000000000n + BigInt(i) * 0x10000n;
    if (i % 10 === 9) pm.addParent(vaddr, 1);
    else pm.addPresent(vaddr, 2, Buffer.alloc(2 * PAGE_SIZE, i & 0xff));
  }
  pm.close();
  add('pagemap', 'pagemap-%lu', 42, 'PAGEMAP');

  dir.write(
    'pipes-data',
    undefined,
    [
      { pipe_id: 1, bytes: 0 },
      { pipe_id: 2, bytes: 100, size: 65536 },
      { pipe_id: 3, bytes: 5000 },
    ],
    [Buffer.alloc(0), bytes(100, 1), bytes(5000, 2)],
  );
  add('pipes-data', 'pipes-data', undefined, 'PIPES_DATA');

  dir.write(
    'tcp-stream-%x',
    0xab,
    [
      {
        inq_len: 37,
        inq_seq: 1000,
        outq_len: 300,
        outq_seq: 2000,
        opt_mask: 7,
        snd_wscale: 7,
        mss_clamp: 1460,
        rcv_wscale: 7,
        timestamp: 12345,
        nodelay: true,
        unsq_len: 0,
      },
    ],
    [{ inq: bytes(37, 3), outq: bytes(300, 4) }],
  );
  add('tcp-stream', 'tcp-stream-%x', 0xab, 'TCP_STREAM');

  const plain = new ImageWriter(dir.fileName('ghost-file-%x', 1), 'GHOST_FILE');
  plain.write({ uid: 0, gid: 0, mode: 0o100644, dev: 2049, ino: 1234n, size: 700n }, bytes(700, 5));
  plain.close();
  add('ghost-plain', 'ghost-file-%x', 1, 'GHOST_FILE');

  const chunked = new ImageWriter(dir.fileName('ghost-file-%x', 2), 'GHOST_FILE');
  chunked.write({ uid: 0, gid: 0, mode: 0o100600, chunks: true, size: 3n * 8192n });
  for (let i = 0; i < 3; i++)
    chunked.write({ len: 1000n + BigInt(i), off: BigInt(i) * 8192n }, bytes(1000 + i, i));
  chunked.close();
  add('ghost-chunked', 'ghost-file-%x', 2, 'GHOST_FILE');

  dir.write(
    'ipcns-sem-%u',
    5,
    [
      { desc: desc(1), nsems: 3 },
      { desc: desc(2), nsems: 4 },
    ],
    [
      [1, 2, 3],
      [0, 65535, 7, 8],
    ],
  );
  add('ipcns-sem', 'ipcns-sem-%u', 5, 'IPCNS_SEM');

  const msgs = (n: number): IpcMessage[] =>
    range(n, (i) => i).map((i) => ({ msg: { mtype: BigInt(i + 1), msize: 10 + i }, data: bytes(10 + i, i) }));
  dir.write(
    'ipcns-msg-%u',
    5,
    [
      { desc: desc(3), qbytes: 16384, qnum: 2 },
      { desc: desc(4), qbytes: 16384, qnum: 3 },
    ],
    [msgs(2), msgs(3)],
  );
  add('ipcns-msg', 'ipcns-msg-%u', 5, 'IPCNS_MSG');

  dir.write(
    'ipcns-shm-%u',
    5,
    [
      { desc: desc(5), size: 13n },
      { desc: desc(6), size: 4096n },
    ],
    [bytes(13, 6), bytes(4096, 7)],
  );
  add('ipcns-shm', 'ipcns-shm-%u', 5, 'IPCNS_SHM');

  return out.map((f) => {
    const { magic, entries } = readImage(join(path, f.file));
    if (magic !== f.magic) throw new Error(`fixture ${f.name}: magic ${magic}`);
    return { ...f, entryOffsets: entries.map((e) => e.offset) };
  });
}
