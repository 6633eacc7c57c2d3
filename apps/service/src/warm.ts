// A pool worker's warm-up, before it says it is ready: dumps and one restore of a `sleep` of its own,
// so that the code of both paths is compiled (and its first-use work done: codecs, koffi declarations,
// the CPU's XSAVE layout) before a client waits on it. The first dump in a fresh Node process takes
// several times a warm one, and a worker that restored for a client exits, so without this every dump
// after a restore would be a cold one. Off the clients' path; a warm-up that fails only costs speed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { dump, restore } from '@criu-ts/core';

const SLEEP = ['/usr/bin/sleep', '/bin/sleep'];
const WARM_DUMPS = 4;

/** CRIU_TS_SERVICE_WARMUP=0 turns it off. */
export async function warmUp(): Promise<void> {
  if (process.env.CRIU_TS_SERVICE_WARMUP === '0') return;
  const dir = mkdtempSync(join(tmpdir(), 'criu-ts-warmup-'));
  let pid = 0;
  try {
    for (const exe of SLEEP) {
      try {
        pid = startTraceable([exe, '1000'], { setsid: true });
        break;
      } catch {
        // the next one
      }
    }
    if (pid === 0) return;
    // V8 optimizes what runs often: a few dumps left running, then one that kills, and its restore.
    for (let i = 0; i < WARM_DUMPS; i++) await dump({ pid, imagesDir: dir, leaveRunning: true });
    await dump({ pid, imagesDir: dir });
    killAndReap(pid);
    pid = restore({ imagesDir: dir }).root;
  } catch {
    // a warm-up only
  } finally {
    if (pid > 0) killAndReap(pid);
    rmSync(dir, { recursive: true, force: true });
  }
}
