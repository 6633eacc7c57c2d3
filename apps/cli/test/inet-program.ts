// Programs with sockets in the state a scenario sets up, dumped and restored through the CLI, then asked
// what their sockets do (restore-tcp-states.test.ts, restore-inet-options.test.ts).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { killAndReap, startTraceable } from '@criu-ts/compel';
import { ImageDir } from '@criu-ts/images';
import {
  onCleanup,
  PYTHON,
  procState,
  readLines,
  runCli,
  tempDir,
  track,
  waitFor,
  waitForLine,
} from './helpers.js';

/** `criu-ts ARGS`, killed (and failed) if it takes longer than `ms`. */
export async function runCliWithin(args: string[], ms: number) {
  let timer: NodeJS.Timeout | undefined;
  let killed = false;
  const r = await runCli(args, (pid) => {
    timer = setTimeout(() => {
      killed = true;
      process.kill(pid, 'SIGKILL');
    }, ms);
  });
  clearTimeout(timer);
  if (killed) throw new Error(`criu-ts ${args[0]} still ran after ${ms} ms: killed`);
  return r;
}

// A program with sockets in the state a scenario sets up (PRELUDE, which defines \`check()\`); it reports
// READY, and on SIGUSR1 reports the lines check() returns, then CHECKED.
export function program(prelude: string): string {
  return [
    'import errno, os, signal, socket, struct, sys',
    'os.closerange(3, 65536)',
    "out = open(sys.argv[1], 'a', buffering=1)",
    'signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])',
    'def state(s): return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]',
    'def closed_both_ways(s):',
    '    s.setblocking(False)',
    '    try: r = s.recv(10)',
    "    except OSError as e: r = 'recv %s' % errno.errorcode[e.errno]",
    '    try: s.send(b"x"); w = "sent"',
    '    except OSError as e: w = errno.errorcode[e.errno]',
    "    return 'state %d recv %r send %s' % (state(s), r, w)",
    prelude,
    "out.write('READY\\n')",
    'signal.sigwait([signal.SIGUSR1])',
    'for line in check(): out.write(line + "\\n")',
    "out.write('CHECKED\\n')",
  ].join('\n');
}

/** Start `program(prelude)`, wait for READY; the report file and the pid. */
export async function startProgram(prelude: string): Promise<{ report: string; pid: number }> {
  const report = path.join(tempDir('criu-ts-tcpstate-'), 'report');
  const pid = startTraceable([PYTHON, '-c', program(prelude), report], { setsid: true });
  track(pid);
  await waitForLine(report, /^READY$/, { pid });
  await waitFor(() => procState(pid) === 'S', 'the program waiting');
  return { report, pid };
}

/** SIGUSR1, then the lines check() reported. */
export async function checkLines(pid: number, report: string): Promise<string[]> {
  process.kill(pid, 'SIGUSR1');
  await waitForLine(report, /^CHECKED$/, { pid });
  const lines = readLines(report);
  return lines.slice(lines.indexOf('READY') + 1, lines.indexOf('CHECKED'));
}

export async function dumpOk(pid: number, extra: string[]): Promise<string> {
  const dir = path.join(tempDir('criu-ts-tcpstate-img-'), 'images');
  const r = await runCliWithin(['dump', '-t', String(pid), '-D', dir, ...extra], 30_000);
  if (r.code !== 0 || r.stderr) throw new Error(`dump: exit ${r.code}: ${r.stderr}`);
  for (const e of ImageDir.open(dir).pstree()) killAndReap(e.pid);
  return dir;
}

export async function restoreOk(pid: number, dir: string, extra: string[]): Promise<void> {
  const r = await runCliWithin(['restore', '-D', dir, '-d', ...extra], 30_000);
  if (r.code !== 0 || r.stderr) throw new Error(`restore: exit ${r.code}: ${r.stderr}`);
  track(pid);
}

/**
 * A lock of the test's own: an nftables table dropping the packets `match` selects (`tcp sport { 1, 2 }`)
 * until released (or cleaned up).
 */
export function holdPackets(match: string): () => void {
  const table = `criu_ts_test_${process.pid}`;
  execFileSync('nft', ['-f', '-'], {
    input: [
      `add table inet ${table}`,
      `add chain inet ${table} input { type filter hook input priority -310; policy accept; }`,
      `add rule inet ${table} input ${match} drop`,
      '',
    ].join('\n'),
  });
  let held = true;
  const release = () => {
    if (held) execFileSync('nft', ['delete', 'table', 'inet', table]);
    held = false;
  };
  onCleanup(release);
  return release;
}
