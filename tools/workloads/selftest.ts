// Self-test of the workloads: starts every program for real, checks its
// report lines and /proc state, triggers each self-check that can be
// triggered from outside (memory corruption via /proc/<pid>/mem, a foreign
// append, a bad number sequence), then kills everything it started and
// removes its temp dir.  Run as root: pnpm exec tsx tools/workloads/selftest.ts

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildWorkloads, workloadPath } from './index.js';
import { readLines, waitForLine } from './report.js';

const dir = mkdtempSync(join(tmpdir(), 'wlv-'));
const started = new Set<number>(); // pids to kill at the end
const groups = new Set<number>();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const state = (pid) => {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: f[0], ppid: +f[1], pgid: +f[2], sid: +f[3], utime: +f[11] };
};
let n = 0;
function run(name, args, opts = {}) {
  const out = join(dir, `${name}-${++n}.report`);
  const cp: any = spawn(workloadPath(name), [out, ...args], { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  started.add(cp.pid);
  cp.exited = new Promise((r) =>
    cp.on('exit', (code, sig) => {
      started.delete(cp.pid);
      r({ code, sig });
    }),
  );
  cp.stderrText = '';
  cp.stderr?.on('data', (d) => {
    cp.stderrText += d;
  });
  return { cp, out, pid: cp.pid };
}
const noFail = (out) =>
  assert.ok(!readLines(out).some((l) => l.startsWith('FAIL')), readLines(out).join('\n'));
const results = [];
async function check(title, fn) {
  try {
    await fn();
    results.push(`ok   ${title}`);
  } catch (e) {
    results.push(`FAIL ${title}: ${e.stack}`);
  }
}

const t0 = Date.now();
const bin = await buildWorkloads();
console.log('bin', bin, Date.now() - t0, 'ms');

await check('counter default 10ms: sequential, 3 copies agree', async () => {
  const { out, pid, cp } = run('counter', []);
  assert.equal(await waitForLine(out, /^READY /, { pid }), `READY ${pid}`);
  const t = Date.now();
  await waitForLine(out, (l) => l === '50', { pid });
  const dt = Date.now() - t;
  assert.ok(dt > 450 && dt < 2000, `50 lines took ${dt}ms`);
  process.kill(pid, 'SIGSTOP');
  await sleep(100);
  const a = readLines(out).length;
  await sleep(100);
  assert.equal(readLines(out).length, a, 'no progress while stopped');
  process.kill(pid, 'SIGCONT');
  await waitForLine(out, (l) => l === String(a + 5), { pid });
  process.kill(pid, 'SIGKILL');
  await cp.exited;
  const lines = readLines(out);
  assert.equal(lines[0], `READY ${pid}`);
  lines.slice(1).forEach((l, i) => {
    assert.equal(l, String(i + 1));
  });
});
await check('counter interval 2ms + arg errors', async () => {
  const { out, pid, cp } = run('counter', ['2']);
  const t = Date.now();
  await waitForLine(out, (l) => l === '100', { pid });
  const dt = Date.now() - t;
  assert.ok(dt < 1500, `dt ${dt}`);
  process.kill(pid, 'SIGKILL');
  await cp.exited;
  noFail(out);
  const bad = run('counter', ['x']);
  assert.deepEqual(await bad.cp.exited, { code: 1, sig: null });
  assert.match(readLines(bad.out)[0], /^FAIL bad interval_ms 'x'/);
  const none = spawn(workloadPath('counter'), [], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  none.stderr.on('data', (d) => {
    err += d;
  });
  const code = await new Promise((r) => none.on('exit', r));
  assert.equal(code, 1);
  assert.match(err, /^FAIL usage: /);
});

await check('tickers: 4 threads, every count grows between TICK lines', async () => {
  const { out, pid, cp } = run('tickers', []);
  await waitForLine(out, /^THREADS 4$/, { pid });
  assert.equal(readdirSync(`/proc/${pid}/task`).length, 4);
  const from = readLines(out).length;
  await waitForLine(out, /^TICK /, { pid, fromLine: from + 1 });
  const ticks = readLines(out)
    .slice(from)
    .filter((l) => l.startsWith('TICK '))
    .map((l) => l.split(' ').slice(1).map(Number));
  assert.equal(ticks[0].length, 4);
  assert.ok(
    ticks.at(-1).every((v, i) => v > ticks[0][i]),
    ticks.map((t) => t.join(',')).join(' / '),
  );
  process.kill(pid, 'SIGKILL');
  await cp.exited;
  noFail(out);
  console.log('  tickers: last', ticks.at(-1).join(','));
});

await check('threads 8: TICK sums grow, threads come and go', async () => {
  const { out, pid, cp } = run('threads', []);
  await waitForLine(out, /^READY /, { pid });
  await waitForLine(out, /^TICK /, { pid, fromLine: 5 });
  const tasks = readdirSync(`/proc/${pid}/task`).length;
  assert.ok(tasks >= 9, `tasks ${tasks}`);
  const ticks = readLines(out)
    .filter((l) => l.startsWith('TICK'))
    .map((l) => +l.split(' ')[1]);
  for (let i = 1; i < ticks.length; i++) assert.ok(ticks[i] >= ticks[i - 1]);
  assert.ok(ticks.at(-1) > ticks[0], ticks.join(','));
  process.kill(pid, 'SIGKILL');
  await cp.exited;
  noFail(out);
  console.log('  threads: tasks', tasks, 'ticks', ticks.length, 'last sum', ticks.at(-1));
  const two = run('threads', ['2']);
  await waitForLine(two.out, /^TICK [1-9]/, { pid: two.pid });
  assert.ok(readdirSync(`/proc/${two.pid}/task`).length >= 3);
  process.kill(two.pid, 'SIGKILL');
  await two.cp.exited;
  noFail(two.out);
});

async function checkTree(detached) {
  const { out, pid, cp } = run('tree', [], { detached });
  const tree = await waitForLine(out, /^TREE /, { pid });
  assert.equal(tree, `TREE ${pid}`);
  const lines = readLines(out);
  assert.equal(lines[0], `READY ${pid}`);
  const tasks = lines
    .filter((l) => l.startsWith('TASK'))
    .map((l) => {
      const [, p, pp, pg, s] = l.split(' ').map(Number);
      return { pid: p, ppid: pp, pgid: pg, sid: s };
    });
  assert.equal(tasks.length, 5);
  groups.add(pid);
  const root = tasks.find((t) => t.pid === pid);
  assert.deepEqual([root.pgid, root.sid], [pid, pid]);
  const kids = tasks.filter((t) => t.ppid === pid);
  assert.equal(kids.length, 2);
  const b = kids.find((k) => tasks.some((t) => t.ppid === k.pid));
  const a = kids.find((k) => k !== b);
  const gk = tasks.filter((t) => t.ppid === b.pid);
  assert.equal(gk.length, 2);
  const d = gk.find((t) => t.pgid === t.pid);
  const c = gk.find((t) => t !== d);
  groups.add(d.pid);
  assert.ok(d && c && c.pgid === pid && a.pgid === pid && b.pgid === pid);
  for (const t of tasks) {
    assert.equal(t.sid, pid);
    const s = state(t.pid); // kernel agrees with the report
    assert.deepEqual([s.ppid, s.pgid, s.sid], [t.ppid, t.pgid, t.sid]);
    assert.equal(s.state, t.pid === pid ? s.state : 'S');
    if (t.pid !== pid) assert.equal(readFileSync(`/proc/${t.pid}/syscall`, 'utf8').split(' ')[0], '34');
    const fds = readdirSync(`/proc/${t.pid}/fd`)
      .map((f) => +f)
      .sort((x, y) => x - y);
    assert.deepEqual(fds, [0, 1, 2, 3], `fds of ${t.pid}: ${fds}`);
    assert.equal(readlinkSync(`/proc/${t.pid}/fd/3`), out);
  }
  // a dying leaf is reported by its parent (B), who then exits
  process.kill(c.pid, 'SIGKILL');
  const f = await waitForLine(out, /^FAIL child died/, { failOn: null });
  assert.equal(f, `FAIL child died pid=${c.pid} status=9`);
  await sleep(50);
  // B exited -> root notices too
  const f2 = await waitForLine(out, new RegExp(`^FAIL child died pid=${b.pid} status=256`), { failOn: null });
  assert.ok(f2);
  assert.deepEqual(await cp.exited, { code: 1, sig: null });
  for (const t of [a, d]) {
    try {
      process.kill(t.pid, 'SIGKILL');
    } catch {}
  }
  await sleep(50);
  for (const t of tasks)
    assert.ok(!existsSync(`/proc/${t.pid}`) || state(t.pid).state === 'Z', `left ${t.pid}`);
  groups.delete(pid);
  groups.delete(d.pid);
  return tasks;
}
await check('tree spawned plainly (setsid path)', () => checkTree(false));
await check('tree spawned detached (already session leader)', () => checkTree(true));
await check('tree as process-group leader -> FAIL setsid', async () => {
  const out = join(dir, 'tree-pgl.report');
  execFileSync('bash', ['-c', `set -m; "${workloadPath('tree')}" "${out}"; true`]);
  assert.deepEqual(readLines(out), ['FAIL setsid errno=1']);
});

await check('pipe_reader default (O_RDWR): blocks in read, READ text', async () => {
  const fifo = join(dir, 'fifo1');
  execFileSync('mkfifo', [fifo]);
  const { out, pid, cp } = run('pipe_reader', [fifo]);
  await waitForLine(out, /^READY /, { pid });
  await sleep(100);
  assert.equal(state(pid).state, 'S');
  assert.equal(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0], '0'); // read(2)
  writeFileSync(fifo, 'hello world\n');
  assert.equal(await waitForLine(out, /^READ /, { pid }), 'READ hello world');
  assert.deepEqual(await cp.exited, { code: 0, sig: null });
  const r2 = run('pipe_reader', [fifo]);
  await waitForLine(r2.out, /^READY /);
  writeFileSync(fifo, Buffer.from('a\tb\\c\nd\xff', 'latin1'));
  assert.equal(await waitForLine(r2.out, /^READ /), 'READ a\\x09b\\\\c\\nd\\xff');
  assert.equal((await r2.cp.exited).code, 0);
});
await check('pipe_reader rdonly: READY after writer opens; EOF path', async () => {
  const fifo = join(dir, 'fifo2');
  execFileSync('mkfifo', [fifo]);
  const { out, pid, cp } = run('pipe_reader', [fifo, 'rdonly']);
  await sleep(150);
  assert.deepEqual(readLines(out), []); // blocked in open()
  const w = openSync(fifo, 'w');
  await waitForLine(out, /^READY /, { pid });
  await sleep(50);
  assert.equal(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0], '0');
  writeFileSync(w, 'x y');
  closeSync(w);
  assert.equal(await waitForLine(out, /^READ /), 'READ x y');
  assert.equal((await cp.exited).code, 0);
  const e = run('pipe_reader', [fifo, 'rdonly']);
  const w2 = openSync(fifo, 'w');
  await waitForLine(e.out, /^READY /);
  closeSync(w2);
  await waitForLine(e.out, /^EOF$/);
  assert.equal((await e.cp.exited).code, 0);
  const bad = run('pipe_reader', [join(dir, 'nope')]);
  assert.equal((await bad.cp.exited).code, 1);
  assert.match(readLines(bad.out)[0], /^FAIL open .* errno=2$/);
});

await check('sleeper 400ms with SIGUSR1 + STOP/CONT mid-sleep', async () => {
  const t = Date.now();
  const { out, pid, cp } = run('sleeper', ['400']);
  await waitForLine(out, /^READY /, { pid });
  await sleep(100);
  process.kill(pid, 'SIGUSR1');
  await sleep(50);
  process.kill(pid, 'SIGSTOP');
  await sleep(50);
  process.kill(pid, 'SIGCONT');
  await sleep(20);
  process.kill(pid, 'SIGUSR1');
  const l = await waitForLine(out, /^SLEPT /, { pid });
  const ms = +l.split(' ')[1];
  assert.ok(ms >= 400 && ms < 600, l);
  assert.ok(Date.now() - t >= 400);
  assert.deepEqual(await cp.exited, { code: 0, sig: null });
  console.log('  sleeper:', l);
  const z = run('sleeper', ['0']);
  assert.match(await waitForLine(z.out, /^SLEPT /), /^SLEPT \d+$/);
  assert.equal((await z.cp.exited).code, 0);
});

await check('stopper: T state, CONTINUED, ALIVE stream, re-stop', async () => {
  const { out, pid, cp } = run('stopper', []);
  await waitForLine(out, /^READY /, { pid });
  for (let i = 0; i < 100 && state(pid).state !== 'T'; i++) await sleep(10);
  assert.equal(state(pid).state, 'T');
  await sleep(100);
  assert.equal(readLines(out).length, 1);
  process.kill(pid, 'SIGCONT');
  await waitForLine(out, /^CONTINUED$/, { pid });
  await waitForLine(out, /^ALIVE 10$/, { pid });
  process.kill(pid, 'SIGSTOP');
  await sleep(60);
  const k = readLines(out).length;
  await sleep(100);
  assert.equal(readLines(out).length, k);
  process.kill(pid, 'SIGCONT');
  await waitForLine(out, new RegExp(`^ALIVE ${k + 2}$`), { pid });
  process.kill(pid, 'SIGKILL');
  await cp.exited;
  readLines(out)
    .slice(2)
    .forEach((l, i) => {
      assert.equal(l, `ALIVE ${i + 1}`);
    });
});

await check('waiter: pause, futex, futex-timed, itimer with a pending SIGALRM', async () => {
  const sys = (pid) => +readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0];
  const inSyscall = async (pid, nr) => {
    for (let i = 0; i < 200 && sys(pid) !== nr; i++) await sleep(10);
    assert.equal(sys(pid), nr);
  };
  const p = run('waiter', ['pause']);
  await waitForLine(p.out, /^WAITING pause$/, { pid: p.pid });
  await inSyscall(p.pid, 34);
  process.kill(p.pid, 'SIGUSR1');
  await waitForLine(p.out, /^WOKE pause$/, { pid: p.pid });
  assert.equal((await p.cp.exited).code, 0);
  const f = run('waiter', ['futex']);
  await waitForLine(f.out, /^WAITING futex$/, { pid: f.pid });
  await inSyscall(f.pid, 202);
  process.kill(f.pid, 'SIGSTOP');
  process.kill(f.pid, 'SIGCONT');
  process.kill(f.pid, 'SIGUSR1');
  await waitForLine(f.out, /^WOKE futex eintr=0$/, { pid: f.pid });
  const t = run('waiter', ['futex-timed', '300']);
  await waitForLine(t.out, /^WAITING futex-timed$/, { pid: t.pid });
  await inSyscall(t.pid, 202);
  process.kill(t.pid, 'SIGSTOP');
  process.kill(t.pid, 'SIGCONT');
  const l = await waitForLine(t.out, /^TIMEDOUT /, { pid: t.pid });
  assert.ok(+/elapsed=(\d+)/.exec(l)[1] >= 300, l);
  const a = run('waiter', ['itimer', '50']);
  await waitForLine(a.out, /^WAITING itimer$/, { pid: a.pid });
  assert.match(readFileSync(`/proc/${a.pid}/status`, 'utf8'), /ShdPnd:\s*0*2000\n/);
  process.kill(a.pid, 'SIGUSR1');
  await waitForLine(a.out, /^TICKING 50$/, { pid: a.pid });
  const alrm = readLines(a.out)
    .filter((x) => x.startsWith('ALRM'))
    .map((x) => +x.split(' ')[2]);
  assert.ok(alrm[0] < 40 && alrm[2] >= 90, alrm.join(' '));
  assert.equal((await a.cp.exited).code, 0);
  const bad = run('waiter', ['nosuch']);
  assert.equal((await bad.cp.exited).code, 1);
  console.log('  waiter:', l, alrm.join(' '));
});

