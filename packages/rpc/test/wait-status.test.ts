// decodeWaitStatus against statuses the kernel really gave: a child's exit code and a killing signal.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { decodeWaitStatus } from '../src/index.js';

describe('decodeWaitStatus', () => {
  it('an exit code, and a signal by name, as waitpid(2) encodes them', () => {
    expect(decodeWaitStatus(7 << 8)).toEqual({ status: 7 << 8, code: 7, signal: null });
    expect(decodeWaitStatus(9)).toEqual({ status: 9, code: null, signal: 'SIGKILL' });
    expect(decodeWaitStatus(0x8b)).toEqual({ status: 0x8b, code: null, signal: 'SIGSEGV' }); // core dumped
    // The same as node decodes a real child's end.
    const r = spawnSync('/bin/sh', ['-c', 'exit 42']);
    expect(decodeWaitStatus(42 << 8).code).toBe(r.status);
  });
});
