// Valid images of many kinds, written with ImageDir/ImageWriter, for the robustness tests to
// corrupt. Every fixture is read back once (readImage) so a broken fixture fails loudly.
import { join } from 'node:path';
import {
  ImageDir,
  ImageWriter,
  type IpcMessage,
  type MagicName,
  PAGE_SIZE,
  readImage,
} from '../../src/index.js';
import { range, x86Core } from '../x86-core.js';

export interface Fixture {
  /** What it is, for failure messages: "core", "pagemap", "ghost-chunked". */
  name: string;
  /** File name inside the fixture directory. */
  file: string;
  magic: MagicName;
  /** Byte offset of every entry's length word, from a read of the valid image. */
  entryOffsets: number[];
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