await check('zombie: Z state, ZOMBIE line, SIGUSR1 reaps with 42', async () => {
  const { out, pid, cp } = run('zombie', []);
  const z = await waitForLine(out, /^ZOMBIE /, { pid });
  const child = +z.split(' ')[1];
  const s = state(child);
  assert.equal(s.state, 'Z');
  assert.equal(s.ppid, pid);
  assert.equal(state(pid).state, 'S');
  assert.equal(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0], '34'); // pause(2)
  process.kill(pid, 'SIGUSR1');
  assert.equal(await waitForLine(out, /^REAPED /, { pid }), `REAPED ${child} 42`);
  assert.ok(!existsSync(`/proc/${child}`));
  process.kill(pid, 'SIGUSR1');
  await sleep(50);
  assert.equal(readLines(out).length, 3);
  process.kill(pid, 'SIGKILL');
  await cp.exited;
  noFail(out);
});

await check('zombies: five Z children, one in a group with no leader, statuses on SIGUSR1', async () => {
  const { out, pid, cp } = run('zombies', []);
  await waitForLine(out, /^ZOMBIES 5$/, { pid });
  const zs = readLines(out)
    .filter((l) => l.startsWith('ZOMBIE '))
    .map((l) => l.split(' ').map(Number));
  assert.equal(zs.length, 5);
  for (const [, z, pgid] of zs) {
    assert.equal(state(z).state, 'Z');
    assert.equal(state(z).ppid, pid);
    assert.equal(state(z).pgid, pgid);
  }
  const lonely = zs[4][2];
  assert.notEqual(lonely, state(pid).pgid);
  assert.ok(!existsSync(`/proc/${lonely}`), 'the group leader is gone');
  process.kill(pid, 'SIGUSR1');
  await waitForLine(out, /^DONE$/, { pid });
  const reaped = readLines(out).filter((l) => l.startsWith('REAPED '));
  assert.deepEqual(
    reaped,
    zs.map(([, z], i) => `REAPED ${z} ${['0x0', '0x300', '0x9', '0xb', '0x700'][i]}`),
  );
  process.kill(pid, 'SIGKILL');
  await cp.exited;
  noFail(out);
});

