// A dump and a restore of a live process through @criu-ts/rpc, every notification printed.
//
//   sudo npx tsx examples/dump-restore.ts                      # criu-ts swrk (criu-ts from PATH)
//   sudo npx tsx examples/dump-restore.ts --binary /usr/sbin/criu
//   sudo npx tsx examples/dump-restore.ts --service /run/criu-ts.sock
//
// The process is a python3 loop that writes a growing number into a file every 50 ms: after the
// restore the number goes on from where the dump stopped it. (One process: a shell loop would fork a
// `sleep` whose zombie, until someone reaps it, keeps the shell's pid busy as its process group.)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CriuClient, CriuConnectionError, CriuRpcError, type NotifyFunction } from '@criu-ts/rpc';

const args = process.argv.slice(2);
const flag = (name: string) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : undefined);
const socket = flag('--service');
const client = socket ? CriuClient.service(socket) : CriuClient.swrk(flag('--binary') ?? 'criu-ts');

const work = mkdtempSync(join(tmpdir(), 'criu-rpc-example-'));
const imagesDir = join(work, 'images');
const counterFile = join(work, 'counter');
const count = () => Number(readFileSync(counterFile, 'utf8').trim() || 0);

/** Wait (bounded) until the counter file holds more than `n`. */
async function countsPast(n: number): Promise<number> {
  for (let i = 0; i < 400; i++) {
    try {
      if (count() > n) return count();
    } catch {
      // not written yet
    }
    await delay(10);
  }
  throw new Error(`the counter did not go past ${n}`);
}

const started = Date.now();
const log: NotifyFunction = (stage, pid) =>
  console.log(`  ${String(Date.now() - started).padStart(5)} ms  ${stage}${pid ? ` (pid ${pid})` : ''}`);

try {
  const v = await client.version();
  console.log(
    `server: ${v.name ?? 'criu'} ${v.major_number}.${v.minor_number}${v.sublevel ? `.${v.sublevel}` : ''}`,
  );

  const loop = [
    'import sys, time',
    'i = 0',
    'while True:',
    '    i += 1',
    "    with open(sys.argv[1], 'w') as f: f.write(str(i))",
    '    time.sleep(0.05)',
  ].join('\n');
  const child = spawn('python3', ['-c', loop, counterFile], { detached: true, stdio: 'ignore' });
  const gone = once(child, 'exit');
  const pid = child.pid ?? 0;
  const before = await countsPast(2);
  console.log(`dumping pid ${pid} (counter at ${before})`);
  await client.dump({ pid, imagesDir, log_file: 'dump.log', notify: log });
  await gone; // the dump killed the loop: reaped here, its pid is free again

  const frozenAt = count();
  console.log(`restoring (counter stopped at ${frozenAt})`);
  const { pid: restored } = await client.restore({ imagesDir, log_file: 'restore.log', notify: log });
  console.log(`restored pid ${restored}; counter now ${await countsPast(frozenAt)}`);
  process.kill(restored, 'SIGKILL');
} catch (e) {
  if (e instanceof CriuRpcError) {
    // The server said no: its errno and message, and the log in the images dir.
    console.error(
      `${e.message}\n  see ${join(imagesDir, e.requestTypeName === 'DUMP' ? 'dump.log' : 'restore.log')}`,
    );
  } else if (e instanceof CriuConnectionError) {
    // No answer at all: the swrk did not start or died, or the service is not there.
    console.error(e.message, e.exit ?? '');
  } else {
    throw e;
  }
  process.exitCode = 1;
} finally {
  await client.close();
  if (process.exitCode !== 1) rmSync(work, { recursive: true, force: true });
}
