// A failed dump through core's API harms nothing (the CLI's failures, one line and exit 1, are in
// apps/cli/test/dump-failures.test.ts): a DumpError naming pid and fd, the task released; a tree whose
// children come and go dumped again and again, each dump complete or failed cleanly.
import path from 'node:path';
import { ImageDir } from '@criu-ts/images';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DumpError, dump } from '../src/index.js';
import {
  buildWorkloads,
  cleanup,
  expectAsBefore,
  expectCountsOn,
  procStatus,
  readLines,
  snapshot,
  startCommand,
  startPythonCounter,
  tasksInSession,
  tempDir,
  waitFor,
  waitForLine,
  waitForMoreLines,
} from './helpers.js';

beforeAll(async () => {
  await buildWorkloads();
});
afterEach(() => cleanup());

/** A userfaultfd: a kind of fd criu-ts has no driver for (CRIU neither), so a dump of it fails. */
const UFFD_PY = 'import ctypes; uffd = ctypes.CDLL(None).syscall(323, 0)';

const newImagesDir = () => path.join(tempDir('criu-ts-core-fail-'), 'images');

describe('a dump that fails harms nothing', () => {
  it('a shell whose children exit right away, dumped 12 times: each dump succeeds or fails cleanly', async () => {
    const dir = tempDir('criu-ts-core-churn-');
    const out = path.join(dir, 'out');
    // Every loop forks two children that exit at once: a subshell and an exec of true.
    const sh = await startCommand([
      '/bin/sh',
      '-c',
      'exec 3>>"$0"; n=0; while :; do ( : ); /bin/true; n=$((n+1)); echo $n >&3; done',
      out,
    ]);
    await waitForLine(out, /^20$/, { pid: sh });
    const outcomes: string[] = [];
    for (let i = 0; i < 12; i++) {
      const images = path.join(dir, `images-${i}`);
      try {
        const res = await dump({ pid: sh, imagesDir: images, leaveRunning: true });
        // A complete set of images: every task of pstree has its core image.
        const img = ImageDir.open(images);
        for (const t of img.pstree()) expect(img.has('core-%u', t.pid), `core-${t.pid}`).toBe(true);
        expect(img.pstree()[0]!.pid).toBe(sh);
        outcomes.push(`ok ${res.tasks}`);
      } catch (e) {
        // Only a clean failure, naming a pid, is acceptable.
        expect(e, String(e)).toBeInstanceOf(Error);
        expect((e as Error).message).toMatch(/\d+/);
        outcomes.push(`failed: ${(e as Error).message}`);
      }
      // Nothing left traced or stopped in the session; the loop goes on.
      await waitFor(
        () =>
          tasksInSession(sh).every((p) => {
            const st = procStatus(p);
            return st.TracerPid === '0' && !/^[tT]/.test(st.State ?? '');
          }),
        () => `every task of session ${sh} untraced and not stopped`,
      ).catch(() => undefined);
      for (const p of tasksInSession(sh)) {
        const st = (() => {
          try {
            return procStatus(p);
          } catch {
            return undefined; // exited meanwhile
          }
        })();
        if (st) expect(`${p} ${st.State} tracer ${st.TracerPid}`).toMatch(/^\d+ [^tT].* tracer 0$/);
      }
      await waitForMoreLines(out, 5, sh);
    }
    // At least some dumps must succeed, or this test proves nothing about consistency.
    expect(outcomes.filter((o) => o.startsWith('ok')).length, outcomes.join('\n')).toBeGreaterThan(0);
    const ns = readLines(out).map(Number);
    expect(ns.every((v, i) => v === i + 1)).toBe(true);
  });
});

describe('DumpError from the API', () => {
  it('is a DumpError naming the pid and fd, and the task is released', async () => {
    const py = await startPythonCounter(UFFD_PY);
    await waitForLine(py.report, /^3$/, { pid: py.pid });
    const before = snapshot(py.pid);
    const err = await dump({ pid: py.pid, imagesDir: newImagesDir() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DumpError);
    expect((err as Error).message).toMatch(new RegExp(`pid ${py.pid} fd 3\\b`));
    await expectAsBefore(py.pid, before);
    await expectCountsOn(py.report, py.pid);
  });
});