await check('memhog: SUM stable across SIGUSR1, deterministic, corruption detected', async () => {
  const a = run('memhog', ['64', '7']);
  process.kill(a.pid, 0);
  const s1 = await waitForLine(a.out, /^SUM /, { pid: a.pid });
  assert.match(s1, /^SUM [0-9a-f]{16}$/);
  for (let i = 0; i < 200 && state(a.pid).state !== 'S'; i++) await sleep(10);
  assert.equal(state(a.pid).state, 'S');
  assert.equal(readFileSync(`/proc/${a.pid}/syscall`, 'utf8').split(' ')[0], '34'); // pause(2)
  process.kill(a.pid, 'SIGUSR1');
  assert.equal(await waitForLine(a.out, /^SUM /, { pid: a.pid, fromLine: 2 }), s1);
  const b = run('memhog', ['64', '7']);
  const c = run('memhog', ['64', '8']);
  const d = run('memhog', ['1']);
  // SIGUSR1 straight away (during the fill): held until the first SUM
  await waitForLine(d.out, /^READY/);
  process.kill(d.pid, 'SIGUSR1');
  assert.equal(await waitForLine(b.out, /^SUM /), s1);
  assert.notEqual(await waitForLine(c.out, /^SUM /), s1);
  const ds = await waitForLine(d.out, /^SUM /);
  assert.equal(await waitForLine(d.out, /^SUM /, { fromLine: 2 }), ds);
  // corrupt one word through /proc/pid/mem -> self-check fails
  const area = readFileSync(`/proc/${a.pid}/maps`, 'utf8')
    .split('\n')
    .map((l) => l.split(/\s+/))
    .map(([range, , , , inode, path]) => ({
      range: range?.split('-').map((x) => parseInt(x, 16)),
      inode,
      path,
    }))
    .find((m) => m.range && m.inode === '0' && !m.path && m.range[1] - m.range[0] >= 64 << 20);
  const fd = openSync(`/proc/${a.pid}/mem`, 'r+');
  writeSync(fd, Buffer.from('deadbeef'), 0, 8, area.range[0] + 12345 * 8);
  closeSync(fd);
  process.kill(a.pid, 'SIGUSR1');
  const f = await waitForLine(a.out, /^FAIL/, { failOn: null });
  assert.match(f, new RegExp(`^FAIL checksum mismatch [0-9a-f]{16} != ${s1.slice(4)}$`));
  assert.equal((await a.cp.exited).code, 1);
  for (const p of [b, c, d]) {
    process.kill(p.pid, 'SIGKILL');
    await p.cp.exited;
    noFail(p.out);
  }
  console.log('  memhog:', s1, '| corrupt ->', f);
});

