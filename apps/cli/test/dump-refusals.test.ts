// Objects restore cannot bring back are refused at dump, before the tree is killed: the dump ends with
// one line naming the task and the object (CRIU's words where CRIU refuses it too), exit code 1, and
// every task runs on as it was: untraced, not stopped, same maps, signals and fds, its own checks
// passing. A dump that succeeded into images restore then fails on is the bug these tests guard.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildWorkloads,
  cleanup,
  expectAsBefore,
  expectCountsOn,
  oneLineFailure,
  PYTHON,
  procStat,
  procState,
  procStatus,
  runCli,
  snapshot,
  startCommand,
  startPythonCounter,
  tempDir,
  tracerPid,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});

afterEach(() => cleanup());

const newImagesDir = () => path.join(tempDir('criu-ts-core-refuse-'), 'images');

/** Dump a python counter started with `prelude`: refused with a line matching `line`; it counts on. */
async function refusedPython(prelude: string, line: (pid: number) => RegExp): Promise<string> {
  const py = await startPythonCounter(prelude);
  await waitForLine(py.report, /^3$/, { pid: py.pid });
  const before = snapshot(py.pid);
  const r = await runCli(['dump', '-t', String(py.pid), '-D', newImagesDir()]);
  const got = oneLineFailure(r);
  expect(got).toMatch(line(py.pid));
  await expectAsBefore(py.pid, before);
  await expectCountsOn(py.report, py.pid);
  return got;
}

/** The children of `pid` (its main thread's), once there are `n`. */
async function childrenOf(pid: number, n: number): Promise<number[]> {
  let kids: number[] = [];
  await waitFor(() => {
    const text = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    kids = text ? text.split(/\s+/).map(Number) : [];
    return kids.length === n;
  }, `${n} children of ${pid}`);
  track(...kids);
  return kids;
}

/** Every task untraced and asleep (a failed dump let them go as they were). */
async function expectAllRunning(pids: number[]): Promise<void> {
  await waitFor(() => pids.every((p) => tracerPid(p) === 0), 'every task untraced');
  for (const p of pids) expect(procState(p), `pid ${p}`).toBe('S');
}

