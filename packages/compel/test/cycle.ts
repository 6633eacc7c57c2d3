// One seize -> inspect -> inject -> detach cycle, with the checks that it changed nothing.
import fs from 'node:fs';
import { ptraceGetRegs, ptraceGetXstate, SYS } from '@criu-ts/sys';
import { expect } from 'vitest';
import { Parasite, type SeizedTree, type SeizeOptions, seizeTree } from '../src/index.js';
import { procState } from './helpers.js';

/** Seize/inject/release rounds per workload. */
export const ITERATIONS = 100;
/** Syscalls in the batch of every round. */
export const BATCH = 100;

const getpids = (n: number) => Array.from({ length: n }, () => [SYS.getpid] as const);

export interface CycleOptions extends SeizeOptions {
  /** Called with the seized tree before anything is injected. */
  inspect?: (tree: SeizedTree) => void;
  /** Inject into every live task (default) or only into the root. */
  rootOnly?: boolean;
}

/**
 * Seize the tree of `root`, check every thread is traced and stopped, inject getpid (single syscall and a
 * batch of BATCH) into each live task, cure and check registers, xstate and maps are as before, release.
 * Returns the tree (already released).
 */
export function cycle(root: number, opts: CycleOptions = {}): SeizedTree {
  const tree = seizeTree(root, opts);
  try {
    expect(tree.tasks[0]?.pid).toBe(root);
    for (const task of tree.tasks) {
      if (task.state === 'zombie') {
        expect(task.threads).toHaveLength(0);
        expect(procState(task.pid)).toBe('Z');
        continue;
      }
      expect(task.threads[0]?.tid).toBe(task.pid);
      for (const th of task.threads) {
        expect(procState(task.pid, th.tid)).toBe('t');
        expect(th.regs.cs).toBe(0x33n);
      }
    }
    const status = fs.readFileSync(`/proc/${root}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^TracerPid:\\s+${process.pid}$`, 'm'));
    opts.inspect?.(tree);

    for (const task of tree.tasks) {
      if (task.state === 'zombie') continue;
      if (opts.rootOnly && task.pid !== root) continue;
      const leader = task.threads[0]!;
      const maps = fs.readFileSync(`/proc/${task.pid}/maps`, 'utf8');
      const xstate = ptraceGetXstate(leader.tid);
      const p = Parasite.infect(tree, task.pid, { tableEntries: BATCH, dataSize: 4096 });
      expect(p.call(SYS.getpid)).toBe(BigInt(task.pid));
      const r = p.runBatch(getpids(BATCH));
      expect(r.ok).toBe(true);
      expect(r.results).toHaveLength(BATCH);
      expect(r.results.every((x) => x === BigInt(task.pid))).toBe(true);
      p.cure();
      expect(ptraceGetRegs(leader.tid).buffer.equals(leader.regs.buffer)).toBe(true);
      expect(ptraceGetXstate(leader.tid).equals(xstate)).toBe(true);
      expect(fs.readFileSync(`/proc/${task.pid}/maps`, 'utf8')).toBe(maps);
    }
  } finally {
    tree.release();
  }
  return tree;
}
