// Image files that are not what their names say: readers open them without following a symlink and
// without waiting on a FIFO, and refuse anything but a regular file, saying what it is; writers create
// images exclusively, replacing an old regular image but never writing through a symlink, a FIFO or a
// hard link planted under the name; image directories on /proc or /sys are refused.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImageDir, ImageError, ImageReader, ImageWriteError } from '../../src/index.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'images-hostile-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const pstree = [{ pid: 10, ppid: 0, pgid: 10, sid: 10, threads: [10] }];

function readError(path: string): string {
  try {
    ImageReader.open(path).close();
  } catch (e) {
    expect(e).toBeInstanceOf(ImageError);
    expect((e as ImageError).file).toBe(path);
    return (e as ImageError).reason;
  }
  throw new Error(`${path} was read`);
}

describe('reading: only regular files, never through a symlink, never a wait', () => {
  it('a FIFO, a character device, a socket, a symlink (also to a good image), a directory', {
    timeout: 5000,
  }, () => {
    const dir = ImageDir.create(join(tmp, 'd'));
    dir.write('pstree', undefined, pstree);
    const fifo = join(tmp, 'fifo.img');
    execFileSync('mkfifo', [fifo]);
    expect(readError(fifo)).toBe('is a FIFO, not an image file: not read');
    const dev = join(tmp, 'zero.img');
    execFileSync('mknod', [dev, 'c', '1', '5']);
    expect(readError(dev)).toBe('is a character device, not an image file: not read');
    const sock = join(tmp, 'sock.img');
    execFileSync('python3', [
      '-c',
      'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
      sock,
    ]);
    expect(readError(sock)).toBe('is a socket, not an image file: not read');
    const link = join(tmp, 'link.img');
    symlinkSync(dir.fileName('pstree'), link);
    expect(readError(link)).toBe('is a symlink, not an image file: not read');
    const zero = join(tmp, 'zero-link.img');
    symlinkSync('/dev/zero', zero);
    expect(readError(zero)).toBe('is a symlink, not an image file: not read');
    expect(readError(tmp)).toBe('is a directory, not an image file: not read');
    expect(readError(join(tmp, 'none.img'))).toBe('missing image (no such file)');
  });

  it('ImageDir.has() sees a dangling symlink, so that reading it names it rather than "missing"', () => {
    const dir = ImageDir.create(join(tmp, 'd'));
    symlinkSync('/nonexistent', dir.fileName('pstree'));
    expect(dir.has('pstree')).toBe(true);
    expect(() => dir.pstree()).toThrow(/pstree\.img: at byte 0: is a symlink, not an image file/);
  });

  it('an image that exists but cannot be read says so (as an unprivileged user)', () => {
    const dir = ImageDir.create(join(tmp, 'd'));
    chmodSync(tmp, 0o755);
    chmodSync(dir.path, 0o755);
    dir.write('pstree', undefined, pstree); // 0600, root's
    const dist = resolve(__dirname, '../../dist/index.js');
    const script = `import(${JSON.stringify(dist)}).then((m) => { try { m.ImageDir.open(${JSON.stringify(dir.path)}).pstree(); console.log('read'); } catch (e) { console.log(e.message); } })`;
    const r = spawnSync(
      'setpriv',
      ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '-e', script],
      { encoding: 'utf8', cwd: '/' },
    );
    expect(r.stdout.trim()).toBe(
      `${dir.fileName('pstree')}: at byte 0: exists but cannot be read: EACCES (permission denied)`,
    );
  });
});

describe('writing: images created exclusively', () => {
  it('an old image is replaced; a hard link to it keeps the old bytes', () => {
    const dir = ImageDir.create(join(tmp, 'd'));
    dir.write('pstree', undefined, pstree);
    const outside = join(tmp, 'linked');
    linkSync(dir.fileName('pstree'), outside);
    const old = readFileSync(outside);
    dir.write('pstree', undefined, [{ ...pstree[0]!, pid: 11, pgid: 11, sid: 11, threads: [11] }]);
    expect(readFileSync(outside).equals(old)).toBe(true);
    expect(dir.pstree()[0]!.pid).toBe(11);
    expect(statSync(dir.fileName('pstree')).mode & 0o777).toBe(0o600);
  });

  it('a symlink or a FIFO under an image name is refused; its target stays untouched', {
    timeout: 5000,
  }, () => {
    const dir = ImageDir.create(join(tmp, 'd'));
    const sentinel = join(tmp, 'sentinel');
    writeFileSync(sentinel, 'untouched\n');
    symlinkSync(sentinel, dir.fileName('pstree'));
    symlinkSync(join(tmp, 'not-there'), dir.fileName('pages-%u', 1));
    execFileSync('mkfifo', [dir.fileName('inventory')]);
    expect(() => dir.write('pstree', undefined, pstree)).toThrow(ImageWriteError);
    expect(() => dir.write('pstree', undefined, pstree)).toThrow(
      /pstree\.img: it exists and is a symlink: not replaced, not written through/,
    );
    expect(() => dir.pageMapWriter(1, 1)).toThrow(/pages-1\.img: it exists and is a symlink/);
    expect(existsSync(join(tmp, 'not-there'))).toBe(false);
    expect(() => dir.write('inventory', undefined, [{ img_version: 2 }])).toThrow(
      /inventory\.img: it exists and is a FIFO/,
    );
    expect(() => dir.checkCanWrite()).toThrow(
      /inventory\.img: it exists and is a FIFO|pstree\.img: it exists and is a symlink/,
    );
    expect(() => dir.checkCanWrite('stats-%s', 'dump')).not.toThrow();
    expect(readFileSync(sentinel, 'utf8')).toBe('untouched\n');
  });
});

describe("image directories on the kernel's pseudo filesystems", () => {
  it('/proc and /sys are refused for reading and writing, nothing is created', () => {
    expect(() => ImageDir.create('/proc/self/criu-images')).toThrow(/is on procfs, not a place for images/);
    expect(() => ImageDir.open('/proc/self')).toThrow(/is on procfs, not a place for images/);
    expect(() => ImageDir.create('/sys/kernel/x/y')).toThrow(/is on sysfs, not a place for images/);
    expect(() => ImageDir.create(join(tmp, 'fine'))).not.toThrow();
  });
});