const nsLink = (pid: number, kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

describe('namespaces (not dumped yet): refused, the tree runs on', () => {
  it('unshare --fork --pid --mount-proc --uts --ipc sleep: refused naming the root and its namespace', async () => {
    const root = await startCommand([
      '/usr/bin/unshare',
      '--fork',
      '--pid',
      '--mount-proc',
      '--uts',
      '--ipc',
      '/usr/bin/sleep',
      '1000',
    ]);
    const [sleeper] = await childrenOf(root, 1);
    await waitFor(() => fs.readlinkSync(`/proc/${sleeper}/exe`) === '/usr/bin/sleep', 'sleep to run');
    expect(nsLink(root, 'uts')).not.toBe(nsLink(process.pid, 'uts'));
    const r = await runCli(['dump', '-t', String(root), '-D', newImagesDir()]);
    const line = oneLineFailure(r);
    expect(line).toMatch(new RegExp(`^criu-ts: pid ${root} is in a (ipc|uts|mnt) namespace of its own`));
    expect(line).toMatch(/dumping namespaces is not supported yet/);
    await expectAllRunning([root, sleeper!]);
    // The sleep is still pid 1 of its own namespace, as before.
    expect(procStatus(sleeper!).NSpid).toMatch(/\s1$/);
  });

  it('a child that entered a uts namespace of its own: refused with CRIU words, naming the child', async () => {
    const sh = await startCommand(['/bin/sh', '-c', '/usr/bin/unshare --uts /usr/bin/sleep 1000 & wait']);
    const [child] = await childrenOf(sh, 1);
    await waitFor(() => nsLink(child!, 'uts') !== nsLink(sh, 'uts'), 'the child in its own uts namespace');
    await waitFor(() => fs.readlinkSync(`/proc/${child}/exe`) === '/usr/bin/sleep', 'sleep to run');
    const r = await runCli(['dump', '-t', String(sh), '-D', newImagesDir()]);
    expect(oneLineFailure(r)).toBe(`criu-ts: Can't dump nested uts namespace for ${child}`);
    await expectAllRunning([sh, child!]);
  });

  it('a time namespace made for the children (unshare(CLONE_NEWTIME), no child yet): refused as CRIU does', async () => {
    await refusedPython(
      'import ctypes; assert ctypes.CDLL(None, use_errno=True).unshare(0x80) == 0',
      (pid) => new RegExp(`^criu-ts: Can't dump nested time namespace for ${pid}$`),
    );
  });
});

describe('trees restore cannot make again', () => {
  it('a task whose session leader died and whose new parent (a child subreaper) is in another session', async () => {
    const d = tempDir('criu-ts-core-sessions-');
    const ready = path.join(d, 'ready');
    const script = [
      'import ctypes, os, sys, time',
      'ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)', // PR_SET_CHILD_SUBREAPER
      'r, w = os.pipe()',
      's = os.fork()',
      'if s == 0:',
      '    os.setsid()',
      '    g = os.fork()',
      '    if g == 0:',
      '        time.sleep(1000)',
      '    os.write(w, str(g).encode()); os._exit(0)', // the session leader dies, a zombie nobody reaps
      'g = int(os.read(r, 32))',
      "open(sys.argv[1] + '.t', 'w').write('%d %d' % (s, g)); os.rename(sys.argv[1] + '.t', sys.argv[1])",
      'time.sleep(1000)',
    ].join('\n');
    const root = await startCommand([PYTHON, '-c', script, ready]);
    await waitFor(() => fs.existsSync(ready), 'the tree set up');
    const [leader, orphan] = fs.readFileSync(ready, 'utf8').split(' ').map(Number) as [number, number];
    track(leader, orphan);
    await waitFor(
      () => procState(leader) === 'Z' && procStat(orphan).f(4) === String(root),
      'the orphan taken in',
    );
    const r = await runCli(['dump', '-t', String(root), '-D', newImagesDir()]);
    expect(oneLineFailure(r)).toBe(
      `criu-ts: pid ${orphan} is in session ${leader} but its parent ${root} is in session ${root}: restore cannot make that yet`,
    );
    await expectAllRunning([root, orphan]);
    expect(procState(leader)).toBe('Z');
  });
});

describe('refused as CRIU refuses them', () => {
  it('a pending SIGTRAP (blocked, with a handler): refused; it stays pending, the handler and mask kept', async () => {
    const py = await startPythonCounter(
      [
        'import signal',
        'signal.signal(signal.SIGTRAP, lambda *a: None)',
        'signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTRAP])',
        'os.kill(os.getpid(), signal.SIGTRAP)',
      ].join('\n'),
    );
    await waitForLine(py.report, /^3$/, { pid: py.pid });
    const bit = 1n << 4n; // SIGTRAP is 5
    const status = () => procStatus(py.pid);
    const pending = () => BigInt(`0x${status().ShdPnd}`) | BigInt(`0x${status().SigPnd}`);
    expect(pending() & bit).toBe(bit);
    const before = snapshot(py.pid);
    const r = await runCli(['dump', '-t', String(py.pid), '-D', newImagesDir()]);
    expect(oneLineFailure(r)).toBe(`criu-ts: Can't dump the ${py.pid} thread with a pending SIGTRAP.`);
    await expectAsBefore(py.pid, before);
    expect(pending() & bit).toBe(bit);
    expect(BigInt(`0x${status().SigBlk}`) & bit).toBe(bit);
    expect(BigInt(`0x${status().SigCgt}`) & bit).toBe(bit);
    await expectCountsOn(py.report, py.pid);
  });

  it('a corked UDP socket holding a datagram: refused naming pid, fd and socket', async () => {
    const line = await refusedPython(
      [
        'import socket',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        "s.bind(('127.0.0.1', 0)); s.connect(s.getsockname())",
        's.setsockopt(socket.SOL_UDP, 1, 1)', // UDP_CORK
        "s.send(b'corked')",
      ].join('\n'),
      (pid) => new RegExp(`^criu-ts: pid ${pid} fd 3: Can't dump corked dgram socket [0-9a-f]+$`),
    );
    expect(line).toBeDefined();
  });

  it('an MPTCP socket: refused with the protocol, as CRIU does', async () => {
    await refusedPython(
      'import socket; m = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)',
      (pid) => new RegExp(`^criu-ts: pid ${pid} fd 3: Unsupported proto 262 for socket [0-9a-f]+ `),
    );
  });
});

describe('not restorable yet: refused, the tree runs on', () => {
  it.skipIf(!fs.existsSync('/dev/net/tun'))(
    'an fd of /dev/net/tun: refused, it would come back as a new tun device',
    async () => {
      await refusedPython(
        "t = os.open('/dev/net/tun', os.O_RDWR)",
        (pid) =>
          new RegExp(
            `^criu-ts: pid ${pid} fd 3: /dev/net/tun is a tun/tap device \\(its interface\\): opened again it would be a new one; not supported yet$`,
          ),
      );
    },
  );

  it("an AIO ring whose header the task overwrote: refused in CRIU's words (its sanity check)", async () => {
    // The kernel reads only head (and the id) from the ring; CRIU dumps a ring only as the kernel made
    // it (magic, features, header length, nr), and restore needs head and tail inside the ring.
    await refusedPython(
      [
        'import ctypes',
        'ctx = ctypes.c_ulong(0)',
        'assert ctypes.CDLL(None).syscall(206, 64, ctypes.byref(ctx)) == 0', // io_setup
        'ctypes.c_uint.from_address(ctx.value + 16).value = 0', // struct aio_ring.magic
      ].join('\n'),
      (pid) =>
        new RegExp(
          `^criu-ts: Failed to check aio rings \\(pid: ${pid}\\): ring #0 at [0-9a-f]+-[0-9a-f]+: Not valid ring #0 \\(magic 0, cf 1, if 0, header size 32 \\(32\\), nr \\d+ \\(\\d+\\), head 0, tail 0\\)$`,
        ),
    );
  });
});

describe('files restore could not open again by their names', () => {
  it('a datagram socket paired with an unnamed one outside the tree: refused, naming it', async () => {
    const d = tempDir('criu-ts-core-unnamed-');
    const report = path.join(d, 'report');
    // The parent (outside the dumped tree) keeps one end of the pair; its child, dumped alone, the other.
    const script = [
      'import os, socket, sys, time',
      'a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)',
      'if os.fork() == 0:',
      '    a.close()',
      "    out = open(sys.argv[1], 'a', buffering=1); out.write('READY %d\\n' % os.getpid()); n = 0",
      '    while True:',
      "        n += 1; out.write('%d\\n' % n); time.sleep(0.01)",
      'b.close(); time.sleep(1000)',
    ].join('\n');
    const parent = await startCommand([PYTHON, '-c', script, report]);
    const child = Number((await waitForLine(report, /^READY /, { pid: parent })).split(' ')[1]);
    track(child);
    await waitForLine(report, /^3$/, { pid: child });
    const before = snapshot(child);
    const r = await runCli([
      'dump',
      '-t',
      String(child),
      '-D',
      newImagesDir(),
      '--shell-job',
      '--ext-unix-sk',
    ]);
    expect(oneLineFailure(r)).toMatch(
      new RegExp(
        `^criu-ts: pid ${child} fd \\d+: unix socket \\d+ is connected to socket \\d+, which no task of the tree holds: that datagram socket outside the tree has no name to connect to again$`,
      ),
    );
    await expectAsBefore(child, before);
    await expectCountsOn(report, child);
  });

  it('a datagram socket sending to an outside socket whose name was unlinked (--ext-unix-sk): refused', async () => {
    const d = tempDir('criu-ts-core-extsk-');
    const name = path.join(d, 'log.sock');
    const ready = path.join(d, 'ready');
    const outside = await startCommand([
      '/usr/bin/python3',
      '-c',
      'import socket, sys, time\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])\nopen(sys.argv[2], "w").close()\ntime.sleep(1000)',
      name,
      ready,
    ]);
    await waitFor(() => fs.existsSync(ready), 'the outside socket bound');
    const py = await startPythonCounter(
      `import socket\nc = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); c.connect(${JSON.stringify(name)})`,
    );
    await waitForLine(py.report, /^3$/, { pid: py.pid });
    fs.unlinkSync(name);
    const before = snapshot(py.pid);
    const r = await runCli(['dump', '-t', String(py.pid), '-D', newImagesDir(), '--ext-unix-sk']);
    expect(oneLineFailure(r)).toMatch(
      new RegExp(
        `^criu-ts: pid ${py.pid} fd 3: unix socket \\d+ sends to the external socket ${name}, whose name leads elsewhere now \\(unlinked\\)`,
      ),
    );
    await expectAsBefore(py.pid, before);
    await expectCountsOn(py.report, py.pid);
    expect(procState(outside)).toBe('S');
  });

  it('an unlinked file still linked under another name: refused as CRIU does without --link-remap', async () => {
    const d = tempDir('criu-ts-core-linked-');
    const a = path.join(d, 'a');
    await refusedPython(
      [`a = ${JSON.stringify(a)}`, "f = open(a, 'w'); os.link(a, a + '.b'); os.unlink(a)"].join('\n'),
      (pid) =>
        new RegExp(
          `^criu-ts: pid ${pid} fd 3: Can't create link remap for ${a}\\. Use link-remap option\\.$`,
        ),
    );
  });
});