await check('reader: LINE per 10ms, EOF, fd position, bad sequence', async () => {
  const file = join(dir, 'numbers.txt');
  writeFileSync(file, Array.from({ length: 40 }, (_, i) => `${i + 5}\n`).join(''));
  const { out, pid, cp } = run('reader', [file]);
  await waitForLine(out, /^LINE 20$/, { pid });
  process.kill(pid, 'SIGSTOP');
  await sleep(30);
  const reported = readLines(out)
    .filter((l) => l.startsWith('LINE'))
    .map((l) => l.slice(5));
  const pos = +readFileSync(`/proc/${pid}/fdinfo/4`, 'utf8').match(/pos:\s+(\d+)/)[1];
  const consumed = reported.reduce((s, l) => s + l.length + 1, 0);
  assert.ok(pos >= consumed && pos <= consumed + 3, `pos ${pos} consumed ${consumed}`);
  process.kill(pid, 'SIGCONT');
  assert.equal(await waitForLine(out, /^EOF /, { pid }), 'EOF 40');
  assert.deepEqual(await cp.exited, { code: 0, sig: null });
  const lines = readLines(out).slice(1, -1);
  assert.equal(lines.length, 40);
  lines.forEach((l, i) => {
    assert.equal(l, `LINE ${i + 5}`);
  });
  const badf = join(dir, 'bad.txt');
  writeFileSync(badf, '1\n2\n4\n');
  const bad = run('reader', [badf]);
  assert.equal((await bad.cp.exited).code, 1);
  assert.equal(readLines(bad.out).at(-1), 'FAIL line 3: got 4, expected 3');
  const nn = join(dir, 'nn.txt');
  writeFileSync(nn, '7\n8\nfoo');
  const bad2 = run('reader', [nn]);
  assert.equal((await bad2.cp.exited).code, 1);
  assert.equal(readLines(bad2.out).at(-1), "FAIL line 3 is not a number: 'foo'");
  console.log('  reader: pos', pos, 'consumed', consumed);
});

