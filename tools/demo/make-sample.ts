#!/usr/bin/env node
// Writes examples/sample-dump/: CRIU images of a live process (default: a new `sleep 1000`),
// built from what /proc shows of it: pstree, core (comm, creds, signal masks), ids, fs,
// files + fdinfo, mm with every VMA, and the present pages of its private anonymous memory
// (read from /proc/PID/mem). Registers need ptrace and arrive with `criu-ts dump`; this
// sample exists so that crit-ts has a real directory to explore.
// Usage: tsx tools/demo/make-sample.ts [OUT_DIR]
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageDir } from '../../packages/images/dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, '../../examples/sample-dump'));
const pid = Number(
  spawnSync('sh', ['-c', 'cd / && setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!']).stdout,
);

try {
  rmSync(out, { recursive: true, force: true });
  writeSample(ImageDir.create(out), pid);
  console.log(`wrote ${readdirSync(out).length} images of pid ${pid} to ${out}`);
} finally {
  process.kill(pid, 'SIGKILL');
}

function status(p) {
  const s: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${p}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) s[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return s;
}

function writeSample(dir, p) {
  const st = status(p);
  const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [pgid, sid] = [Number(fields[2]), Number(fields[3])];
  const ids = (s) => s.split(/\s+/).map(Number);
  const hex = (s) => BigInt(`0x${s}`);
  const caps = (s) => [Number(hex(s) & 0xffffffffn), Number(hex(s) >> 32n)];

  dir.write('inventory', undefined, [{ img_version: 2, fdinfo_per_id: true, lsmtype: 0 }]);
  dir.write('pstree', undefined, [{ pid: p, ppid: 0, pgid, sid, threads: [p] }]);
  const [ruid, euid, suid, fsuid] = ids(st.Uid);
  const [rgid, egid, sgid, fsgid] = ids(st.Gid);
  dir.write('core-%u', p, [
    {
      mtype: 1,
      tc: {
        task_state: 1,
        exit_code: 0,
        personality: 0,
        flags: 0x400000,
        blk_sigset: hex(st.SigBlk),
        comm: st.Name,
      },
      thread_core: {
        futex_rla: 0n,
        futex_rla_len: 0,
        creds: {
          uid: ruid,
          gid: rgid,
          euid,
          egid,
          suid,
          sgid,
          fsuid,
          fsgid,
          cap_inh: caps(st.CapInh),
          cap_prm: caps(st.CapPrm),
          cap_eff: caps(st.CapEff),
          cap_bnd: caps(st.CapBnd),
          secbits: 0,
          groups: [],
          cap_amb: caps(st.CapAmb),
          no_new_privs: st.NoNewPrivs === '1',
        },
      },
    },
  ]);
  dir.write('ids-%u', p, [{ vm_id: 1, files_id: 1, fs_id: 1, sighand_id: 1 }]);

  // Files: one REG entry per distinct path (fds, cwd, root, mapped files), ids from 1.
  const files = new Map();
  const fileId = (path, flags = 0) => {
    if (!files.has(path)) {
      const s = statSync(path);
      files.set(path, {
        id: files.size + 1,
        type: 1,
        reg: {
          id: files.size + 1,
          flags,
          pos: 0n,
          fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 },
          name: path,
          size: BigInt(s.size),
          mode: s.mode,
        },
      });
    }
    return files.get(path).id;
  };
  const fdinfo = [];
  for (const fd of readdirSync(`/proc/${p}/fd`)
    .map(Number)
    .sort((a, b) => a - b)) {
    const target = readlinkSync(`/proc/${p}/fd/${fd}`);
    if (target.startsWith('/')) fdinfo.push({ id: fileId(target), flags: 0, type: 1, fd });
  }
  const root = fileId('/');
  const cwd = fileId(readlinkSync(`/proc/${p}/cwd`));
  const exe = fileId(readlinkSync(`/proc/${p}/exe`));
  dir.write('fs-%u', p, [{ cwd_id: cwd, root_id: root, umask: Number.parseInt(st.Umask, 8) }]);
  dir.write('fdinfo-%u', 1, fdinfo);

  const vmas = [];
  for (const line of readFileSync(`/proc/${p}/maps`, 'utf8').trim().split('\n')) {
    const [range, perms, off, , inode, ...rest] = line.split(/\s+/);
    const path = rest.join(' ');
    const [start, end] = range.split('-').map((x) => BigInt(`0x${x}`));
    if (path === '[vsyscall]') continue;
    const prot = (perms[0] === 'r' ? 1 : 0) | (perms[1] === 'w' ? 2 : 0) | (perms[2] === 'x' ? 4 : 0);
    const shared = perms[3] === 's';
    let status = 1;
    let shmid = 0n;
    if (path === '[stack]') status |= (1 << 1) | (1 << 9);
    else if (path === '[vdso]') status |= 1 << 3;
    else if (path.startsWith('[vvar')) status |= 1 << 12;
    else if (path === '[heap]') status |= (1 << 5) | (1 << 9);
    else if (path.startsWith('/') && inode !== '0') {
      status |= shared ? 1 << 7 : 1 << 6;
      shmid = BigInt(fileId(path));
    } else status |= 1 << 9;
    const flags = (shared ? 1 : 2) | (path.startsWith('/') ? 0 : 0x20) | (path === '[stack]' ? 0x100 : 0);
    vmas.push({ start, end, pgoff: BigInt(`0x${off}`), shmid, prot, flags, status, fd: -1 });
  }
  // /proc/PID/stat field N (man 5 proc, counting from 1) is fields[N - 3] here.
  const f = (n) => BigInt(fields[n - 3]);
  dir.write('mm-%u', p, [
    {
      mm_start_code: f(26),
      mm_end_code: f(27),
      mm_start_data: f(45),
      mm_end_data: f(46),
      mm_start_stack: f(28),
      mm_start_brk: f(47),
      mm_brk: f(47),
      mm_arg_start: f(48),
      mm_arg_end: f(49),
      mm_env_start: f(50),
      mm_env_end: f(51),
      exe_file_id: exe,
      vmas,
    },
  ]);
  dir.write('files', undefined, [...files.values()]);
  writePages(dir, p, vmas);
}

/** Present pages of private anonymous VMAs, found in /proc/PID/pagemap, read from /proc/PID/mem. */
function writePages(dir, p, vmas) {
  const pagemap = openSync(`/proc/${p}/pagemap`, 'r');
  const mem = openSync(`/proc/${p}/mem`, 'r');
  const w = dir.pageMapWriter(p, 1);
  try {
    for (const v of vmas.filter((x) => x.status & (1 << 9) && x.prot & 2)) {
      const first = (v.start as bigint) / 4096n;
      const count = Number(((v.end as bigint) - (v.start as bigint)) / 4096n);
      const bits = Buffer.alloc(count * 8);
      readSync(pagemap, bits, 0, bits.length, Number(first * 8n));
      for (let i = 0; i < count; ) {
        if (!(bits.readBigUInt64LE(i * 8) >> 63n)) {
          i++;
          continue;
        }
        let j = i;
        while (j < count && bits.readBigUInt64LE(j * 8) >> 63n) j++;
        const data = Buffer.alloc((j - i) * 4096);
        readSync(mem, data, 0, data.length, v.start + BigInt(i * 4096));
        w.addPresent(v.start + BigInt(i * 4096), j - i, data);
        i = j;
      }
    }
  } finally {
    w.close();
    closeSync(pagemap);
    closeSync(mem);
  }
}
