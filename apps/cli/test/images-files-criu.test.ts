// Facts of files.img that CRIU 4.2's restore reads, written by criu-ts as CRIU writes them, and read back
// the same way, on a real workload (tools/workloads/src/sigio.c): a pipe, a socket and a log with owners
// for SIGIO, the report and the log opened O_WRONLY|O_APPEND.
//  - size: CRIU writes it only for a regular file not opened O_WRONLY|O_APPEND, and its restore refuses a
//    file whose size differs; a log that grew between dump and restore must restore;
//  - mnt_id: CRIU writes it only with the mount namespace dumped (mountpoints-N.img); without that image
//    its restore looks the id up and fails (ghost files);
//  - fown: the owner (F_SETOWN_EX pid and type), signal (F_SETSIG) and the uids that set the owner,
//    in every entry kind that has a fown; after restore the same owner, signal and uids, and the
//    signals come again (with the task's own fd number in si_fd).
import fs from 'node:fs';
import path from 'node:path';
import { type FileEntry, ImageDir } from '@criu-ts/images';
import {
  close,
  F_GETOWN_EX,
  F_GETOWNER_UIDS,
  F_GETSIG,
  F_OWNER_PGRP,
  F_OWNER_PID,
  F_OWNER_TID,
  fcntl,
  lseek,
  pidfdGetfd,
  pidfdOpen,
  SEEK_DATA,
  SEEK_HOLE,
} from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  cliDump,
  cliKillAndRestore,
  PYTHON,
  readLines,
  startCommand,
  startWorkload,
  tempDir,
  type Workload,
  waitFor,
  waitForLine,
  workloadPath,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const PIPE_SIG = 40;
const LOG_SIG = 41;
const SIGIO = 29;
const NOBODY = 65534;

/** The sigio workload, its log in its own temp dir. */
async function startSigio(): Promise<Workload & { log: string }> {
  const log = path.join(tempDir('criu-ts-sigio-log-'), 'log');
  const w = startWorkload('sigio', [log]);
  await waitForLine(w.report, /^READY /, { pid: w.pid });
  return { ...w, log };
}

/** The owner, signal and owner uids of fd `fd` of `pid`, read on a copy of it (pidfd_getfd). */
function ownerOf(pid: number, fd: number) {
  const pidfd = pidfdOpen(pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      const ex = Buffer.alloc(8);
      fcntl(mine, F_GETOWN_EX, ex);
      const uids = Buffer.alloc(8);
      fcntl(mine, F_GETOWNER_UIDS, uids);
      return {
        uid: uids.readUInt32LE(0),
        euid: uids.readUInt32LE(4),
        signum: fcntl(mine, F_GETSIG),
        pid_type: ex.readInt32LE(0),
        pid: ex.readInt32LE(4),
      };
    } finally {
      close(mine);
    }
  } finally {
    close(pidfd);
  }
}

/** The files.img entry of fd `fd` of the images' root task. */
function entryOfFd(dir: string, fd: number): FileEntry {
  const img = ImageDir.open(dir);
  const root = img.pstree()[0]!.pid;
  const fe = img.fdinfo(img.ids(root).files_id).find((f) => f.fd === fd);
  const entry = fe && img.files().find((f) => f.id === fe.id);
  if (!entry) throw new Error(`no files.img entry for fd ${fd}`);
  return entry;
}

const O_WRONLY = 1;
const O_APPEND = 0o2000;