await check('appender + reader follow on the same file; external write detected', async () => {
  const file = join(dir, 'appended.txt');
  const ap = run('appender', [file]);
  await waitForLine(ap.out, /^N 3$/, { pid: ap.pid });
  const rd = run('reader', [file, 'follow']);
  await waitForLine(rd.out, /^LINE 30$/, { pid: rd.pid });
  await waitForLine(ap.out, /^N 40$/, { pid: ap.pid });
  process.kill(ap.pid, 'SIGSTOP');
  await sleep(30);
  const content = readFileSync(file, 'utf8').split('\n');
  content.pop();
  content.forEach((l, i) => {
    assert.equal(l, String(i + 1));
  });
  const lastN = readLines(ap.out).at(-1);
  assert.ok(
    [`N ${content.length}`, `N ${content.length - 1}`].includes(lastN),
    `${lastN} vs ${content.length}`,
  );
  const fl = readFileSync(`/proc/${ap.pid}/fdinfo/4`, 'utf8').match(/flags:\s+(\d+)/)[1];
  assert.ok(parseInt(fl, 8) & 0o2000, `flags ${fl}`); // O_APPEND
  process.kill(ap.pid, 'SIGCONT');
  await waitForLine(rd.out, new RegExp(`^LINE ${content.length}$`), { pid: rd.pid });
  appendFileSync(file, 'garbage\n');
  const f = await waitForLine(ap.out, /^FAIL/, { failOn: null });
  assert.match(f, /^FAIL size \d+ after line \d+, expected \d+$/);
  assert.equal((await ap.cp.exited).code, 1);
  const rf = await waitForLine(rd.out, /^FAIL/, { failOn: null });
  assert.match(rf, /^FAIL line \d+ is not a number: 'garbage'$/);
  await rd.cp.exited;
  console.log('  appender:', lastN, '|', f, '|', rf);
});

