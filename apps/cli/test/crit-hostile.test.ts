// crit-ts given inputs that are not image files: a FIFO with no writer, /dev/zero, a socket, endless
// zeroes on stdin. Each is one line naming the input and what it is, exit 1, at once (the test's
// timeout proves no hang); a pipe handed over as /dev/fd/N and a symlink the user names still work.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, '../bin/crit-ts.cjs');
const SAMPLE = path.resolve(here, '../../../examples/sample-dump/pstree.img');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'crit-hostile-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** crit-ts ARGS with `stdin` (a path opened for fd 0, or 'pipe-of:FILE' for fd 3 fed from FILE). */
function critTs(args: string[], stdin?: string, fd3?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const stdio: Array<number | 'pipe' | 'ignore'> = [
      stdin ? openSync(stdin, 'r') : 'ignore',
      'pipe',
      'pipe',
    ];
    if (fd3) stdio.push('pipe');
    const child = spawn(process.execPath, [BIN, ...args], { stdio });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    if (fd3) {
      const cat = spawn('cat', [fd3], { stdio: ['ignore', 'pipe', 'ignore'] });
      cat.stdout.pipe(child.stdio[3] as NodeJS.WritableStream);
    }
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 128, stdout, stderr }));
  });
}

function oneLine(r: Run, re: RegExp): void {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^crit-ts: /);
  expect(lines[0]).toMatch(re);
  expect(r.code).toBe(1);
}

describe('crit-ts: inputs that are not image files', () => {
  it('a FIFO with no writer: decode -i, show and info refuse it at once', { timeout: 10_000 }, async () => {
    const fifo = path.join(tmp, 'fifo.img');
    execFileSync('mkfifo', [fifo]);
    oneLine(await critTs(['decode', '-i', fifo]), /fifo\.img: at byte 0: is a FIFO, not an image file/);
    oneLine(await critTs(['show', fifo]), /fifo\.img: at byte 0: is a FIFO, not an image file/);
    oneLine(await critTs(['info', fifo]), /fifo\.img: at byte 0: is a FIFO, not an image file/);
    oneLine(await critTs(['encode', '-i', fifo, '-o', path.join(tmp, 'out.img')]), /is a FIFO/);
  });

  it('/dev/zero and a socket as -i; /dev/zero on stdin', { timeout: 10_000 }, async () => {
    oneLine(await critTs(['decode', '-i', '/dev/zero']), /\/dev\/zero: at byte 0: is a character device/);
    const sock = path.join(tmp, 'sock.img');
    execFileSync('python3', [
      '-c',
      'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
      sock,
    ]);
    oneLine(await critTs(['decode', '-i', sock]), /sock\.img: at byte 0: is a socket/);
    oneLine(await critTs(['decode'], '/dev/zero'), /<stdin>: at byte 0: unknown magic 0x0/);
    oneLine(
      await critTs(['decode', '-i', '/dev/stdin'], '/dev/urandom'),
      /\/dev\/stdin: at byte [04]: unknown magic/,
    );
  });

  it('a pipe as /dev/fd/3 and a symlink named by the user are read', { timeout: 10_000 }, async () => {
    const viaPipe = await critTs(['decode', '-i', '/dev/fd/3'], undefined, SAMPLE);
    expect(viaPipe.stderr).toBe('');
    expect(JSON.parse(viaPipe.stdout).magic).toBe('PSTREE');
    const link = path.join(tmp, 'link.img');
    symlinkSync(SAMPLE, link);
    const viaLink = await critTs(['show', link]);
    expect(viaLink.stderr).toBe('');
    expect(viaLink.stdout).toBe((await critTs(['show', SAMPLE])).stdout);
  });
});
