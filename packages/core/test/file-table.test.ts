// The dump's FileTable (files/table.ts) and the fd kinds (files/kinds.ts, files/drivers.ts), on files of
// this test process itself and images written to a temp dir: no other process is made.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProcDir } from '@criu-ts/bfd';
import { type FileEntry, ImageDir, type PipeDataEntry } from '@criu-ts/images';
import { close, dup, memfdCreate, O_PATH, O_RDONLY, O_RDWR, open, pipe2 } from '@criu-ts/sys';
import { afterEach, describe, expect, it } from 'vitest';
import { FD_DRIVERS, fdKindOfEntry, restoreDriverFor } from '../src/files/drivers.js';
import { noOwner } from '../src/files/fown.js';
import { fdKindOf } from '../src/files/kinds.js';
import { FD_TYPE, FileTable, type OpenFile } from '../src/files/table.js';

const dirs: string[] = [];
const fds: number[] = [];
afterEach(() => {
  for (const fd of fds.splice(0)) close(fd);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-filetable-'));
  dirs.push(d);
  return d;
}

const keep = (fd: number) => {
  fds.push(fd);
  return fd;
};

/** What dump knows of fd `fd` of this process, as dump-fds.ts reads it. */
function openFile(fd: number): OpenFile {
  const proc = ProcDir.self();
  const info = proc.fdinfo(fd);
  return {
    pid: process.pid,
    fd,
    link: proc.readlink(`fd/${fd}`),
    pos: info.pos,
    flags: info.flags,
    mntId: info.mntId,
    stat: fs.statSync(`/proc/self/fd/${fd}`, { bigint: true }),
    info,
  };
}

const reg = (id: number, name: string): FileEntry => ({
  id,
  type: FD_TYPE.REG,
  reg: { id, flags: 0, pos: 0n, fown: noOwner(), name },
});

describe('FileTable', () => {
  it('one id per key: the entry is made once, ids count from 1 in the order keys are first seen', () => {
    const t = new FileTable();
    let made = 0;
    const make = (name: string) => (id: number) => {
      made++;
      return reg(id, name);
    };
    const a = t.add('a', make('/a'));
    const b = t.add('b', make('/b'));
    expect(t.add('a', make('/other'))).toBe(a);
    expect([a, b]).toEqual([1, 2]);
    expect(made).toBe(2);
    expect(t.entries.map((e) => e.reg?.name)).toEqual(['/a', '/b']);
  });

  it('firstTime and cached: once per dump', () => {
    const t = new FileTable();
    expect(t.firstTime('pipe:1')).toBe(true);
    expect(t.firstTime('pipe:1')).toBe(false);
    let n = 0;
    expect(t.cached('x', () => ++n)).toBe(1);
    expect(t.cached('x', () => ++n)).toBe(1);
  });

  it('writeImages: the deferred checks first, then files.img, remap-fpath and the tree-wide images', () => {
    const d = tempDir();
    const t = new FileTable();
    const order: string[] = [];
    t.later(() => order.push('check'));
    t.add('f', (id) => reg(id, '/f'));
    t.remaps.push({ orig_id: 1, remap_id: 2, remap_type: 0 });
    const data = (pipe_id: number): PipeDataEntry => ({ pipe_id, bytes: 0 });
    t.addImageEntry('pipes-data', data(7), Buffer.alloc(0));
    t.addImageEntry('pipes-data', data(8), Buffer.alloc(0));
    t.writeImages(ImageDir.create(d));
    expect(order).toEqual(['check']);
    expect(t.imagesWritten).toBe(true);
    const dir = ImageDir.open(d);
    expect(dir.files().map((f) => f.reg?.name)).toEqual(['/f']);
    expect(dir.messages('remap-fpath')).toEqual([{ orig_id: 1, remap_id: 2, remap_type: 0 }]);
    expect(dir.messages<PipeDataEntry>('pipes-data').map((p) => p.pipe_id)).toEqual([7, 8]);
  });

  it('a deferred check that throws fails the dump before any image is written', () => {
    const d = tempDir();
    const t = new FileTable();
    t.add('f', (id) => reg(id, '/f'));
    t.later(() => {
      throw new Error("the pipe's other end is not in the tree");
    });
    expect(() => t.writeImages(ImageDir.create(d))).toThrow("the pipe's other end is not in the tree");
    expect(fs.readdirSync(d)).toEqual([]);
    expect(t.imagesWritten).toBe(false);
  });

  it('undo runs newest first, every step even when one throws, and only once', () => {
    const t = new FileTable();
    const ran: number[] = [];
    t.onUndo(() => ran.push(1));
    t.onUndo(() => {
      ran.push(2);
      throw new Error('gone');
    });
    t.onUndo(() => ran.push(3));
    t.undo();
    t.undo();
    expect(ran).toEqual([3, 2, 1]);
  });

  it('descriptionKey: dup()ed fds share one description (one entry), two open() calls do not', () => {
    const d = tempDir();
    const file = path.join(d, 'f');
    fs.writeFileSync(file, 'x');
    const a = keep(open(file, O_RDONLY));
    const copy = keep(dup(a));
    const again = keep(open(file, O_RDONLY)); // a second description of the same file
    const t = new FileTable(new Set([process.pid]));
    const keyA = t.descriptionKey(openFile(a));
    expect(t.descriptionKey(openFile(copy))).toBe(keyA);
    expect(t.descriptionKey(openFile(again))).not.toBe(keyA);
  });
});

describe('fd kinds', () => {
  it('every open file is of exactly one kind, whatever order the drivers are in', () => {
    const d = tempDir();
    const file = path.join(d, 'f');
    fs.writeFileSync(file, 'x');
    const fifo = path.join(d, 'fifo');
    fs.mkdirSync(path.join(d, 'dir'));
    execFileSync('mkfifo', [fifo]); // node has no mkfifo
    const [r, w] = pipe2().map(keep) as [number, number];
    const kinds = {
      file: fdKindOf(openFile(keep(open(file, O_RDONLY)))),
      dir: fdKindOf(openFile(keep(open(path.join(d, 'dir'), O_RDONLY)))),
      devNull: fdKindOf(openFile(keep(open('/dev/null', O_RDWR)))),
      fifo: fdKindOf(openFile(keep(open(fifo, O_RDWR)))),
      // An O_PATH fd only names its file: a FIFO's is a regular file's kind, never a FIFO end.
      fifoPath: fdKindOf(openFile(keep(open(fifo, O_PATH)))),
      pipeRead: fdKindOf(openFile(r)),
      pipeWrite: fdKindOf(openFile(w)),
      memfd: fdKindOf(openFile(keep(memfdCreate('criu-ts-kinds', 0)))),
    };
    expect(kinds).toEqual({
      file: 'regular',
      dir: 'regular',
      devNull: 'regular',
      fifo: 'fifo',
      fifoPath: 'regular',
      pipeRead: 'pipe',
      pipeWrite: 'pipe',
      memfd: 'memfd',
    });
  });

  it('the link decides for anonymous inodes, pipes and namespaces; a link no kind knows has no kind (the dump refuses it)', () => {
    const f = openFile(keep(open('/dev/null', O_RDONLY)));
    expect(fdKindOf({ ...f, link: 'anon_inode:[io_uring]' })).toBeUndefined();
    expect(fdKindOf({ ...f, link: 'anon_inode:[eventfd]' })).toBe('eventfd');
    expect(fdKindOf({ ...f, link: 'net:[4026531840]' })).toBe('nsfile');
    expect(fdKindOf({ ...f, link: 'pipe:[1]' })).toBe('pipe');
  });

  it('restore finds the kind of a files.img entry from its fd type: one type per kind, tty and memfd included', () => {
    const kinds = Object.keys(FD_DRIVERS);
    expect(kinds).toContain('tty');
    expect(kinds).toContain('memfd');
    const types = Object.values(FD_DRIVERS).map((d) => d.restore.type);
    expect(new Set(types).size).toBe(types.length);
    for (const [kind, d] of Object.entries(FD_DRIVERS)) {
      expect(fdKindOfEntry({ type: d.restore.type })).toBe(kind);
      expect(restoreDriverFor(d.restore.type)).toBe(d.restore);
    }
    expect(fdKindOfEntry({ type: FD_TYPE.TTY })).toBe('tty');
    expect(fdKindOfEntry({ type: FD_TYPE.MEMFD })).toBe('memfd');
    expect(fdKindOfEntry({ type: FD_TYPE.REG })).toBe('regular');
    expect(restoreDriverFor(FD_TYPE.TUNF)).toBeUndefined();
  });
});