await check('sigio: owners and signals of a pipe, a socket and a log', async () => {
  const log = join(dir, 'sigio.log');
  const { out, pid } = run('sigio', [log], { detached: true }); // own process group: SIGIO goes to it
  groups.add(pid);
  await waitForLine(out, /^READY /, { pid });
  assert.equal(readLines(out)[0], `OWNERS pipe=${pid} sock=-${pid} log=${pid}`);
  writeFileSync(`/proc/${pid}/fd/5`, 'hello\n');
  await waitForLine(out, /^SIG 40 fd=4 hello$/, { pid });
  process.kill(pid, 'SIGUSR1');
  await waitForLine(out, /^SIG 29 ping$/, { pid });
  assert.deepEqual(readFileSync(log, 'utf8').split('\n'), ['START', 'SIG 40 fd=4 hello', 'SIG 29 ping', '']);
  noFail(out);
});

await check('busy: TICK every 100ms, running in user mode', async () => {
  const { out, pid, cp } = run('busy', []);
  await waitForLine(out, /^READY/, { pid });
  const t = Date.now();
  const u0 = state(pid).utime;
  await waitForLine(out, /^TICK 5$/, { pid });
  const dt = Date.now() - t;
  assert.ok(dt >= 380 && dt < 1200, `dt ${dt}`);
  assert.equal(state(pid).state, 'R');
  const u1 = state(pid).utime;
  assert.ok(u1 - u0 >= 5, `utime ticks ${u1 - u0}`);
  process.kill(pid, 'SIGSTOP');
  await sleep(300);
  process.kill(pid, 'SIGCONT');
  const k = readLines(out).length;
  await waitForLine(out, new RegExp(`^TICK ${k + 1}$`), { pid }); // no catch-up burst
  process.kill(pid, 'SIGKILL');
  await cp.exited;
  noFail(out);
  readLines(out)
    .slice(1)
    .forEach((l, i) => {
      assert.equal(l, `TICK ${i + 1}`);
    });
  console.log('  busy: 5 ticks in', dt, 'ms, utime +', u1 - u0);
});

