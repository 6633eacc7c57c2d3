// Helpers of @criu-ts/rpc's tests: the server binary they drive, and checks that nothing of a client
// (fds, swrk children) is left behind.
import fs from 'node:fs';
import path from 'node:path';
import { REPO, tempDir } from '@criu-ts/testkit';

export * from '@criu-ts/testkit';

/**
 * The program started as `<binary> swrk 3`: criu-ts's command from this repo (built: `pnpm run build`),
 * or CRIU's own when CRIU_RPC_TEST_BINARY names it (e.g. /tmp/criu-zdtm-main/criu/criu).
 */
export const BINARY = process.env.CRIU_RPC_TEST_BINARY || path.join(REPO, 'apps/cli/bin/criu-ts');

/** Our fds, as "fd -> target". */
export function ourFds(): Map<number, string> {
  const out = new Map<number, string>();
  for (const name of fs.readdirSync('/proc/self/fd')) {
    try {
      out.set(Number(name), fs.readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      // the fd readdir itself used
    }
  }
  return out;
}

/** The fds opened since `before` that point at a socket or one of `dirs` (what a client opens). */
export function leakedFds(before: Map<number, string>, dirs: string[] = []): string[] {
  const out: string[] = [];
  for (const [fd, target] of ourFds()) {
    if (before.get(fd) === target) continue;
    if (target.startsWith('socket:') || dirs.some((d) => target === d || target.startsWith(`${d}/`)))
      out.push(`${fd} -> ${target}`);
  }
  return out;
}

/** Our children (any thread's) that run `... swrk ...`. */
export function swrkChildren(): number[] {
  const out: number[] = [];
  for (const tid of fs.readdirSync('/proc/self/task')) {
    let kids = '';
    try {
      kids = fs.readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim();
    } catch {
      continue;
    }
    for (const k of kids ? kids.split(' ').map(Number) : []) {
      try {
        // argv, or the title a worker set (one string with spaces)
        const cmdline = fs.readFileSync(`/proc/${k}/cmdline`, 'utf8').replaceAll('\0', ' ');
        if (/(^| )swrk( |$)/.test(cmdline)) out.push(k);
      } catch {
        // gone
      }
    }
  }
  return out;
}

/** A program that stands in for a broken swrk: `sh` running `script` (with $1 = swrk, $2 = 3). */
export function fakeSwrk(script: string): string {
  const file = path.join(tempDir('criu-ts-rpc-fake-'), 'fake-swrk');
  fs.writeFileSync(file, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return file;
}
