// CRIU's irmap: a path for a watched inode whose file handle cannot be opened (the CLI's
// --force-irmap end to end is in apps/cli/test/restore-inotify.test.ts).
import fs from 'node:fs';
import path from 'node:path';
import { ProcDir } from '@criu-ts/bfd';
import { close, inotifyAddWatch, inotifyInit1 } from '@criu-ts/sys';
import { afterEach, describe, expect, it } from 'vitest';
import { handleEntryNow } from '../src/files/fhandle.js';
import { irmapLookup } from '../src/files/irmap.js';
import { cleanup, tempDir } from './helpers.js';

afterEach(() => cleanup());

describe("--force-irmap and --irmap-scan-path (CRIU's irmap)", () => {
  it('a watched inode whose handle cannot be opened gets a path found by scanning, only when forced', () => {
    const d = tempDir('criu-ts-irmap-');
    const file = path.join(d, 'deep', 'er', 'watched');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '');
    const fd = inotifyInit1(0);
    try {
      inotifyAddWatch(fd, file, 0x20);
      const [w] = ProcDir.self().fdinfo(fd).inotify ?? [];
      expect(w?.fhandle).toBeDefined();
      const [sdev, type, handle, ino] = [w!.sdev, w!.fhandleType!, w!.fhandle!, w!.ino];
      // A good handle: its own path, forced or not.
      expect(handleEntryNow(sdev, type, handle, ino).path).toBe(file);
      expect(handleEntryNow(sdev, type, handle, ino, { force: true, scanPaths: [] }).path).toBe(file);
      // A handle that opens nothing: refused, unless forced; forced, the scan of --irmap-scan-path finds it.
      const stale = Buffer.alloc(handle.length, 0xff);
      expect(() => handleEntryNow(sdev, type, stale, ino)).toThrow(/file handle/);
      expect(handleEntryNow(sdev, type, stale, ino, { force: true, scanPaths: [d] }).path).toBe(file);
      expect(() => handleEntryNow(sdev, type, stale, ino, { force: true, scanPaths: [] })).toThrow(
        /--force-irmap found no other path/,
      );
    } finally {
      close(fd);
    }
    // The scan stays on the device and does not follow symlinks.
    const st = fs.statSync(file, { bigint: true });
    const other = tempDir('criu-ts-irmap-links-');
    fs.symlinkSync(path.join(d, 'deep'), path.join(other, 'link'));
    expect(irmapLookup(st.dev, st.ino, [other])).toBeUndefined();
    expect(irmapLookup(st.dev, st.ino, [d])).toBe(file);
    expect(irmapLookup(st.dev + 1n, st.ino, [d])).toBeUndefined();
  });
});