await check('waitForLine: timeout / failOn / pid / fromLine / late file / abort', async () => {
  const f = join(dir, 'wfl.txt');
  const late = waitForLine(f, /^B/, { timeoutMs: 3000 });
  await sleep(100);
  writeFileSync(f, 'A\n');
  await sleep(50);
  appendFileSync(f, 'B');
  await sleep(50);
  appendFileSync(f, 'x\n');
  assert.equal(await late, 'Bx');
  assert.equal(await waitForLine(f, /^/, { fromLine: 1 }), 'Bx');
  const t = Date.now();
  await assert.rejects(
    waitForLine(f, /^C/, { timeoutMs: 300 }),
    (e: any) =>
      /timed out after 300 ms waiting for \/\^C\/; last lines of .* \(2 complete\):\n {2}\| A\n {2}\| Bx$/.test(
        e.message,
      ) || assert.fail(e.message),
  );
  assert.ok(Date.now() - t >= 300);
  appendFileSync(f, 'FAIL boom\npartial');
  await assert.rejects(
    waitForLine(f, /^C/),
    /workload reported "FAIL boom".*\n[\s\S]*partial {2}<- incomplete/,
  );
  assert.equal(await waitForLine(f, /^FAIL/), 'FAIL boom');
  const s = run('sleeper', ['100']);
  await assert.rejects(
    waitForLine(s.out, /^NEVER/, { pid: s.pid }),
    new RegExp(`process ${s.pid} exited .*\\n[\\s\\S]*SLEPT`),
  );
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(waitForLine(f, /^C/, { signal: ac.signal, failOn: null }), /aborted/);
  assert.deepEqual(readLines(join(dir, 'missing')), []);
  assert.throws(() => workloadPath('nosuch' as never), /unknown workload/);
});

// cleanup
for (const pid of started) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
}
for (const g of groups) {
  try {
    process.kill(-g, 'SIGKILL');
  } catch {}
}
await sleep(100);
console.log(results.join('\n'));
console.log('leftover:', [...started]);
rmSync(dir, { recursive: true, force: true });
process.exit(results.some((r) => r.startsWith('FAIL')) ? 1 : 0);
