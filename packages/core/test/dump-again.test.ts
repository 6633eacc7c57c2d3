// Several dumps and restores in one process, as a service worker does them: what one dump keeps for the
// next (dumpPages' copy buffers, the pagemap scan buffer) never leaks into another's images. memhog
// areas of several sizes (bigger and smaller than the 4 MiB copy chunk, one after another) come back
// with the checksum memhog computed before the dump, checked by memhog itself after the restore.
import { SIGUSR1 } from '@criu-ts/sys';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dump, restore } from '../src/index.js';
import { buildWorkloads, cleanup, readLines, startWorkload, tempDir, track, waitFor } from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const sums = (report: string) => readLines(report).filter((l) => l.startsWith('SUM') || l.startsWith('FAIL'));

describe('dump() and restore() again and again in one process', () => {
  it('memhog of 9, 1, 17 and 2 MiB in turn: each restored with its own checksum', async () => {
    for (const [mib, seed] of [
      [9, 1],
      [1, 2],
      [17, 3],
      [2, 4],
    ] as const) {
      const w = startWorkload('memhog', [String(mib), String(seed)]);
      await waitFor(() => sums(w.report).length > 0, `memhog ${mib} MiB ready`);
      const dir = tempDir('criu-ts-again-');
      await dump({ pid: w.pid, imagesDir: dir });
      const { root } = restore({ imagesDir: dir });
      track(root);
      expect(root).toBe(w.pid);
      process.kill(root, SIGUSR1);
      await waitFor(() => sums(w.report).length > 1, `memhog ${mib} MiB checked after the restore`);
      const [before, after] = sums(w.report);
      expect(after, `memhog ${mib} MiB seed ${seed}`).toBe(before);
    }
  });
});
