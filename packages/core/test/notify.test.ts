// DumpOptions.notify and RestoreOptions.notify (notify/): the stages a hook is told, in CRIU 4.2's
// order and with CRIU's pids (CRTOOLS_INIT_PID: the root's; none before the restored root exists), what
// the tree looks like from outside at each one, and what a hook that throws leaves: a dump leaves the
// tree running as it was (its connection unlocked), a restore leaves none of its tasks alive and the
// images good for a second restore; a throw at post-resume is logged and the restore stands, as in CRIU.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { killAndReap } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  DumpError,
  dump,
  type Logger,
  type Notify,
  type NotifyStage,
  RestoreError,
  restore,
  silentLogger,
} from '../src/index.js';
import {
  buildWorkloads,
  cleanup,
  expectAsBefore,
  expectCountsOn,
  failLines,
  onCleanup,
  procState,
  snapshot,
  startCommand,
  startWorkload,
  tempDir,
  tracerPid,
  track,
  treeOf,
  waitFor,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

const newImagesDir = () => path.join(tempDir('criu-ts-notify-'), 'images');

interface Seen {
  stage: NotifyStage;
  pid: number;
  /** What the test saw from outside at that moment. */
  facts: string;
}

/** A hook that records each stage with what `look` sees then, and throws at `failAt`. */
function recorder(look: (stage: NotifyStage) => string, failAt?: NotifyStage): Notify & { seen: Seen[] } {
  const seen: Seen[] = [];
  const hook = (stage: NotifyStage, pid: number) => {
    seen.push({ stage, pid, facts: look(stage) });
    if (stage === failAt) throw new Error(`refused at ${stage}`);
  };
  return Object.assign(hook, { seen });
}

/** "S untraced" / "t traced" / "gone" for each pid, in order. */
const states = (pids: number[]) =>
  pids
    .map((p) => {
      const s = procState(p);
      // A zombie is dead: one re-parented to this subreaper stays until cleanup reaps it.
      if (s === 'gone' || s === 'Z') return 'gone';
      return `${s === 't' || s === 'T' ? 't' : 'run'} ${tracerPid(p) === 0 ? 'untraced' : 'traced'}`;
    })
    .join(',');

// ---- a TCP connection: a client in the tree, an echo server here ------------------------------------------

const ECHO_CLIENT = `
import os, socket, sys, time
out = open(sys.argv[1], 'a', buffering=1)
c = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
out.write('READY %d\\n' % os.getpid())
buf = b''
for i in range(1, 10**9):
    c.sendall(b'%d\\n' % i)
    while b'\\n' not in buf:
        d = c.recv(4096)
        if not d: out.write('FAIL EOF\\n'); sys.exit(1)
        buf += d
    line, buf = buf.split(b'\\n', 1)
    if int(line) != i: out.write('FAIL got %s wanted %d\\n' % (line, i)); sys.exit(1)
    out.write('%d\\n' % i)
    time.sleep(0.005)
`;

const haveNft = (() => {
  try {
    execFileSync('nft', ['list', 'tables'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** An echo client (python) connected to a server of this process: the tree holds one established TCP connection. */
async function startEchoClient(): Promise<{ pid: number; report: string; troubles: string[] }> {
  const troubles: string[] = [];
  const server = net.createServer((s) => {
    s.on('end', () => troubles.push('end'));
    s.on('error', (e) => troubles.push(`error ${e.message}`));
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => {
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const report = path.join(tempDir('criu-ts-notify-tcp-'), 'report');
  const pid = await startCommand(['/usr/bin/python3', '-c', ECHO_CLIENT, report, String(port)]);
  await waitForLine(report, /^5$/, { pid });
  return { pid, report, troubles };
}

/** The nftables lock table of the dump in `dir` (CRIU's name: CRIU-<run id>, cut to 26 characters). */
function lockTableOf(dir: string): string | undefined {
  const runId = ImageDir.open(dir).inventory().dump_criu_run_id;
  return runId ? `inet CRIU-${runId}`.slice(0, 31).slice('inet '.length) : undefined;
}

function lockTableExists(dir: string): boolean {
  const name = lockTableOf(dir);
  if (!name) return false;
  try {
    execFileSync('nft', ['list', 'table', 'inet', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** At cleanup, the lock of the dump in `dir` goes if a failed test left it. */
function unlockAtCleanup(dir: string): void {
  onCleanup(() => {
    const name = fs.existsSync(path.join(dir, 'inventory.img')) ? lockTableOf(dir) : undefined;
    if (name && lockTableExists(dir)) execFileSync('nft', ['delete', 'table', 'inet', name]);
  });
}

const killAndReapAll = (pids: number[]) => {
  for (const p of pids) killAndReap(p);
};

// ---- dump ---------------------------------------------------------------------------------------------

describe('dump(): the notify hook', () => {
  for (const leaveRunning of [false, true]) {
    it(`a tree of 5 tasks${leaveRunning ? ' with leaveRunning' : ''}: pre-dump before it is seized, post-dump once the images are written, both with the root's pid`, async () => {
      const w = startWorkload('tree');
      await waitForLine(w.report, /^TREE /, { pid: w.pid });
      const pids = treeOf(w.pid);
      for (const p of pids) track(p); // startWorkload tracks the root only
      expect(pids).toHaveLength(5);
      const dir = newImagesDir();
      const hook = recorder(
        () =>
          `${states(pids)} inventory=${fs.existsSync(path.join(dir, 'inventory.img'))} stats=${fs.existsSync(path.join(dir, 'stats-dump'))}`,
      );
      await dump({ pid: w.pid, imagesDir: dir, leaveRunning, notify: hook });
      const untraced = pids.map(() => 'run untraced').join(',');
      const frozen = pids.map(() => 't traced').join(',');
      expect(hook.seen).toEqual([
        { stage: 'pre-dump', pid: w.pid, facts: `${untraced} inventory=false stats=false` },
        // CRIU asks before it writes stats-dump (only a dump that went on writes it)
        { stage: 'post-dump', pid: w.pid, facts: `${frozen} inventory=true stats=false` },
      ]);
      expect(fs.existsSync(path.join(dir, 'stats-dump'))).toBe(true);
      if (leaveRunning) expect(states(pids)).toBe(untraced);
      else {
        // killed; a child re-parented to us as its parent died may be reaped a moment later
        const gone = pids.map(() => 'gone').join(',');
        await waitFor(
          () => states(pids) === gone,
          () => `the tree gone: ${states(pids)}`,
        );
      }
    });
  }

  it.skipIf(!haveNft)(
    'an established TCP connection, locked with nftables: no network-lock or network-unlock (as CRIU for a tree in our net namespace); locked at post-dump, unlocked after',
    async () => {
      const c = await startEchoClient();
      const dir = newImagesDir();
      unlockAtCleanup(dir);
      const hook = recorder((stage) => (stage === 'post-dump' ? `locked=${lockTableExists(dir)}` : ''));
      await dump({
        pid: c.pid,
        imagesDir: dir,
        leaveRunning: true,
        tcpEstablished: true,
        networkLock: 'nftables',
        notify: hook,
      });
      expect(hook.seen).toEqual([
        { stage: 'pre-dump', pid: c.pid, facts: '' },
        { stage: 'post-dump', pid: c.pid, facts: 'locked=true' },
      ]);
      expect(lockTableExists(dir)).toBe(false);
      await expectCountsOn(c.report, c.pid);
      expect(c.troubles).toEqual([]);
    },
  );

  for (const stage of ['pre-dump', 'post-dump'] as const) {
    for (const leaveRunning of [false, true]) {
      it(`a hook that throws at ${stage}${leaveRunning ? ' (leaveRunning)' : ''}: the dump fails naming the stage, the tree runs on as it was`, async () => {
        const w = startWorkload('counter');
        await waitForLine(w.report, /^5$/, { pid: w.pid });
        const before = snapshot(w.pid);
        const hook = recorder(() => '', stage);
        const err = await dump({ pid: w.pid, imagesDir: newImagesDir(), leaveRunning, notify: hook }).catch(
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(DumpError);
        expect((err as Error).message).toBe(`notify ${stage} failed: refused at ${stage}`);
        expect(((err as Error).cause as Error).message).toBe(`refused at ${stage}`);
        expect(hook.seen.map((s) => s.stage)).toEqual(
          stage === 'pre-dump' ? ['pre-dump'] : ['pre-dump', 'post-dump'],
        );
        await expectAsBefore(w.pid, before);
        await expectCountsOn(w.report, w.pid);
      });
    }
  }

  it.skipIf(!haveNft)(
    'a hook that throws at post-dump with a locked TCP connection: the lock is lifted and the connection goes on',
    async () => {
      const c = await startEchoClient();
      const dir = newImagesDir();
      unlockAtCleanup(dir);
      let lockedThen = false;
      const hook = recorder((stage) => {
        if (stage === 'post-dump') lockedThen = lockTableExists(dir);
        return '';
      }, 'post-dump');
      await expect(
        dump({ pid: c.pid, imagesDir: dir, tcpEstablished: true, networkLock: 'nftables', notify: hook }),
      ).rejects.toThrow(/^notify post-dump failed: refused at post-dump$/);
      expect(lockedThen).toBe(true);
      expect(lockTableExists(dir)).toBe(false);
      await waitFor(() => tracerPid(c.pid) === 0, `pid ${c.pid} untraced`);
      await expectCountsOn(c.report, c.pid);
      expect(c.troubles).toEqual([]);
    },
  );

  it('an async hook is refused at its first stage: nothing would wait for it', async () => {
    const w = startWorkload('counter');
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    const before = snapshot(w.pid);
    const hook = (async () => {
      throw new Error('too late');
    }) as unknown as Notify;
    await expect(dump({ pid: w.pid, imagesDir: newImagesDir(), notify: hook })).rejects.toThrow(
      'notify pre-dump failed: the hook returned a promise; it must be synchronous',
    );
    await expectAsBefore(w.pid, before);
  });
});

// ---- restore ------------------------------------------------------------------------------------------

/** A tree of 5 tasks dumped (and killed); its pids, root first, and the images dir. */
async function dumpedTree(): Promise<{ pids: number[]; dir: string }> {
  const w = startWorkload('tree');
  await waitForLine(w.report, /^TREE /, { pid: w.pid });
  const pids = treeOf(w.pid);
  for (const p of pids) track(p); // startWorkload tracks the root only
  expect(pids).toHaveLength(5);
  const dir = newImagesDir();
  await dump({ pid: w.pid, imagesDir: dir });
  killAndReapAll(pids); // reaped already by the dump: nothing is left to hold a pid
  return { pids, dir };
}

/** Restore `dir`, every pid it gives tracked for cleanup (also when it throws). */
function restoreTracked(dir: string, pids: number[], notify?: Notify, logger?: Logger) {
  for (const p of pids) track(p);
  return restore({ imagesDir: dir, notify, logger: logger ?? silentLogger });
}

/** The restored tree runs: every task there, untraced, asleep in pause(). */
async function expectTreeRuns(pids: number[]): Promise<void> {
  await waitFor(() => pids.every((p) => tracerPid(p) === 0), 'the restored tree untraced');
  expect(states(pids)).toBe(pids.map(() => 'run untraced').join(','));
  expect(treeOf(pids[0]!).sort()).toEqual([...pids].sort());
}

describe('restore(): the notify hook', () => {
  it("a tree of 5 tasks: pre-restore (no pid) before any task exists, post-restore and pre-resume with every task made and stopped, post-resume once they run; the root's pid", async () => {
    const { pids, dir } = await dumpedTree();
    const hook = recorder(() => states(pids));
    const r = restoreTracked(dir, pids, hook);
    expect(r.root).toBe(pids[0]);
    const gone = pids.map(() => 'gone').join(',');
    const stopped = pids.map(() => 't traced').join(',');
    const running = pids.map(() => 'run untraced').join(',');
    expect(hook.seen).toEqual([
      { stage: 'pre-restore', pid: 0, facts: gone },
      { stage: 'post-restore', pid: pids[0], facts: stopped },
      { stage: 'pre-resume', pid: pids[0], facts: stopped },
      { stage: 'post-resume', pid: pids[0], facts: running },
    ]);
    await expectTreeRuns(pids);
  });

  for (const stage of ['pre-restore', 'post-restore', 'pre-resume'] as const) {
    it(`a hook that throws at ${stage}: the restore fails naming the stage, no task of it is left alive, a second restore of the images succeeds`, async () => {
      const { pids, dir } = await dumpedTree();
      const hook = recorder(() => '', stage);
      let err: unknown;
      try {
        restoreTracked(dir, pids, hook);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RestoreError);
      expect((err as Error).message).toBe(`notify ${stage} failed: refused at ${stage}`);
      expect(hook.seen.at(-1)?.stage).toBe(stage);
      expect(states(pids)).toBe(pids.map(() => 'gone').join(','));

      const again = recorder(() => '');
      expect(restoreTracked(dir, pids, again).root).toBe(pids[0]);
      expect(again.seen.map((s) => s.stage)).toEqual([
        'pre-restore',
        'post-restore',
        'pre-resume',
        'post-resume',
      ]);
      await expectTreeRuns(pids);
    });
  }

  it.skipIf(!haveNft)(
    'a hook that throws at pre-resume with an established TCP connection: it stays locked (the peer sees nothing), and the second restore has it echo on',
    async () => {
      const c = await startEchoClient();
      const dir = newImagesDir();
      unlockAtCleanup(dir);
      await dump({ pid: c.pid, imagesDir: dir, tcpEstablished: true });
      killAndReapAll([c.pid]);
      expect(lockTableExists(dir)).toBe(true);
      expect(() =>
        restoreTracked(
          dir,
          [c.pid],
          recorder(() => '', 'pre-resume'),
        ),
      ).toThrow(/^notify pre-resume failed: refused at pre-resume$/);
      expect(procState(c.pid)).toBe('gone');
      expect(lockTableExists(dir)).toBe(true);
      expect(restoreTracked(dir, [c.pid]).root).toBe(c.pid);
      expect(lockTableExists(dir)).toBe(false);
      await waitForMoreLines(c.report, 5, c.pid);
      expect(failLines(c.report)).toEqual([]);
      expect(c.troubles).toEqual([]);
    },
  );

  it('a hook that throws at post-resume: logged, the restore stands (CRIU: "Post-resume script ret code", exit 0)', async () => {
    const w = startWorkload('counter');
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    const dir = newImagesDir();
    await dump({ pid: w.pid, imagesDir: dir });
    killAndReapAll([w.pid]);
    const errors: string[] = [];
    const logger: Logger = { ...silentLogger, error: (m) => errors.push(m), child: () => logger };
    const r = restoreTracked(
      dir,
      [w.pid],
      recorder(() => '', 'post-resume'),
      logger,
    );
    expect(r.root).toBe(w.pid);
    expect(errors).toEqual([
      'notify post-resume failed: refused at post-resume (the tree runs already: nothing is undone)',
    ]);
    await expectCountsOn(w.report, w.pid);
  });
});

// ---- CRIU 4.2, for comparison --------------------------------------------------------------------------

const CRIU = process.env.CRIU_BIN ?? '/tmp/criu-zdtm-main/criu/criu';
const haveCriu = fs.existsSync(CRIU);

/** An action script that appends "STAGE PID" (CRTOOLS_INIT_PID, 0 when unset) to `log`. */
function actionScript(log: string): string {
  const script = path.join(path.dirname(log), 'action.sh');
  fs.writeFileSync(script, `#!/bin/sh\necho "$CRTOOLS_SCRIPT_ACTION \${CRTOOLS_INIT_PID:-0}" >> '${log}'\n`, {
    mode: 0o755,
  });
  return script;
}

function criu(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(CRIU, args, (err, _out, stderr) =>
      err ? reject(new Error(`criu ${args[0]}: ${stderr}`)) : resolve(),
    );
  });
}

const stagesOf = (log: string) =>
  fs
    .readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([stage, pid]) => ({ stage: stage as NotifyStage, pid: Number(pid) }));

describe.skipIf(!haveCriu)("the same stages as CRIU 4.2's action scripts (CRIU_BIN)", () => {
  it.skipIf(!haveNft)(
    'a dump (leave running) of a tree with an established TCP connection: pre-dump and post-dump, the root pid',
    async () => {
      const dir = tempDir('criu-ts-notify-criu-');
      const log = path.join(dir, 'stages');
      const viaCriu = await startEchoClient();
      const criuImages = path.join(dir, 'criu-images');
      fs.mkdirSync(criuImages);
      await criu([
        'dump',
        '-t',
        String(viaCriu.pid),
        '-D',
        criuImages,
        '-R',
        '--tcp-established',
        '--action-script',
        actionScript(log),
        '-o',
        'dump.log',
      ]);
      await expectCountsOn(viaCriu.report, viaCriu.pid);

      const ours = await startEchoClient();
      const hook = recorder(() => '');
      await dump({
        pid: ours.pid,
        imagesDir: newImagesDir(),
        leaveRunning: true,
        tcpEstablished: true,
        notify: hook,
      });
      const mine = hook.seen.map(({ stage, pid }) => ({ stage, pid: pid === ours.pid ? 'root' : pid }));
      const theirs = stagesOf(log).map(({ stage, pid }) => ({
        stage,
        pid: pid === viaCriu.pid ? 'root' : pid,
      }));
      expect(mine).toEqual(theirs);
      expect(theirs.map((s) => s.stage)).toEqual(['pre-dump', 'post-dump']);
    },
  );

  it("a restore of CRIU's images: pre-restore (no pid), post-restore, pre-resume, post-resume (the root's)", async () => {
    const w = startWorkload('counter');
    await waitForLine(w.report, /^5$/, { pid: w.pid });
    const dir = tempDir('criu-ts-notify-criu-');
    const images = path.join(dir, 'images');
    fs.mkdirSync(images);
    await criu(['dump', '-t', String(w.pid), '-D', images, '-o', 'dump.log']);
    killAndReapAll([w.pid]);
    const log = path.join(dir, 'stages');
    track(w.pid);
    await criu(['restore', '-d', '-D', images, '--action-script', actionScript(log), '-o', 'restore.log']);
    await waitForMoreLines(w.report, 3, w.pid);
    killAndReapAll([w.pid]);

    const hook = recorder(() => '');
    expect(restoreTracked(images, [w.pid], hook).root).toBe(w.pid);
    // it counts on (from where the images left it: CRIU's run counted past that already)
    await waitForMoreLines(w.report, 5, w.pid);
    expect(failLines(w.report)).toEqual([]);
    expect(hook.seen.map(({ stage, pid }) => ({ stage, pid }))).toEqual(stagesOf(log));
    expect(stagesOf(log)).toEqual([
      { stage: 'pre-restore', pid: 0 },
      { stage: 'post-restore', pid: w.pid },
      { stage: 'pre-resume', pid: w.pid },
      { stage: 'post-resume', pid: w.pid },
    ]);
  });
});