describe('files.img as CRIU writes it', () => {
  it('a log opened O_WRONLY|O_APPEND has no size (a grown log restores), other regular files have one, and no entry has a mnt_id', async () => {
    const w = await startSigio();
    const dir = await cliDump(w.pid);
    const img = ImageDir.open(dir);
    for (const fd of [3, 8]) {
      // the report and the log
      const reg = entryOfFd(dir, fd).reg!;
      expect(reg.flags & (3 | O_APPEND)).toBe(O_WRONLY | O_APPEND);
      expect(reg.size).toBeUndefined();
    }
    const exe = img.files().find((f) => f.id === img.mm(w.pid).exe_file_id)!.reg!;
    expect(exe.name).toBe(workloadPath('sigio'));
    expect(exe.size).toBe(BigInt(fs.statSync(workloadPath('sigio')).size));
    const cwd = img.files().find((f) => f.id === img.fs(w.pid).cwd_id)!.reg!;
    expect(cwd.size).toBeUndefined(); // a directory: CRIU writes sizes of regular files only
    expect(img.files().filter((f) => f.reg && f.reg.mnt_id !== undefined)).toEqual([]);

    fs.appendFileSync(w.log, 'grown\n'); // someone else writes to the log meanwhile
    await cliKillAndRestore(dir);
    const from = readLines(w.report).length;
    fs.writeFileSync(`/proc/${w.pid}/fd/5`, 'after\n');
    await waitForLine(w.report, /^SIG 40 fd=4 after$/, { pid: w.pid, fromLine: from });
    expect(fs.readFileSync(w.log, 'utf8').split('\n').slice(-3)).toEqual(['grown', 'SIG 40 fd=4 after', '']);
  });

  it('owners for SIGIO (fown) of a pipe, a socket and a log: dumped, then the same owner, signal and uids after restore, and the signals come', async () => {
    const w = await startSigio();
    const dir = await cliDump(w.pid);
    const fown = (fd: number) => {
      const e = entryOfFd(dir, fd);
      return (e.pipe ?? e.usk ?? e.reg)!.fown;
    };
    const pid = w.pid;
    const want = {
      4: { uid: 0, euid: 0, signum: PIPE_SIG, pid_type: F_OWNER_PID, pid },
      5: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 },
      6: { uid: 0, euid: 0, signum: 0, pid_type: F_OWNER_PGRP, pid },
      8: { uid: NOBODY, euid: NOBODY, signum: LOG_SIG, pid_type: F_OWNER_TID, pid },
    };
    for (const [fd, own] of Object.entries(want)) expect(fown(Number(fd)), `fd ${fd}`).toEqual(own);

    await cliKillAndRestore(dir);
    for (const [fd, own] of Object.entries(want)) expect(ownerOf(pid, Number(fd)), `fd ${fd}`).toEqual(own);
    let from = readLines(w.report).length;
    fs.writeFileSync(`/proc/${pid}/fd/5`, 'after\n'); // the workload fails unless si_fd is 4
    await waitForLine(w.report, /^SIG 40 fd=4 after$/, { pid, fromLine: from });
    from = readLines(w.report).length;
    process.kill(pid, 'SIGUSR1'); // it writes to its socket's peer: SIGIO to its process group
    await waitForLine(w.report, new RegExp(`^SIG ${SIGIO} ping$`), { pid, fromLine: from });
  });

  it('an unlinked log (a ghost file): no mnt_id in its entry, and it comes back with its contents, owner, mode and times', async () => {
    const w = await startSigio();
    fs.chownSync(w.log, 12345, 54321);
    fs.chmodSync(w.log, 0o640);
    const mtime = new Date('2020-02-02T02:02:02.250Z');
    fs.utimesSync(w.log, mtime, mtime);
    fs.unlinkSync(w.log);
    const dir = await cliDump(w.pid);
    const reg = entryOfFd(dir, 8).reg!;
    expect(reg.name).toBe(w.log);
    expect(reg.mnt_id).toBeUndefined();
    expect(
      ImageDir.open(dir)
        .read('remap-fpath')
        .map((e) => e.message),
    ).toContainEqual(
      expect.objectContaining({ orig_id: reg.id, remap_type: 1 }), // GHOST
    );
    const remap = ImageDir.open(dir)
      .read('remap-fpath')
      .map((e) => e.message as { orig_id: number; remap_id: number })
      .find((m) => m.orig_id === reg.id)!;
    const [ghost] = ImageDir.open(dir).read('ghost-file-%x', remap.remap_id);
    // a small file: its whole contents, and neither chunks nor size (CRIU's layout below 3 pages)
    expect(ghost!.message).toMatchObject({ uid: 12345, gid: 54321, mode: 0o100640 });
    expect(ghost!.message).not.toHaveProperty('size');
    expect(ghost!.message).not.toHaveProperty('chunks');
    expect((ghost!.extra as Buffer).toString()).toBe('START\n');

    await cliKillAndRestore(dir);
    const st = fs.statSync(`/proc/${w.pid}/fd/8`);
    expect([st.uid, st.gid, st.mode & 0o7777, st.nlink]).toEqual([12345, 54321, 0o640, 0]);
    expect(st.mtimeMs).toBe(mtime.getTime());
    expect(fs.readlinkSync(`/proc/${w.pid}/fd/8`)).toBe(`${w.log} (deleted)`);
    const from = readLines(w.report).length;
    fs.writeFileSync(`/proc/${w.pid}/fd/5`, 'after\n');
    await waitForLine(w.report, /^SIG 40 fd=4 after$/, { pid: w.pid, fromLine: from });
    expect(fs.readFileSync(`/proc/${w.pid}/fd/8`, 'utf8')).toBe('START\nSIG 40 fd=4 after\n');
  });

  it('an unlinked file open under two of its names is one ghost file, and one file again after restore', async () => {
    const d = tempDir('criu-ts-ghost-links-');
    const [a, b] = [path.join(d, 'a'), path.join(d, 'b')];
    const script = [
      'import os, sys, time',
      'a, b, out = sys.argv[1:4]',
      "fa = os.open(a, os.O_RDWR | os.O_CREAT, 0o600); os.write(fa, b'one inode')",
      'os.link(a, b); fb = os.open(b, os.O_RDONLY); os.unlink(a); os.unlink(b)',
      "open(out, 'w').write('%d %d\\n' % (fa, fb))",
      'while True: time.sleep(1)',
    ].join('\n');
    const ready = path.join(d, 'fds');
    const pid = await startCommand([PYTHON, '-c', script, a, b, ready]);
    await waitFor(() => fs.existsSync(ready) && fs.readFileSync(ready, 'utf8').endsWith('\n'), 'the fds');
    const [fa, fb] = fs.readFileSync(ready, 'utf8').trim().split(' ').map(Number) as [number, number];
    const dir = await cliDump(pid);
    const remaps = ImageDir.open(dir)
      .read('remap-fpath')
      .map((e) => e.message as { remap_id: number });
    expect(remaps).toHaveLength(2);
    expect(remaps[0]!.remap_id).toBe(remaps[1]!.remap_id);
    await cliKillAndRestore(dir);
    const [sa, sb] = [fa, fb].map((fd) => fs.statSync(`/proc/${pid}/fd/${fd}`));
    expect(sb!.ino).toBe(sa!.ino);
    expect(sa!.nlink).toBe(0);
    expect(fs.readFileSync(`/proc/${pid}/fd/${fb}`, 'utf8')).toBe('one inode');
    expect(fs.readdirSync(d).sort()).toEqual(['fds']);
  });

  it('a sparse unlinked file (10 MiB, 8 KiB of data) is a ghost of chunks, as CRIU writes it, and comes back with its holes', async () => {
    const d = tempDir('criu-ts-ghost-sparse-');
    const f = path.join(d, 'sparse');
    const script = [
      'import os, sys, time',
      'f, out = sys.argv[1:3]',
      'fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o600)',
      "os.pwrite(fd, b'A' * 4096, 0); os.pwrite(fd, b'B' * 4096, 512 * 1024); os.ftruncate(fd, 10 << 20)",
      'os.unlink(f)',
      "open(out, 'w').write('%d\\n' % fd)",
      'while True: time.sleep(1)',
    ].join('\n');
    const ready = path.join(d, 'fd');
    const pid = await startCommand([PYTHON, '-c', script, f, ready]);
    await waitFor(() => fs.existsSync(ready) && fs.readFileSync(ready, 'utf8').endsWith('\n'), 'the fd');
    const fd = Number(fs.readFileSync(ready, 'utf8'));
    const dir = await cliDump(pid); // 10 MiB, but 8 KiB on disk: under the ghost limit, as in CRIU
    const [remap] = ImageDir.open(dir)
      .read('remap-fpath')
      .map((e) => e.message as { remap_id: number });
    const [head, ...chunks] = ImageDir.open(dir).read('ghost-file-%x', remap!.remap_id);
    expect(head!.message).toMatchObject({ chunks: true, size: 10n << 20n });
    expect(chunks.map((c) => [c.message, (c.extra as Buffer).toString('latin1', 0, 1)])).toEqual([
      [{ len: 4096n, off: 0n }, 'A'],
      [{ len: 4096n, off: 512n * 1024n }, 'B'],
    ]);

    await cliKillAndRestore(dir);
    const mine = fs.openSync(`/proc/${pid}/fd/${fd}`, 'r');
    try {
      expect(fs.fstatSync(mine).size).toBe(10 << 20);
      expect(Number(lseek(mine, 0, SEEK_HOLE))).toBe(4096);
      expect(Number(lseek(mine, 4096, SEEK_DATA))).toBe(512 * 1024);
      const b = Buffer.alloc(4096);
      fs.readSync(mine, b, 0, 4096, 512 * 1024);
      expect(b.equals(Buffer.alloc(4096, 'B'))).toBe(true);
    } finally {
      fs.closeSync(mine);
    }
  });
});
