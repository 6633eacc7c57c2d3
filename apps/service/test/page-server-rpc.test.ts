// criu_opts.ps on a DUMP, as CRIU honours it: the memory goes to the page server at ps.address:ps.port
// (a runtime's `checkpoint --page-server`), the other images to images_dir; the two put together restore.
import fs from 'node:fs';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { servePages } from '@criu-ts/page-server';
import { CriuClient } from '@criu-ts/rpc';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  REPO,
  readLines,
  startWorkload,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

describe('RPC DUMP with criu_opts.ps', () => {
  it('sends the memory to the page server; the images put together restore with the same memory', async () => {
    const w = startWorkload('memhog', ['8']);
    const sum = (await waitForLine(w.report, /^SUM /, { pid: w.pid })).trim();
    const d1 = tempDir('ps-rpc-');
    const d2 = tempDir('ps-rpc-');
    let port = 0;
    const served = servePages({ dir: d2, host: '127.0.0.1', port: 0, onListening: (p) => (port = p) });
    await waitFor(() => port > 0, 'the page server to listen');
    const client = CriuClient.swrk(path.join(REPO, 'node_modules/.bin/criu-ts'));
    try {
      await client.dump({ pid: w.pid, imagesDir: d1, ps: { address: '127.0.0.1', port } });
      const got = await served;
      expect(got.pagemaps.map((p) => p.pagemap)).toEqual([`pagemap-${w.pid}.img`]);
      killAndReap(w.pid);
      expect(fs.readdirSync(d1).filter((f) => /^pag/.test(f))).toEqual([]);
      for (const f of fs.readdirSync(d2))
        if (/^(pagemap-|pages-)/.test(f)) fs.copyFileSync(path.join(d2, f), path.join(d1, f));
      expect((await client.restore({ imagesDir: d1, rst_sibling: true })).pid).toBe(w.pid);
      track(w.pid);
      const before = readLines(w.report).length;
      process.kill(w.pid, 'SIGUSR1');
      await waitFor(() => readLines(w.report).length > before, 'a SUM line after the restore');
      expect(readLines(w.report).at(-1)).toBe(sum);
    } finally {
      await client.close();
    }
  });
});
